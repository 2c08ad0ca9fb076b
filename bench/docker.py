"""Docker: a trivial container job through Shoal vs the same container driven directly through
the Docker Engine API, side by side in one run.

Shoal: PUT a batch job (docker engine, `true` in shoal-test/busybox, no network, no Resources,
as a user would send it) over the REST API and poll the job until Completed, as a client would;
its time ends at the orchestrator's record of the completion (the job's `ModifyTime`, same
clock), so that the poll interval neither adds to it nor, polled fast, takes CPU from the
daemon on small machines.
Direct: over the daemon's unix socket, create the same container, start it, wait for it, read
its logs, inspect it and remove it (the work the docker executor does for one execution).
"The same container" includes the memory and CPU limits Shoal gave the task: they are read
from the first job's execution (`AllocatedResources`), because a CPU quota alone changes how
long the daemon takes to start a container. A third path starts the container without limits,
to show what the limits cost apart from Shoal. The paths alternate, so that all see the same
daemon state; the first runs of each are warm-up. Writes the S3 fragment of bench/RESULTS.md
with the machine, the date and the commit.
"""
import argparse, http.client, json, os, platform, random, socket, statistics, subprocess, time, urllib.parse, urllib.request

IMAGE = "shoal-test/busybox:latest"
WARMUP = 3
# Polling every 2 ms took a dev build about 36 ms of CPU per job, from the 2 cores dockerd
# needs to start the container; the completion time comes from the orchestrator anyway.
POLL_S = 0.02


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def docker(conn, method, path, body=None):
    conn.request(method, "/v1.41" + path, body=json.dumps(body) if body is not None else None,
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status >= 300:
        raise SystemExit(f"docker {method} {path}: {r.status} {data[:200]!r}")
    return json.loads(data) if data and r.getheader("Content-Type", "").startswith("application/json") else data


def host_config(limits):
    """The HostConfig the docker executor builds for these limits (see its `container` module):
    memory as a hard limit with no swap on top, CPU as NanoCPUs."""
    hc = {"NetworkMode": "none"}
    if limits:
        cpu, memory = limits
        if memory > 0:
            hc.update(Memory=memory, MemorySwap=memory)
        if cpu > 0:
            hc["NanoCpus"] = round(cpu * 1e9)
    return hc


def direct(conn, i, limits):
    t0 = time.perf_counter()
    c = docker(conn, "POST", f"/containers/create?name=shoal-bench-direct-{os.getpid()}-{i}",
               {"Image": IMAGE, "Cmd": ["true"], "Labels": {"shoal.bench": "direct"},
                "NetworkDisabled": True, "HostConfig": host_config(limits)})
    cid = c["Id"]
    docker(conn, "POST", f"/containers/{cid}/start")
    docker(conn, "POST", f"/containers/{cid}/wait")
    docker(conn, "GET", f"/containers/{cid}/logs?stdout=1&stderr=1")
    docker(conn, "GET", f"/containers/{cid}/json")
    known = time.perf_counter()
    docker(conn, "DELETE", f"/containers/{cid}?force=1&v=1")
    return (time.perf_counter() - t0) * 1000, (known - t0) * 1000


def call(port, method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def shoal(port):
    job = {"Job": {"Type": "batch", "Count": 1, "Tasks": [{"Name": "main",
           "Engine": {"Type": "docker", "Params": {"Image": IMAGE, "Parameters": ["true"]}},
           "Network": {"Type": "None"}}]}}
    t0 = time.time_ns()
    jid = call(port, "PUT", "/orchestrator/jobs", job)["JobID"]
    while True:
        time.sleep(POLL_S)
        got = call(port, "GET", f"/orchestrator/jobs/{jid}")["Job"]
        state = got["State"]["StateType"]
        if state == "Completed":
            return (got["ModifyTime"] - t0) / 1e6, jid
        if state in ("Failed", "Stopped"):
            raise SystemExit(f"job {jid} ended {state}; see shoal job describe {jid}")


def removed(conn, jid):
    """Waits until the job's container is gone: Shoal removes it just after reporting the end,
    and that removal must not overlap the next path's run."""
    filters = urllib.parse.quote(json.dumps({"label": [f"shoal.job-id={jid}"]}))
    deadline = time.time() + 30
    while docker(conn, "GET", f"/containers/json?all=1&filters={filters}"):
        if time.time() > deadline:
            raise SystemExit(f"the container of job {jid} was not removed within 30 s")
        time.sleep(0.002)


def allocated(port, jid):
    """(CPU cores, memory bytes) Shoal reserved for the job's one task."""
    items = call(port, "GET", f"/orchestrator/jobs/{jid}/executions")["Items"]
    tasks = items[0]["AllocatedResources"]["Tasks"]
    (res,) = tasks.values()
    return float(res.get("CPU", 0)), int(res.get("Memory", 0))


def stats(samples):
    s = sorted(samples)
    q = lambda p: s[min(len(s) - 1, int(p * len(s)))]
    return statistics.median(s), q(0.1), q(0.9), statistics.pstdev(s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    sock = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://")
    conn = UnixHTTP(sock)
    deadline = time.time() + 60
    while True:
        try:
            nodes = call(a.port, "GET", "/orchestrator/nodes")["Nodes"]
            if any(n["Connection"] == "CONNECTED" and "docker" in
                   n["Info"]["ComputeNodeInfo"]["ExecutionEngines"] for n in nodes):
                break
        except OSError:
            pass
        if time.time() > deadline:
            raise SystemExit("devstack did not come up with the docker engine")
        time.sleep(0.05)
    _, first = shoal(a.port)
    limits = allocated(a.port, first)
    via_shoal, via_api, known, unlimited = [], [], [], []
    order = random.Random(7)
    for i in range(a.runs + WARMUP):
        got = {}
        paths = ["shoal", "direct", "unlimited"]
        # A fixed order would favour whichever path follows the daemon's quiet moments.
        order.shuffle(paths)
        for path in paths:
            if path == "shoal":
                got[path], jid = shoal(a.port)
                removed(conn, jid)
            elif path == "direct":
                got[path] = direct(conn, f"{i}", limits)
            else:
                got[path] = direct(conn, f"{i}-unlimited", None)
        s, (d, k), (u, _) = got["shoal"], got["direct"], got["unlimited"]
        if i >= WARMUP:
            via_shoal.append(s)
            via_api.append(d)
            known.append(k)
            unlimited.append(u)
    sm, s10, s90, ssd = stats(via_shoal)
    dm, d10, d90, dsd = stats(via_api)
    um, u10, u90, usd = stats(unlimited)
    added = [s - d for s, d in zip(via_shoal, via_api)]
    am, a10, a90, asd = stats(added)
    km, k10, k90, ksd = stats(known)
    added_known = [s - k for s, k in zip(via_shoal, known)]
    akm, ak10, ak90, aksd = stats(added_known)
    by_limits = [d - u for d, u in zip(via_api, unlimited)]
    lm, l10, l90, lsd = stats(by_limits)
    cpu, memory = limits
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    ver = docker(conn, "GET", "/version")
    section = f"""## Docker: trivial container job through Shoal vs directly through the Docker Engine API

_{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {os.cpu_count()} cores, {mem:.0f} GiB memory, {platform.processor() or platform.machine()}; Docker {ver.get('Version')} ({ver.get('Os')}/{ver.get('Arch')}) · commit {commit} · {os.environ.get('SHOAL_BENCH_PROFILE', 'release')} build · devstack, 1 compute node_

`true` in `{IMAGE}` (present on the node), no network, no resources asked (Shoal gave the
task {cpu:g} CPU and {memory / 2**20:g} MiB); {a.runs} runs of each path after {WARMUP} warm-up, in a
shuffled order each round; each Shoal run waits for its container's removal before the next path starts.
Shoal: REST submit -> Completed as the orchestrator records it (the job's ModifyTime; the client
polls every {POLL_S * 1000:.0f} ms). Direct: create, start, wait, logs, inspect, remove over the daemon's
unix socket, with the limits Shoal gave the task (NanoCPUs, Memory) and, as a third path,
without any. Shoal's agent removes the container just after it has reported the end, so
removal is not in Shoal's time; the "result known" rows compare with the direct path
stopped before its removal.

| path | median | p10 | p90 | std dev |
|---|---|---|---|---|
| Shoal (submit -> Completed recorded) | {sm:.1f} ms | {s10:.1f} ms | {s90:.1f} ms | {ssd:.1f} ms |
| Docker Engine API directly, same limits | {dm:.1f} ms | {d10:.1f} ms | {d90:.1f} ms | {dsd:.1f} ms |
| added by Shoal (pairwise) | {am:.1f} ms | {a10:.1f} ms | {a90:.1f} ms | {asd:.1f} ms |
| Docker Engine API directly, same limits, result known (before remove) | {km:.1f} ms | {k10:.1f} ms | {k90:.1f} ms | {ksd:.1f} ms |
| added by Shoal vs result known (pairwise) | {akm:.1f} ms | {ak10:.1f} ms | {ak90:.1f} ms | {aksd:.1f} ms |
| Docker Engine API directly, no limits | {um:.1f} ms | {u10:.1f} ms | {u90:.1f} ms | {usd:.1f} ms |
| added by the limits alone (pairwise, direct) | {lm:.1f} ms | {l10:.1f} ms | {l90:.1f} ms | {lsd:.1f} ms |

Target: Shoal adds at most 10 ms at the median.
"""
    # One fragment of bench/RESULTS.md; `bench/run.sh` (shoal-bench) assembles the page.
    with open(a.out, "w") as f:
        f.write(section)
    print(section)


if __name__ == "__main__":
    main()
