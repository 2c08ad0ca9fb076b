#!/usr/bin/env bash
# Docker benchmark: a trivial container job through Shoal (devstack) vs the same container
# through the Docker Engine API directly; writes bench/results/s03-docker.md (bench/run.sh
# runs it and assembles bench/RESULTS.md).
# Usage: bench/docker.sh [--quick | --runs N]   (SHOAL_BENCH_PROFILE=dev measures the debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
N=300
case "${1:-}" in
  --quick) N=20 ;;
  --runs) N="${2:?--runs needs a number}" ;;
esac
PROFILE="${SHOAL_BENCH_PROFILE:-release}"
if [ "$PROFILE" = release ]; then cargo build --release -p shoal-cli; else cargo build -p shoal-cli; fi
DIR=$PROFILE; [ "$PROFILE" = dev ] && DIR=debug
BIN="$CARGO_TARGET_DIR/$DIR/shoal"
export SHOAL_BENCH_PROFILE=$PROFILE
bash scripts/build-test-images.sh
DATA=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" devstack --computes 1 --api-port "$PORT" --data-dir "$DATA" >/dev/null 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$DATA"' EXIT
mkdir -p bench/results
python3 bench/docker.py --port "$PORT" --runs "$N" --out bench/results/s03-docker.md
