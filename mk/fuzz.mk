# SPDX-License-Identifier: MIT
# fuzz.mk — libFuzzer targets (tests/fuzz/), included by the top Makefile.
#
#   make fuzz                  build every target into build-fuzz/ (clang; installs
#                              Debian's clang + libclang-rt-dev when missing, as root)
#   make fuzz-smoke            replay the regressions, then run each target for
#                              FUZZ_SECONDS (30) on its corpus; fails on any crash
#   make fuzz-run              long runs: FUZZ_SECONDS=3600 FUZZ_TARGETS="proto log",
#                              libFuzzer's status lines shown; FUZZ_FORK=1 keeps going
#                              after a crash (each one saved, and counted)
#   make fuzz-regress          only replay the inputs in tests/fuzz/regress/
#   make fuzz-merge            fold what the runs found into tests/fuzz/corpus/
#                              (only when asked: the runs work on copies)
#   make fuzz-corpus           regenerate the seed corpora from a real busd
#
# Targets: proto (busd/decode.c), log (libbus log reader), seg (consumer attach
# and read of a hostile segment), cli (tools/util.c parsers). Everything a run
# writes stays in build-fuzz/ and in a private /dev/shm directory removed at
# its end; crash inputs land in build-fuzz/run/TARGET/.

FUZZ_CC      ?= clang
FZ           := build-fuzz
FUZZ_TARGETS ?= proto log seg cli
FUZZ_SECONDS ?= 30
FUZZ_FORK    ?= 0
FZ_SAN       := -fsanitize=address,undefined -fno-sanitize-recover=undefined
# Product code: instrumented for coverage, no libFuzzer main.
FZ_CFLAGS    := $(WARN) -O1 -g -fno-omit-frame-pointer -fno-strict-aliasing \
                -fsanitize=fuzzer-no-link $(FZ_SAN)
FZ_CPPFLAGS  := -D_GNU_SOURCE -Ilibbus/include -Ilibbus/src -Ibusd -Itools -Itests/fuzz

FZ_LIB_OBJ   := $(LIB_SRC:%.c=$(FZ)/obj/%.o)
FZ_BINS      := $(FUZZ_TARGETS:%=$(FZ)/fuzz_%)

.PHONY: fuzz fuzz-deps fuzz-smoke fuzz-run fuzz-regress fuzz-merge fuzz-corpus
fuzz: fuzz-deps
	$(Q)$(MAKE) --no-print-directory $(FZ_BINS)

fuzz-deps:
	@sh mk/ensure-clang.sh $(FUZZ_CC)

$(FZ)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC [fuzz] $<")
	$(Q)$(FUZZ_CC) $(FZ_CPPFLAGS) $(FZ_CFLAGS) -MMD -MP -c $< -o $@

# Objects reached only through the pattern rule below: keep them (make would
# delete them as intermediate files and rebuild them every time).
.SECONDARY: $(patsubst %,$(FZ)/obj/tests/fuzz/fuzz_%.o,proto log seg cli util) \
	    $(FZ)/obj/busd/decode.o $(FZ)/obj/tools/util.o

$(FZ)/libbus.a: $(FZ_LIB_OBJ)
	$(if $(Q),@echo "  AR      $@")
	$(Q)rm -f $@ && $(AR) rcs $@ $^

# The targets themselves link libFuzzer's main; two need product code from
# outside libbus.
$(FZ)/fuzz_proto: $(FZ)/obj/busd/decode.o
$(FZ)/fuzz_cli: $(FZ)/obj/tools/util.o
$(FZ)/fuzz_%: $(FZ)/obj/tests/fuzz/fuzz_%.o $(FZ)/obj/tests/fuzz/fuzz_util.o $(FZ)/libbus.a
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(FUZZ_CC) $(FZ_CFLAGS) -fsanitize=fuzzer -o $@ $(filter %.o,$^) $(FZ)/libbus.a -lpthread

fuzz-smoke: fuzz
	$(Q)sh tests/fuzz/run.sh smoke $(FZ) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-run: fuzz
	$(Q)FUZZ_FORK=$(FUZZ_FORK) sh tests/fuzz/run.sh run $(FZ) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-regress: fuzz
	$(Q)sh tests/fuzz/run.sh regress $(FZ) 0 $(FUZZ_TARGETS)

fuzz-merge: fuzz
	$(Q)sh tests/fuzz/run.sh merge $(FZ) 0 $(FUZZ_TARGETS)

# The seed generator is an ordinary program (gcc, the normal build): it
# starts a real busd from $(B)/bin.
$(B)/tests/fuzz-mkcorpus: tests/fuzz/mkcorpus.c tests/t_util.c tests/t_busd.c tests/t_log.c \
			  $(B)/libbus.a
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) -Itests -DT_BUILD_DIR='"$(abspath $(B))"' $(CFLAGS) -o $@ \
	  tests/fuzz/mkcorpus.c tests/t_util.c tests/t_busd.c tests/t_log.c $(B)/libbus.a -lpthread

fuzz-corpus: $(BUSD) $(B)/tests/fuzz-mkcorpus
	$(Q)$(B)/tests/fuzz-mkcorpus tests/fuzz/corpus

-include $(wildcard $(FZ)/obj/*/*.d $(FZ)/obj/*/*/*.d)
