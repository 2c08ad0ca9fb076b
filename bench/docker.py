"""Docker: a trivial container job through Shoal vs the same container driven directly through
the Docker Engine API, side by side in one run.

Shoal: PUT a batch job (docker engine, `true` in shoal-test/busybox, no network) over the REST
API and poll the job until Completed, as a client would. Direct: over the daemon's unix socket,
create the same container, start it, wait for it, read its logs and remove it (the work the
docker executor does for one execution). The two alternate, so that both see the same daemon
state; the first runs of each are warm-up. Writes (or replaces) the "Docker" section of
bench/RESULTS.md with the machine, the date and the commit.
"""
import argparse, http.client, json, os, platform, socket, statistics, subprocess, time, urllib.request

IMAGE = "shoal-test/busybox:latest"
WARMUP = 3


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


def direct(conn, i):
    t0 = time.perf_counter()
    c = docker(conn, "POST", f"/containers/create?name=shoal-bench-direct-{os.getpid()}-{i}",
               {"Image": IMAGE, "Cmd": ["true"], "Labels": {"shoal.bench": "direct"},
                "NetworkDisabled": True, "HostConfig": {"NetworkMode": "none"}})
    cid = c["Id"]
    docker(conn, "POST", f"/containers/{cid}/start")
    docker(conn, "POST", f"/containers/{cid}/wait")
    docker(conn, "GET", f"/containers/{cid}/logs?stdout=1&stderr=1")
    docker(conn, "GET", f"/containers/{cid}/json")
    docker(conn, "DELETE", f"/containers/{cid}?force=1&v=1")
    return (time.perf_counter() - t0) * 1000


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
    t0 = time.perf_counter()
    jid = call(port, "PUT", "/orchestrator/jobs", job)["JobID"]
    while True:
        state = call(port, "GET", f"/orchestrator/jobs/{jid}")["Job"]["State"]["StateType"]
        if state == "Completed":
            break
        if state in ("Failed", "Stopped"):
            raise SystemExit(f"job {jid} ended {state}; see shoal job describe {jid}")
        # A tight loop would take a core from Shoal and dockerd on small machines.
        time.sleep(0.002)
    return (time.perf_counter() - t0) * 1000


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
    via_shoal, via_api = [], []
    for i in range(a.runs + WARMUP):
        s, d = shoal(a.port), direct(conn, i)
        if i >= WARMUP:
            via_shoal.append(s)
            via_api.append(d)
    sm, s10, s90, ssd = stats(via_shoal)
    dm, d10, d90, dsd = stats(via_api)
    added = [s - d for s, d in zip(via_shoal, via_api)]
    am, a10, a90, asd = stats(added)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    ver = docker(conn, "GET", "/version")
    section = f"""## Docker: trivial container job through Shoal vs directly through the Docker Engine API

_{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {os.cpu_count()} cores, {mem:.0f} GiB memory, {platform.processor() or platform.machine()}; Docker {ver.get('Version')} ({ver.get('Os')}/{ver.get('Arch')}) · commit {commit} · {os.environ.get('SHOAL_BENCH_PROFILE', 'release')} build · devstack, 1 compute node_

`true` in `{IMAGE}` (present on the node), no network; {a.runs} runs each after {WARMUP} warm-up,
alternating. Shoal: REST submit -> Completed, polled every 2 ms. Direct: create, start, wait, logs,
inspect, remove over the daemon's unix socket.

| path | median | p10 | p90 | std dev |
|---|---|---|---|---|
| Shoal (submit -> Completed) | {sm:.1f} ms | {s10:.1f} ms | {s90:.1f} ms | {ssd:.1f} ms |
| Docker Engine API directly | {dm:.1f} ms | {d10:.1f} ms | {d90:.1f} ms | {dsd:.1f} ms |
| added by Shoal (pairwise) | {am:.1f} ms | {a10:.1f} ms | {a90:.1f} ms | {asd:.1f} ms |

Target: Shoal adds at most 10 ms at the median.
"""
    # One fragment of bench/RESULTS.md; `bench/run.sh` (shoal-bench) assembles the page.
    with open(a.out, "w") as f:
        f.write(section)
    print(section)


if __name__ == "__main__":
    main()
