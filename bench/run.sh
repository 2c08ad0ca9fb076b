#!/usr/bin/env bash
# Runs Shoal's benchmarks and rewrites bench/RESULTS.md.
#
#   bench/run.sh [--quick] [--only S2,S10]
#
# --quick finishes in a few minutes; the full run takes about 30 minutes on 2 cores (18 min measured, plus up to 10 for S1 through the orchestrator). Every
# scenario writes bench/results/<scenario>.md (machine, date, commit, mode) and RESULTS.md is
# assembled from those fragments, so running one scenario keeps the others' figures.
# SHOAL_BENCH_PROFILE=dev measures the debug build (much quicker to build; the figures say so).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
PROFILE="${SHOAL_BENCH_PROFILE:-release}"
export SHOAL_BENCH_PROFILE=$PROFILE
if [ "$PROFILE" = release ]; then
  cargo build --release -p shoal-cli -p shoal-bench
  DIR=release
else
  cargo build -p shoal-cli -p shoal-bench
  DIR=debug
fi
# Peers measured in the same run, when pip can install them (the figures say when one is missing).
if ! command -v salt-minion >/dev/null 2>&1; then
  pip install --quiet salt >/dev/null 2>&1 || echo "bench: could not install salt; the Salt peer figures will say so"
fi
# The Docker scenario is a script of its own (it writes bench/results/s03-docker.md); run it
# with the others unless --only leaves it out.
QUICK=""; ONLY=""
for a in "$@"; do case "$a" in --quick) QUICK=--quick ;; esac; done
for ((i = 1; i <= $#; i++)); do [ "${!i}" = --only ] && { j=$((i + 1)); ONLY="${!j}"; }; done
if [ -z "$ONLY" ] || [[ ",${ONLY^^}," == *,DOCKER,* ]]; then
  if docker info >/dev/null 2>&1; then
    bash bench/docker.sh $QUICK || echo "bench: the Docker scenario failed; its old figures are kept"
  else
    echo "bench: no Docker daemon answers; the Docker scenario is skipped"
  fi
fi
exec "$CARGO_TARGET_DIR/$DIR/shoal-bench" --shoal "$CARGO_TARGET_DIR/$DIR/shoal" "$@"
