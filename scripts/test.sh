#!/usr/bin/env bash
# Runs the whole test suite (unit, in-process, process-level, real Docker and real wasmtime).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
if command -v cargo-nextest >/dev/null 2>&1; then
  exec cargo nextest run --workspace --no-fail-fast
else
  exec cargo test --workspace --no-fail-fast
fi
