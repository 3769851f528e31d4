#!/bin/sh
# run-busd.sh BUSD BUILD — `make run`: busd on the per-user bus, in the
# foreground, after a word on where it listens and what to try next.
busd=$1 build=$2
bus=${BUS_ADDRESS:-${XDG_RUNTIME_DIR:+$XDG_RUNTIME_DIR/bus}}
bus=${bus:-/tmp/bus-$(id -u)}
cat <<MSG
busd: serving the per-user bus in $bus (socket $bus/busd.sock)
      logs here and in ${XDG_STATE_HOME:-$HOME/.local/state}/bus/busd.log; Ctrl-C stops it.

Try, from another shell (the tool finds this bus by itself):
  $build/bin/bus create demo --durable          # a topic with a log on disk
  seq 1 1000 | $build/bin/bus pub demo          # publish 1000 events
  $build/bin/bus tail demo --from earliest -f   # read them, then wait for more
  $build/bin/bus ls                             # what is on the bus
  $build/bin/bus top                            # watch it live (q quits)
MSG
exec "$busd" --bus "$bus"
