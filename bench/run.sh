#!/usr/bin/env bash
# Runs Shoal's benchmarks and rewrites bench/RESULTS.md. Usage: bench/run.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
N=300
[ "${1:-}" = "--quick" ] && N=50
# SHOAL_BENCH_PROFILE=dev measures the debug build (dependencies at opt-level 1), which is
# much quicker to build; RESULTS.md says which profile was measured.
PROFILE="${SHOAL_BENCH_PROFILE:-release}"
if [ "$PROFILE" = release ]; then cargo build --release -p shoal-cli; else cargo build -p shoal-cli; fi
DIR=$PROFILE; [ "$PROFILE" = dev ] && DIR=debug
BIN="$CARGO_TARGET_DIR/$DIR/shoal"
export SHOAL_BENCH_PROFILE=$PROFILE
DATA=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" devstack --computes 1 --api-port "$PORT" --data-dir "$DATA" >/dev/null 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$DATA"' EXIT
python3 bench/latency.py --port "$PORT" --runs "$N" --out bench/RESULTS.md
