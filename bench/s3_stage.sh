#!/usr/bin/env bash
# S3 input staging vs a plain download of the same object, in one run.
# Usage: bench/s3_stage.sh [SIZE_MIB] [RUNS]   (defaults 1024 and 3)
#
# Starts moto_server on a free port of 127.0.0.1, uploads one object of SIZE_MIB, then measures,
# RUNS times each, alternating:
#   plain:  a signed curl GET of the object to a file (no job; moto refuses anonymous reads);
#   staged: `shoal wasm run` of an empty module with `-i s3://bench/obj:/inputs/obj` on a
#           devstack node, minus the median of the same job without the input (so only
#           staging is counted).
# Writes bench/results/s03-s3stage.md (machine, date, commit, build profile); `bench/run.sh`
# assembles RESULTS.md from the fragments. Target: staged >= 80% of plain throughput.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shoal-target}"
SIZE_MIB="${1:-1024}"
RUNS="${2:-3}"
PROFILE="${SHOAL_BENCH_PROFILE:-release}"
if [ "$PROFILE" = release ]; then cargo build --release -p shoal-cli; else cargo build -p shoal-cli; fi
DIR=$PROFILE; [ "$PROFILE" = dev ] && DIR=debug
BIN="$CARGO_TARGET_DIR/$DIR/shoal"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
S3PORT=$(free_port); API=$(free_port)
# Any key does for moto without auth; the devstack agent reads it from its environment.
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
moto_server -H 127.0.0.1 -p "$S3PORT" >/dev/null 2>&1 & MOTO=$!
"$BIN" devstack --computes 1 --api-port "$API" --data-dir "$WORK/devstack" >/dev/null 2>&1 & DEV=$!
trap 'kill $MOTO $DEV 2>/dev/null; rm -rf "$WORK"' EXIT
EP="http://127.0.0.1:$S3PORT"
for _ in $(seq 100); do curl -s "$EP" >/dev/null && break; sleep 0.1; done
curl -s -X PUT "$EP/bench" >/dev/null
head -c $((SIZE_MIB << 20)) /dev/urandom >"$WORK/obj"
curl -s -X PUT --upload-file "$WORK/obj" "$EP/bench/obj" >/dev/null
rm "$WORK/obj"
echo '(module (func (export "_start")))' >"$WORK/empty.wat"
now() { python3 -c 'import time; print(time.monotonic())'; }
shoal() { "$BIN" --api-port "$API" "$@"; }
for _ in $(seq 100); do shoal node list >/dev/null 2>&1 && break; sleep 0.1; done

# A job's output goes to a log, shown only when the job fails.
job() { shoal wasm run "$WORK/empty.wat" "$@" >"$WORK/job.log" 2>&1 || { cat "$WORK/job.log"; exit 1; }; }
job   # warm the module cache
TIMES=()
for _ in $(seq "$RUNS"); do
  t0=$(now); got=$(curl -s -w '%{size_download}' -o "$WORK/plain" \
    --aws-sigv4 aws:amz:us-east-1:s3 --user bench:bench "$EP/bench/obj"); t1=$(now)
  rm "$WORK/plain"
  [ "$got" = $((SIZE_MIB << 20)) ] || { echo "plain download got $got bytes, not $((SIZE_MIB << 20))"; exit 1; }
  t2=$(now); job; t3=$(now)
  t4=$(now); job -i "src=s3://bench/obj,dst=/inputs/obj,opt=endpoint=$EP"; t5=$(now)
  TIMES+=("$t0,$t1,$t2,$t3,$t4,$t5")
done

mkdir -p bench/results
python3 - "$SIZE_MIB" "$PROFILE" "${TIMES[@]}" <<'PY' | tee bench/results/s03-s3stage.md
import sys, os, datetime, platform, subprocess, statistics
mib = int(sys.argv[1]); profile = sys.argv[2]
runs = [list(map(float, r.split(","))) for r in sys.argv[3:]]
plain = [t1 - t0 for t0, t1, *_ in runs]
base = statistics.median(t3 - t2 for _, _, t2, t3, _, _ in runs)
staged = [max(t5 - t4 - base, 1e-9) for *_, t4, t5 in runs]
p, s = statistics.median(plain), statistics.median(staged)
load = os.getloadavg()[0]
mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
spread = lambda xs: f"{min(xs):.2f}–{max(xs):.2f}"
met = "met" if p / s >= 0.8 else "**not met**"
print(f"""## S3 input staging vs plain download (bench/s3_stage.sh)

_{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC · {os.cpu_count()} cores, {mem:.0f} GiB memory, {model} · commit {commit} · {profile} build · devstack, 1 compute node_

One object of {mib} MiB of random bytes in moto_server (Python, in memory) on 127.0.0.1.
Plain: a signed `curl` GET (SigV4) to a file. Staged: a job whose only input is the object, minus the median
of the same job without the input ({base:.2f} s), so only staging is counted. {len(runs)} runs
each, alternating; medians (min–max). Load average at the end: {load:.1f} (other work shared
the machine).

| what | seconds | MiB/s |
|---|---|---|
| plain download (curl) | {p:.2f} ({spread(plain)}) | {mib/p:.0f} |
| staged as a job input | {s:.2f} ({spread(staged)}) | {mib/s:.0f} |
| staged / plain throughput | | **{p/s*100:.0f}%** |

Target: staged ≥ 80% of the plain download's throughput: {met}.""")
PY
