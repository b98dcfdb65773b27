#!/usr/bin/env bash
# Benchmark: `discover` of a simulated tenant through the real binary over HTTP, with the
# service's throttling on. Prints the tool's summary, wall time and peak RSS (GNU time).
#
#   bench/discover.sh                 100,000 users, release build
#   USERS=1000000 bench/discover.sh   one million users
#   FAULTS="list-users:503=0.05,retry-after=1" bench/discover.sh
#
# The simulator runs in its own process (also release), so its CPU is not counted in the
# tool's RSS; both share the machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-100000}
PORT=${PORT:-8960}
FAULTS=${FAULTS:-}
command -v /usr/bin/time >/dev/null || { echo "needs GNU time (/usr/bin/time)" >&2; exit 1; }

cargo build --release --locked --quiet
BIN=$PWD/target/release/b2b-convert
WORK=$(mktemp -d)
SIM_ARGS=(sim serve --users "$USERS" --seed 7 --port "$PORT")
[ -n "$FAULTS" ] && SIM_ARGS+=(--faults "$FAULTS")
"$BIN" "${SIM_ARGS[@]}" > "$WORK/sim.out" 2>&1 &
SIM_PID=$!
trap 'kill -INT $SIM_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
until grep -q "Press Ctrl-C" "$WORK/sim.out"; do
  kill -0 $SIM_PID 2>/dev/null || { cat "$WORK/sim.out" >&2; exit 1; }
  sleep 0.1
done
eval "$(grep '^export ' "$WORK/sim.out")"
cd "$WORK"
echo "discover of $USERS simulated users (faults: ${FAULTS:-none})"
/usr/bin/time -f "wall %e s, peak RSS %M KB, CPU user %U s, system %S s" "$BIN" discover
ls -l "$WORK/b2b-convert.db" | awk '{print "database " $5 " bytes"}'
