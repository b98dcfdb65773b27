#!/usr/bin/env bash
# Benchmark: `plan --all` over a stored snapshot of a simulated tenant (default 100,000 users).
# Discovers the tenant first (not timed), then times planning: the rules, the address
# collision lookups, the realm lookups (a handful of domains) and storing the plan.
#
#   bench/plan.sh
#   USERS=1000000 bench/plan.sh
#   KEEP=/tmp/plan-1m USERS=1000000 RUNS=3 bench/plan.sh
#   CSV=1 USERS=100000 bench/plan.sh      plan the wave from a CSV listing every user instead
#
# KEEP=dir keeps the discovered database in dir (discovering only if dir has none for this
# many users), so later runs time the plan alone. RUNS=n times n plans, each of a fresh copy of
# the discovered database (a new wave, as in the first run; the realm cache starts empty).
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-100000}
RUNS=${RUNS:-1}
KEEP=${KEEP:-}
source bench/lib.sh
start_sim "$USERS" "${PORT:-8963}" --no-throttling
cd "$WORK"
SNAPSHOT=$WORK/discovered.db
if [ -n "$KEEP" ]; then
  mkdir -p "$KEEP"
  SNAPSHOT=$KEEP/discovered-$USERS.db
fi
if [ ! -f "$SNAPSHOT" ]; then
  echo "discovering $USERS simulated users (not timed)"
  "$BIN" discover > /dev/null
  # `backup` copies one consistent moment of the database, whatever is still in its
  # write-ahead log (copying the `.db` file alone could miss the last pages).
  rm -f "$SNAPSHOT.tmp"
  "$BIN" backup --out "$SNAPSHOT.tmp" > /dev/null
  mv "$SNAPSHOT.tmp" "$SNAPSHOT"
fi
# A benchmark of a partial snapshot measures nothing: check the copy holds every user.
STORED=$(sqlite3 "$SNAPSHOT" "SELECT COUNT(*) FROM user_snapshots")
[ "$STORED" -eq "$USERS" ] || { echo "the snapshot holds $STORED of $USERS users" >&2; exit 1; }
for run in $(seq "$RUNS"); do
  rm -f b2b-convert.db b2b-convert.db-wal b2b-convert.db-shm
  cp "$SNAPSHOT" b2b-convert.db
  # Flush the copy now, or its write-back (a gigabyte at a million users) lands in the timing.
  sync
  if [ -n "${CSV:-}" ]; then
    # Every stored user, half by object id and half by UPN, as an operator's list would.
    { echo "user"; sqlite3 b2b-convert.db \
        "SELECT CASE WHEN rowid % 2 = 0 THEN id ELSE user_principal_name END FROM user_snapshots"; } > users.csv
    echo "plan --csv users.csv of $(($(wc -l < users.csv) - 1)) listed users (run $run of $RUNS)"
    /usr/bin/time -f "wall %e s, peak RSS %M KB, CPU user %U s, system %S s" "$BIN" plan --wave bench --csv users.csv
  else
    echo "plan --all of $USERS stored users (run $run of $RUNS)"
    /usr/bin/time -f "wall %e s, peak RSS %M KB, CPU user %U s, system %S s" "$BIN" plan --wave bench --all
  fi
done
