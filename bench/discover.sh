#!/usr/bin/env bash
# Benchmark: `discover` of a simulated tenant through the real binary over HTTP, with the
# service's throttling on. Prints the tool's summary, wall time and peak RSS (GNU time).
#
#   bench/discover.sh                 100,000 users, release build
#   USERS=1000000 bench/discover.sh   one million users
#   FAULTS="list-users:503=0.05,retry-after=1" bench/discover.sh
#
# The simulator runs in its own process (also release), so its memory is not counted in the
# tool's RSS; both share the machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-100000}
FAULTS=${FAULTS:-}
source bench/lib.sh
if [ -n "$FAULTS" ]; then
  start_sim "$USERS" "${PORT:-8960}" --faults "$FAULTS"
else
  start_sim "$USERS" "${PORT:-8960}"
fi
cd "$WORK"
echo "discover of $USERS simulated users (faults: ${FAULTS:-none})"
/usr/bin/time -f "wall %e s, peak RSS %M KB, CPU user %U s, system %S s" "$BIN" discover
ls -l "$WORK/b2b-convert.db" | awk '{print "database " $5 " bytes"}'
