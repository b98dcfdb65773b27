#!/usr/bin/env bash
# Benchmark: `discover` of a simulated tenant through the real binary over HTTP, with the
# service's throttling on. Prints the tool's summary, wall time and peak RSS (GNU time), then
# checks the database file alone holds every user (no write-ahead log left beside it).
#
#   bench/discover.sh                               100,000 users, release build
#   USERS=1000000 LATENCY=1-2s bench/discover.sh    a million users, each page 1-2 s (#19)
#   FAULTS="list-users:503=0.05,retry-after=1" bench/discover.sh
#   PARTITIONED=false bench/discover.sh             one sequence of pages, for comparison
#   CHANGE=100 USERS=1000000 LATENCY=1-2s bench/discover.sh
#                                                   then rename every 100th user (1 %) and time
#                                                   a second discover, which reads only changes
#
# LATENCY is the simulated time Graph takes per page of users (uniform in the range). The
# simulator runs in its own process (also release), so its memory is not counted in the tool's
# RSS; both share the machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-100000}
FAULTS=${FAULTS:-}
LATENCY=${LATENCY:-}
PARTITIONED=${PARTITIONED:-true}
CHANGE=${CHANGE:-}
if [ -n "$LATENCY" ]; then
  FAULTS="list-users:latency=$LATENCY${FAULTS:+; $FAULTS}"
fi
source bench/lib.sh
if [ -n "$FAULTS" ]; then
  start_sim "$USERS" "${PORT:-8960}" --faults "$FAULTS"
else
  start_sim "$USERS" "${PORT:-8960}"
fi
cd "$WORK"
printf '[discovery]\npartitioned = %s\n' "$PARTITIONED" > b2b-convert.toml
echo "discover of $USERS simulated users (faults: ${FAULTS:-none}; partitioned: $PARTITIONED)"
/usr/bin/time -f "wall %e s, peak RSS %M KB, CPU user %U s, system %S s" "$BIN" discover
ls -l "$WORK/b2b-convert.db" | awk '{print "database " $5 " bytes"}'
[ ! -s "$WORK/b2b-convert.db-wal" ] || { echo "a write-ahead log was left beside the database" >&2; exit 1; }
STORED=$(sqlite3 "$WORK/b2b-convert.db" "SELECT COUNT(*) FROM user_snapshots WHERE retired_at IS NULL")
echo "the database file alone holds $STORED of $USERS users"
[ "$STORED" -eq "$USERS" ] || exit 1
if [ -n "$CHANGE" ]; then
  # Behind the tool's back, as an admin editing users would (the simulator's admin API).
  RENAMED=$(curl -sf -X POST -d "{\"every\": $CHANGE}" "$B2BC_GRAPH_URL/_sim/users/rename")
  echo "changed: $RENAMED; discover again (reads the changes since the first)"
  /usr/bin/time -f "wall %e s, peak RSS %M KB, CPU user %U s, system %S s" "$BIN" discover
  STORED=$(sqlite3 "$WORK/b2b-convert.db" "SELECT COUNT(*) FROM user_snapshots WHERE display_name LIKE '% (renamed)'")
  echo "the database holds $STORED renamed users"
fi
