#!/usr/bin/env bash
# S3 input staging vs a plain download of the same object, in one run.
# Usage: bench/s3_stage.sh [SIZE_MIB]   (default 1024)
#
# Starts moto_server on a free port of 127.0.0.1, uploads one object of SIZE_MIB, then measures:
#   plain:  curl GET of the object to a file (no job);
#   staged: `shoal wasm run` of an empty module with `-i s3://bench/obj:/inputs/obj` on a
#           devstack node, minus the same job without the input (so only staging is counted).
# Appends a section to bench/RESULTS.md with machine and date. Target: staged >= 80% of plain.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
SIZE_MIB="${1:-1024}"
PROFILE="${SHOAL_BENCH_PROFILE:-release}"
if [ "$PROFILE" = release ]; then cargo build --release -p shoal-cli; else cargo build -p shoal-cli; fi
DIR=$PROFILE; [ "$PROFILE" = dev ] && DIR=debug
BIN="$CARGO_TARGET_DIR/$DIR/shoal"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
S3PORT=$(free_port); API=$(free_port)
moto_server -H 127.0.0.1 -p "$S3PORT" >/dev/null 2>&1 & MOTO=$!
"$BIN" devstack --computes 1 --api-port "$API" --data-dir "$WORK/devstack" >/dev/null 2>&1 & DEV=$!
trap 'kill $MOTO $DEV 2>/dev/null; rm -rf "$WORK"' EXIT
EP="http://127.0.0.1:$S3PORT"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
for _ in $(seq 100); do curl -s "$EP" >/dev/null && break; sleep 0.1; done
curl -s -X PUT "$EP/bench" >/dev/null
head -c $((SIZE_MIB << 20)) /dev/urandom >"$WORK/obj"
curl -s -X PUT --upload-file "$WORK/obj" "$EP/bench/obj" >/dev/null
rm "$WORK/obj"
echo '(module (func (export "_start")))' >"$WORK/empty.wat"
now() { python3 -c 'import time; print(time.monotonic())'; }
shoal() { "$BIN" --api-port "$API" "$@"; }
for _ in $(seq 100); do shoal node list >/dev/null 2>&1 && break; sleep 0.1; done

t0=$(now); curl -s -o "$WORK/plain" "$EP/bench/obj"; t1=$(now); rm "$WORK/plain"
shoal wasm run "$WORK/empty.wat" >/dev/null   # warm the module cache
t2=$(now); shoal wasm run "$WORK/empty.wat" >/dev/null; t3=$(now)
t4=$(now); shoal wasm run "$WORK/empty.wat" -i "src=s3://bench/obj,dst=/inputs/obj,opt=endpoint=$EP" >/dev/null; t5=$(now)

python3 - "$SIZE_MIB" "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$PROFILE" <<'PY' | tee -a bench/RESULTS.md
import sys, os, datetime, platform, subprocess
mib = int(sys.argv[1]); t0, t1, t2, t3, t4, t5 = map(float, sys.argv[2:8]); profile = sys.argv[8]
plain = t1 - t0; base = t3 - t2; staged = max(t5 - t4 - base, 1e-9)
mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print(f"""
## S3 input staging vs plain download (bench/s3_stage.sh)

- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores, {mem:.0f} GiB, {platform.machine()}; commit {commit}; build profile: {profile}
- Server: moto_server on 127.0.0.1 (in-memory, Python); object: {mib} MiB of random bytes

| what | seconds | MiB/s |
|---|---|---|
| plain download (curl) | {plain:.2f} | {mib/plain:.0f} |
| job with the object as input, minus the same job without it | {staged:.2f} | {mib/staged:.0f} |
| staged / plain throughput | | **{plain/staged*100:.0f}%** (target >= 80%) |
""")
PY
