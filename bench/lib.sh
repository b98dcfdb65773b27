# Shared by the benchmark scripts: build the release binary and start the simulated tenant.
# Sourced, not run. Sets BIN and WORK, exports the sim's environment, and stops the sim on exit.
#   start_sim USERS PORT [extra `sim serve` arguments...]
# Honours CARGO_TARGET_DIR (the binary is looked for where cargo puts it).
command -v /usr/bin/time >/dev/null || { echo "needs GNU time (/usr/bin/time)" >&2; exit 1; }
cargo build --release --locked --quiet
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/b2b-convert
WORK=$(mktemp -d)

start_sim() {
  local users=$1 port=$2
  shift 2
  "$BIN" sim serve --users "$users" --seed 7 --port "$port" "$@" > "$WORK/sim.out" 2>&1 &
  SIM_PID=$!
  trap 'kill -INT $SIM_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
  until grep -q "Press Ctrl-C" "$WORK/sim.out" 2>/dev/null; do
    kill -0 $SIM_PID 2>/dev/null || { cat "$WORK/sim.out" >&2; exit 1; }
    sleep 0.1
  done
  eval "$(grep '^export ' "$WORK/sim.out")"
}
