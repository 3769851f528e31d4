# bus — one non-recursive Makefile.  `make V=1` prints full command lines.
#
#   make            libbus.so (soname-versioned), libbus.a and busd
#   make run        build, then run busd on the per-user bus in the foreground
#   make test       install missing build deps (apt-get), build, run the suite
#   make asan       the suite under AddressSanitizer + UBSan
#   make tsan       the suite under ThreadSanitizer
#   make bench      benchmarks, peers and machine limits in one run
#   make soak       crash soak: kill -9 at random for 60 s (SOAK_ARGS="--kills 10000")
#   make corrupt    corrupted-log generator, 300 cases (CORRUPT_ARGS="--cases 10000")
#   make fuzz       libFuzzer targets (clang); fuzz-smoke, fuzz-run FUZZ_SECONDS=3600
#   make valgrind   busd under memcheck through its lifecycle tests
#   make install    PREFIX=/usr/local DESTDIR= : bus, busd, header, libs, libbus.pc,
#                   man pages bus(1), libbus(3), busd(8)
#   make uninstall

VERSION  := 0.1.0
SOMAJOR  := 0
PREFIX   ?= /usr/local
DESTDIR  ?=
BINDIR   ?= $(PREFIX)/bin
LIBDIR   ?= $(PREFIX)/lib
INCDIR   ?= $(PREFIX)/include
MANDIR   ?= $(PREFIX)/share/man
PKGDIR   ?= $(LIBDIR)/pkgconfig

CC       ?= cc
B        ?= build
OPT      ?= -O2
SAN      ?=
WARN     := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wpointer-arith -Wvla
CPPFLAGS += -D_GNU_SOURCE -Ilibbus/include -Ilibbus/src
CFLAGS   += $(WARN) $(OPT) -g -fno-strict-aliasing $(SAN)
LDLIBS_T := $(shell pkg-config --libs criterion 2>/dev/null || echo -lcriterion)

ifeq ($(V),1)
Q :=
else
Q := @
endif

