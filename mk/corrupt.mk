# SPDX-License-Identifier: MIT
# mk/corrupt.mk — the corrupted-log generator (issue 6), included by the top Makefile.
#
#   make corrupt                           build, then run the CI size (300 cases)
#   make corrupt CORRUPT_ARGS="--cases 10000"        the long run
#   make corrupt CORRUPT_ARGS="--seed S --case N"    replay one case, verbosely
#   make corrupt B=build-asan OPT=-O1 \
#     SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
#     CORRUPT_ARGS="--cases 48"            under ASan + UBSan (program, busd and bus)
#
# tests/corrupt is a plain program (no Criterion): it links the test helpers
# and the static library, and runs busd and bus from the same build directory.
# It gets a private directory on /dev/shm that is removed afterwards whatever
# happened, as mk/run-tests.sh does for the suites.
CORRUPT      := $(B)/tests/corrupt
CORRUPT_LIB  := tests/t_util.c tests/t_busd.c tests/t_log.c
CORRUPT_ARGS ?=

$(CORRUPT): tests/corrupt.c $(CORRUPT_LIB) tests/t_util.h tests/t_busd.h tests/t_log.h \
	    $(B)/libbus.a
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) -Itests -DT_BUILD_DIR='"$(abspath $(B))"' $(CFLAGS) \
	  -o $@ tests/corrupt.c $(CORRUPT_LIB) $(B)/libbus.a -lpthread

# Sanitizer reports end the process by a signal, so that the program counts
# them as crashes (the options are ignored by a build without sanitizers).
.PHONY: corrupt
corrupt: $(CORRUPT) $(BUSD) $(BUSCLI)
	$(Q)dir=$$(mktemp -d /dev/shm/bus-corrupt.XXXXXX) || exit 1; \
	ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
	UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:abort_on_error=1} \
	BUS_TEST_SHM=$$dir $(CORRUPT) $(CORRUPT_ARGS); rc=$$?; \
	left=$$(find "$$dir" -mindepth 1 2>/dev/null | head -5); \
	if [ -n "$$left" ]; then echo "corrupt: left files behind:"; echo "$$left"; rc=1; fi; \
	rm -rf "$$dir"; exit $$rc
