# SPDX-License-Identifier: MIT
# mk/soak.mk — the crash soak (issue 6), included by the top Makefile.
#
#   make soak                               60 s of kills (the CI run)
#   make soak SOAK_ARGS="--seconds 3600"    as long as asked
#   make soak SOAK_ARGS="--kills 10000 -v"  until that many kills
#
# tests/soak.c is a standalone program, not a Criterion suite: it links the
# test helpers that do not use Criterion, and the busd of the same build
# (T_BUILD_DIR). It runs in a directory of its own on /dev/shm, which the
# recipe removes afterwards whatever happened, failing if anything was left.

SOAK      := $(B)/tests/soak
SOAK_LIB  := tests/t_util.c tests/t_busd.c tests/t_log.c
SOAK_ARGS ?= --seconds 60

.PHONY: soak soak-build
soak-build: lib $(BUSD) $(SOAK)

# An explicit rule: the pattern rule for tests/test_*.c would link Criterion.
$(SOAK): tests/soak.c $(SOAK_LIB) tests/t_util.h tests/t_busd.h tests/t_log.h $(B)/libbus.a
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) -Itests -DT_BUILD_DIR='"$(abspath $(B))"' $(CFLAGS) \
	  -o $@ tests/soak.c $(SOAK_LIB) $(B)/libbus.a -lpthread

soak: soak-build
	$(Q)dir=$$(mktemp -d /dev/shm/bus-soak.XXXXXX) || exit 1; \
	BUS_TEST_SHM=$$dir $(SOAK) $(SOAK_ARGS); rc=$$?; \
	left=$$(find "$$dir" -mindepth 1 2>/dev/null | head -5); \
	if [ -n "$$left" ]; then \
		echo "soak: left files behind:"; echo "$$left"; rc=1; \
	fi; \
	rm -rf "$$dir"; exit $$rc
