# bench/bench.mk — included by the top-level Makefile.
#
#   make bench               build bus-bench and run every case (~1 minute):
#                            one table on stdout, a CSV in $(B)/bench/results.csv
#   make bench-build         only build $(B)/bench/bus-bench
#   BENCH_QUICK=1 make bench every case ~5x shorter (smoke run, ~12 s)
#   BENCH_ARGS="--only tp,limits" make bench    a subset (bus-bench --help)
#   BENCH_ARGS="--only busd" make bench         busd's control plane (~15 s)
#   BENCH_ARGS="--only durable" make bench      durable topics, log on disk (~1.5 min;
#                                               quick ~7 s, <= 200 MB of /var/tmp)
#
# One binary: the sources are few and small, so they are compiled in one
# step, rebuilt whenever any of them or libbus changes. ZeroMQ is linked for
# the peer comparison only; nothing else in the project uses it (mk/ensure-
# deps.sh installs it with the other build dependencies).
# liburing: the durable group's raw io_uring writer (busd links it too).

BENCH_SRC  := $(wildcard bench/*.c)
BENCH_BIN  := $(B)/bench/bus-bench
BENCH_CSV  := $(B)/bench/results.csv
BENCH_LIBS := $(shell pkg-config --libs libzmq 2>/dev/null || echo -lzmq) -lpthread -lm \
              $(LDLIBS_URING)

.PHONY: bench bench-build

# deps first, then the binary in a sub-make, as `make test` does, so that a
# parallel make never compiles before the headers are installed. busd too:
# the busd section starts the one next to the binary, $(B)/bin/busd.
bench-build: deps
	$(Q)$(MAKE) --no-print-directory $(BENCH_BIN) $(BUSD)

$(BENCH_BIN): $(BENCH_SRC) bench/bench.h $(B)/libbus.a
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CCLD    $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $(BENCH_SRC) $(B)/libbus.a $(BENCH_LIBS)

bench: bench-build
	$(Q)$(BENCH_BIN) --csv $(BENCH_CSV) $(BENCH_ARGS)