LIB_SRC  := $(wildcard libbus/src/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
LIB_PIC  := $(LIB_SRC:%.c=$(B)/pic/%.o)
SO_REAL  := $(B)/libbus.so.$(VERSION)
SO_NAME  := libbus.so.$(SOMAJOR)

BUSD_SRC := $(wildcard busd/*.c)
BUSD_OBJ := $(BUSD_SRC:%.c=$(B)/%.o)
BUSD     := $(B)/bin/busd
LDLIBS_URING := $(shell pkg-config --libs liburing 2>/dev/null || echo -luring)

TOOL_SRC := $(wildcard tools/*.c)
TOOL_OBJ := $(TOOL_SRC:%.c=$(B)/%.o)
BUSCLI   := $(B)/bin/bus

TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(B)/tests/%)
TEST_LIB := $(wildcard tests/t_*.c)

.PHONY: all lib test check asan tsan bench install uninstall clean deps run
all: lib $(BUSD) $(BUSCLI)
lib: $(B)/libbus.a $(SO_REAL)

$(B)/busd/%.o: CPPFLAGS += -Ibusd
$(B)/tools/%.o: CPPFLAGS += -Itools
$(BUSCLI): $(TOOL_OBJ) $(B)/libbus.a
	$(if $(Q),@echo "  LD      $@")
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $(TOOL_OBJ) $(B)/libbus.a -lpthread

$(BUSD): $(BUSD_OBJ) $(B)/libbus.a
	$(if $(Q),@echo "  LD      $@")
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $(BUSD_OBJ) $(B)/libbus.a $(LDLIBS_URING)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -fvisibility=hidden -MMD -MP -c $< -o $@

$(B)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC [pic] $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -fPIC -fvisibility=hidden -MMD -MP -c $< -o $@

$(B)/libbus.a: $(LIB_OBJ)
	$(if $(Q),@echo "  AR      $@")
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(SO_REAL): $(LIB_PIC) libbus/libbus.map
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -shared -fPIC -Wl,-soname,$(SO_NAME) \
	  -Wl,--version-script=libbus/libbus.map -Wl,-z,defs -o $@ $(LIB_PIC)
	$(Q)ln -sf libbus.so.$(VERSION) $(B)/$(SO_NAME)
	$(Q)ln -sf libbus.so.$(VERSION) $(B)/libbus.so

# Tests link the static library so they can reach internal symbols.
# CRSHIM=1 (the TSan build) swaps Criterion for tests/crshim: Criterion cannot
# start under ThreadSanitizer (Snaipe/Criterion#274).
ifeq ($(CRSHIM),1)
T_INC    := -Itests/crshim
T_RUNNER := tests/crshim/crshim.c
LDLIBS_T :=
endif
$(B)/tests/%: tests/%.c $(TEST_LIB) $(wildcard tests/t_*.h) $(T_RUNNER) $(B)/libbus.a
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) $(T_INC) -Itests -DT_BUILD_DIR='"$(abspath $(B))"' $(CFLAGS) \
	  -o $@ $< $(TEST_LIB) $(T_RUNNER) \
	  $(B)/libbus.a $(LDLIBS_T) -lpthread

# ---------------------------------------------------------------------------
# Tests. Each binary runs under a timeout with a private segment directory
# ($$BUS_TEST_SHM) that is removed afterwards whatever happened, so a crashed
# test leaves nothing in /dev/shm either.
TEST_TIMEOUT ?= 600
TEST_JOBS    ?= 2

deps:
	@sh mk/ensure-deps.sh

test check: deps
	$(Q)$(MAKE) --no-print-directory tests-build
	$(Q)sh mk/run-tests.sh $(B) $(TEST_TIMEOUT) $(TEST_JOBS) $(TEST_BIN)

.PHONY: tests-build
tests-build: lib $(BUSD) $(BUSCLI) $(TEST_BIN)

asan: deps
	$(Q)$(MAKE) --no-print-directory B=build-asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  tests-build
	$(Q)ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  BUS_TEST_SCALE=$${BUS_TEST_SCALE:-0.2} \
	  sh mk/run-tests.sh build-asan $(TEST_TIMEOUT) $(TEST_JOBS) $(TEST_BIN:$(B)/%=build-asan/%)

tsan: deps
	$(Q)$(MAKE) --no-print-directory B=build-tsan OPT=-O1 CRSHIM=1 \
	  SAN="-fsanitize=thread -fno-omit-frame-pointer -Wno-tsan" tests-build
	$(Q)TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	  BUS_TEST_SCALE=$${BUS_TEST_SCALE:-0.1} BUS_TEST_THREADS=1 \
	  sh mk/run-tests.sh build-tsan $(TEST_TIMEOUT) $(TEST_JOBS) $(TEST_BIN:$(B)/%=build-tsan/%)

-include bench/bench.mk
# Reliability runs (issue 6): soak, corruption generator, fuzzers, valgrind.
-include mk/soak.mk mk/corrupt.mk mk/fuzz.mk mk/valgrind.mk

# The product's main job: a bus. Foreground, Ctrl-C stops it cleanly.
run: all
	@sh mk/run-busd.sh $(BUSD) $(B)


# ---------------------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(PKGDIR) $(DESTDIR)$(MANDIR)/man3 \
	  $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man1
	install -m 0755 $(BUSD) $(DESTDIR)$(BINDIR)/busd
	install -m 0755 $(BUSCLI) $(DESTDIR)$(BINDIR)/bus
	install -m 0644 docs/man/bus.1 $(DESTDIR)$(MANDIR)/man1/bus.1
	install -m 0644 docs/man/busd.8 $(DESTDIR)$(MANDIR)/man8/busd.8
	install -m 0644 libbus/include/bus.h $(DESTDIR)$(INCDIR)/bus.h
	install -m 0644 $(B)/libbus.a $(DESTDIR)$(LIBDIR)/libbus.a
	install -m 0755 $(SO_REAL) $(DESTDIR)$(LIBDIR)/libbus.so.$(VERSION)
	ln -sf libbus.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SO_NAME)
	ln -sf libbus.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libbus.so
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCDIR@|$(INCDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    libbus/libbus.pc.in > $(DESTDIR)$(PKGDIR)/libbus.pc
	install -m 0644 docs/man/libbus.3 $(DESTDIR)$(MANDIR)/man3/libbus.3

uninstall:
	rm -f $(DESTDIR)$(INCDIR)/bus.h $(DESTDIR)$(LIBDIR)/libbus.a \
	      $(DESTDIR)$(LIBDIR)/libbus.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SO_NAME) \
	      $(DESTDIR)$(LIBDIR)/libbus.so $(DESTDIR)$(PKGDIR)/libbus.pc \
	      $(DESTDIR)$(MANDIR)/man3/libbus.3 $(DESTDIR)$(BINDIR)/busd $(DESTDIR)$(BINDIR)/bus \
	      $(DESTDIR)$(MANDIR)/man8/busd.8 $(DESTDIR)$(MANDIR)/man1/bus.1

clean:
	rm -rf build build-asan build-tsan build-fuzz build-vg

-include $(LIB_OBJ:.o=.d) $(LIB_PIC:.o=.d) $(BUSD_OBJ:.o=.d) $(TOOL_OBJ:.o=.d)
