#!/usr/bin/env bash
# Benchmark: `plan --all` over a stored snapshot of a simulated tenant (default 100,000 users).
# Discovers the tenant first (not timed), then times planning: the rules, the address
# collision lookups, the realm lookups (a handful of domains) and storing the plan.
#
#   bench/plan.sh
#   USERS=1000000 bench/plan.sh
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-100000}
source bench/lib.sh
start_sim "$USERS" "${PORT:-8963}" --no-throttling
cd "$WORK"
"$BIN" discover > /dev/null
echo "plan --all of $USERS stored users"
/usr/bin/time -f "wall %e s, peak RSS %M KB, CPU user %U s, system %S s" "$BIN" plan --wave bench --all
