#!/usr/bin/env bash
# Benchmark: `run` converting a wave against the simulated tenant with realistic latency and the
# service's throttling (150 invitations per 5 s per tenant: a ceiling of 30/s). Discovers and
# plans first (not timed), then times two runs in the same script, on the same machine at the
# same time: the one-request-at-a-time baseline (what a script's loop does: concurrency 1) on
# BASELINE users, then the product on CONVERSIONS users at the configured rate and
# concurrency. It prints each run's rate, the ratio between them, and the share of the ceiling
# and of the configured rate the product reached.
#
#   bench/run.sh                                   # 10,000 conversions, default settings
#   CONVERSIONS=3000 LATENCY=150-600ms bench/run.sh   # OTHER_LATENCY: every other call (20-80ms)
#   RATE=30 CONCURRENCY=32 bench/run.sh
#   BASELINE=0 bench/run.sh                        # the product alone
#   COUNTED_AT=answer bench/run.sh                 # the service counts an invitation once answered
#   CLIENT=/path/to/old/b2b-convert bench/run.sh   # time another build's `run` (same simulator)
#
# COUNTED_AT is the simulator's --throttle-counted-at: `arrival` (default; a request counts when
# it reaches the service) or `answer` (after its latency: the pessimistic model, where requests
# sent in order are counted up to the latency's spread out of order).
set -euo pipefail
cd "$(dirname "$0")/.."
CONVERSIONS=${CONVERSIONS:-10000}
BASELINE=${BASELINE:-200}
LATENCY=${LATENCY:-100-400ms}
CEILING=30
# The simulator's case mix makes about 56 % of users eligible; take enough users for both waves.
USERS=$(( (CONVERSIONS + BASELINE) * 2 + 1000 ))
source bench/lib.sh
# Every other call a conversion makes (the re-read, the mail PATCH, the baseline's reads of
# groups and app role assignments) answers in OTHER_LATENCY.
OTHER=${OTHER_LATENCY:-20-80ms}
start_sim "$USERS" "${PORT:-8964}" --throttle-counted-at "${COUNTED_AT:-arrival}" \
  --faults "invitations:latency=$LATENCY;get-user:latency=$OTHER;patch-user:latency=$OTHER;member-of:latency=$OTHER;app-role-assignments:latency=$OTHER"
CLIENT=${CLIENT:-$BIN}
cd "$WORK"
"$BIN" discover > /dev/null
"$BIN" plan --wave everyone --all > /dev/null
# The waves: the first CONVERSIONS eligible users of the full plan, then BASELINE more.
"$BIN" report --wave everyone --format csv | awk -F, '$4 == "eligible" { print $1 }' > eligible.txt
{ echo user; head -n "$CONVERSIONS" eligible.txt; } > wave.csv
# (awk, not `tail | head`: with BASELINE=0 head exits at once and pipefail ends the script.)
{ echo user; awk -v skip="$CONVERSIONS" -v n="$BASELINE" 'NR > skip && NR <= skip + n' eligible.txt; } > baseline.csv
[ "$(( $(wc -l < wave.csv) - 1 ))" -eq "$CONVERSIONS" ] || { echo "not enough eligible users" >&2; exit 1; }

# `run` prints "<s> s, <rate> invitations/s, throttled <n> time(s)."; the rate is the second field.
rate_of() { awk '/ invitations\/s, throttled / { gsub(",", "", $3); print $3 }' "$1"; }

baseline_rate=
if [ "$BASELINE" -gt 0 ]; then
  "$BIN" plan --wave baseline --csv baseline.csv > /dev/null
  echo "baseline: $BASELINE conversions one at a time (concurrency 1), invitation latency $LATENCY"
  /usr/bin/time -f "wall %e s, peak RSS %M KB, CPU user %U s, system %S s" \
    "$CLIENT" run --wave baseline --yes --concurrency 1 | tee baseline.out | grep " invitations/s, throttled "
  baseline_rate=$(rate_of baseline.out)
fi

"$BIN" plan --wave bench --csv wave.csv > /dev/null
ARGS=(run --wave bench --yes)
[ -n "${RATE:-}" ] && ARGS+=(--rate "$RATE")
[ -n "${CONCURRENCY:-}" ] && ARGS+=(--concurrency "$CONCURRENCY")
configured=${RATE:-$("$BIN" config --json \
  | awk '/"key": "throughput.max_invitations_per_second"/ { getline; gsub(/[^0-9.]/, ""); print; exit }')}
echo "run: $CONVERSIONS conversions, invitation latency $LATENCY, rate $configured/s, concurrency ${CONCURRENCY:-default}"
/usr/bin/time -f "wall %e s, peak RSS %M KB, CPU user %U s, system %S s" "$CLIENT" "${ARGS[@]}" | tee run.out | grep " invitations/s, throttled "
product_rate=$(rate_of run.out)
throttled=$(awk '/ invitations\/s, throttled / { print $6 }' run.out)
curl -s "$B2BC_GRAPH_URL/_sim/counters" | grep -o '"invitationsCreated":[0-9]*' || true

awk -v p="$product_rate" -v b="$baseline_rate" -v c="$CEILING" -v r="$configured" -v t="$throttled" -v n="$CONVERSIONS" 'BEGIN {
  printf "product: %.1f conversions/s = %.0f %% of the %d/s ceiling, %.0f %% of the configured %s/s; %s throttled answer(s) (%.2f %% of %d)\n", p, 100 * p / c, c, 100 * p / r, r, t, 100 * t / n, n
  if (b != "") printf "baseline (one at a time): %.1f/s; the product is %.1fx faster\n", b, p / b
}'
