#!/bin/sh
# run-busd.sh BUSD BUILD — `make run`: busd on the per-user bus, in the
# foreground, after a word on where it listens and what to try next.
busd=$1 build=$2
bus=${BUS_ADDRESS:-${XDG_RUNTIME_DIR:+$XDG_RUNTIME_DIR/bus}}
bus=${bus:-/tmp/bus-$(id -u)}
cat <<MSG
busd: serving the per-user bus in $bus (socket $bus/busd.sock)
      logs here and in ${XDG_STATE_HOME:-$HOME/.local/state}/bus/busd.log; Ctrl-C stops it.

Try, from another shell:
  make test                               # the test suite, against private buses
  cc -Ilibbus/include app.c $build/libbus.a -lpthread   # a program: see README.md, "Running a bus"
  BUS_ADDRESS=$bus ./app                  # (bus_connect(NULL, ...) finds this bus by default)
MSG
exec "$busd" --bus "$bus"
