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
PORT=${PORT:-8963}
command -v /usr/bin/time >/dev/null || { echo "needs GNU time (/usr/bin/time)" >&2; exit 1; }

cargo build --release --locked --quiet
BIN=$PWD/target/release/b2b-convert
WORK=$(mktemp -d)
"$BIN" sim serve --users "$USERS" --seed 7 --port "$PORT" --no-throttling > "$WORK/sim.out" 2>&1 &
SIM_PID=$!
trap 'kill -INT $SIM_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
until grep -q "Press Ctrl-C" "$WORK/sim.out"; do
  kill -0 $SIM_PID 2>/dev/null || { cat "$WORK/sim.out" >&2; exit 1; }
  sleep 0.1
done
eval "$(grep '^export ' "$WORK/sim.out")"
cd "$WORK"
"$BIN" discover > /dev/null
echo "plan --all of $USERS stored users"
/usr/bin/time -f "wall %e s, peak RSS %M KB, CPU user %U s, system %S s" "$BIN" plan --wave bench --all
