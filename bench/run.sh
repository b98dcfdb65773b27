#!/usr/bin/env bash
# Benchmark: `run` converting a wave against the simulated tenant with realistic latency and the
# service's throttling (150 invitations per 5 s per tenant). Discovers and plans first (not
# timed), then times the run. CONVERSIONS users are converted (a CSV wave of that many
# eligible users), at the configured rate and concurrency.
#
#   bench/run.sh                                   # 10,000 conversions, default settings
#   CONVERSIONS=1000 CONCURRENCY=1 bench/run.sh    # the loop a script would do
#   RATE=30 CONCURRENCY=32 bench/run.sh
#   LATENCY=150-600ms bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CONVERSIONS=${CONVERSIONS:-10000}
LATENCY=${LATENCY:-100-400ms}
# The simulator's case mix makes 58 % of users eligible; take enough users for the wave.
USERS=$(( CONVERSIONS * 2 + 1000 ))
source bench/lib.sh
start_sim "$USERS" "${PORT:-8964}" \
  --faults "invitations:latency=$LATENCY;get-user:latency=20-80ms;patch-user:latency=50-150ms"
cd "$WORK"
"$BIN" discover > /dev/null
"$BIN" plan --wave everyone --all > /dev/null
# The wave: the first CONVERSIONS eligible users of the full plan.
{ echo user; "$BIN" report --wave everyone --format csv \
  | awk -F, -v n="$CONVERSIONS" '$4 == "eligible" && c < n { print $1; c++ }'; } > wave.csv
"$BIN" plan --wave bench --csv wave.csv > /dev/null
ARGS=(run --wave bench --yes)
[ -n "${RATE:-}" ] && ARGS+=(--rate "$RATE")
[ -n "${CONCURRENCY:-}" ] && ARGS+=(--concurrency "$CONCURRENCY")
echo "run: $CONVERSIONS conversions, invitation latency $LATENCY, rate ${RATE:-default (24/s)}, concurrency ${CONCURRENCY:-default (16)}"
/usr/bin/time -f "wall %e s, peak RSS %M KB, CPU user %U s, system %S s" "$BIN" "${ARGS[@]}"
curl -s "$B2BC_GRAPH_URL/_sim/counters" | grep -o '"invitationsCreated":[0-9]*' || true
