# Salt peer for S11 (run by crates/shoal-bench/src/s11_query.rs): a salt-master and N salt-minions on
# 127.0.0.1, each with its own config and root dir; once every minion answers test.ping, asks
# `grains.item host` REPS times and prints one JSON line per ask (first and last answer, ms) on
# stdout, or one {"error": ...} line. Everything else goes to stderr.
# Settings are Salt's defaults except what running on 127.0.0.1 from private dirs needs (ports,
# dirs, auto_accept for the minions' keys).
# Usage: python3 s11_salt.py N REPS ROOT_DIR
import json, os, signal, socket, subprocess, sys, time, traceback

# Salt's LocalClient prints some conditions on stdout ("No minions matched the target..." while
# the minions are still authenticating); the caller parses stdout as JSON lines, so stdout is kept
# for the figures alone and fd 1 goes to stderr for Salt and everything else.
OUT = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr


def emit(obj):
    OUT.write(json.dumps(obj) + "\n")
    OUT.flush()


def log(msg):
    print(f"s11_salt: {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def die_with_parent():
    # The daemons get SIGTERM (and stop their own children) if this script is killed outright.
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def spawn(kind, conf_dir):
    return subprocess.Popen([kind, "-c", conf_dir], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent)


def stop(procs):
    """SIGKILL every daemon's session and every process it forked, then reap them."""
    pids = set()
    try:
        import psutil  # a dependency of salt
        for p in procs:
            try:
                pids.update(c.pid for c in psutil.Process(p.pid).children(recursive=True))
            except psutil.Error:
                pass
    except ImportError:
        pass
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for p in procs:
        p.wait()


def wait_port(port, deadline):
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def run(n, reps, root, procs):
    pub, ret = free_port(), free_port()
    md = os.path.join(root, "master")
    os.makedirs(md, exist_ok=True)
    with open(os.path.join(md, "master"), "w") as f:
        f.write(f"root_dir: {md}\ninterface: 127.0.0.1\npublish_port: {pub}\nret_port: {ret}\n"
                f"auto_accept: True\npki_dir: {md}/pki\ncachedir: {md}/cache\nsock_dir: {md}/sock\n"
                f"log_file: {md}/master.log\npidfile: {md}/master.pid\nkey_logfile: {md}/key.log\n")
    procs.append(spawn("salt-master", md))
    deadline = time.monotonic() + 180
    if not wait_port(ret, deadline):
        emit({"error": f"salt-master did not listen on 127.0.0.1:{ret} within 180 s (see {md}/master.log)"})
        return
    for i in range(n):
        d = os.path.join(root, f"m{i}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "minion"), "w") as f:
            f.write(f"master: 127.0.0.1\nmaster_port: {ret}\npublish_port: {pub}\nid: minion-{i}\n"
                    f"root_dir: {d}\npki_dir: {d}/pki\ncachedir: {d}/cache\nsock_dir: {d}/sock\n"
                    f"log_file: {d}/minion.log\npidfile: {d}/minion.pid\n")
        procs.append(spawn("salt-minion", d))
    import salt.client, salt.config
    opts = salt.config.client_config(os.path.join(md, "master"))
    client, up = None, {}
    while True:
        try:
            if client is None:
                client = salt.client.LocalClient(mopts=opts)
            up = client.cmd("*", "test.ping", timeout=5) or {}
        except Exception as e:
            log(f"test.ping: {type(e).__name__}: {e}")
            client, up = None, {}  # a client that met the master too early stays broken; make another
        if len(up) >= n:
            break
        if time.monotonic() > deadline:
            emit({"error": f"only {len(up)} of {n} minions answered test.ping within 180 s"})
            return
        time.sleep(1)
    log(f"{len(up)} minions answer test.ping")
    time.sleep(1)
    rss = 0
    for p in procs[1:]:
        try:
            out = subprocess.run(["ps", "-o", "rss=", "-g", str(p.pid)], capture_output=True, text=True).stdout
            rss += sum(int(x) for x in out.split())
        except Exception:
            pass
    for _ in range(reps):
        t0 = time.perf_counter(); first = None; got = 0
        for r in client.cmd_iter("*", "grains.item", ["host"], timeout=30):
            got += sum(1 for v in r.values() if isinstance(v, dict) and isinstance(v.get("ret"), dict) and "host" in v["ret"])
            if first is None: first = time.perf_counter() - t0
        total = time.perf_counter() - t0
        emit({"first_ms": None if first is None else first * 1e3, "all_ms": total * 1e3, "answered": got,
              "minion_rss_kb": rss / max(n, 1)})


def main():
    n, reps, root = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)  # so that the daemons are stopped below

    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, on_signal)
    procs = []
    try:
        run(n, reps, root, procs)
    except Exception as e:
        traceback.print_exc()
        emit({"error": f"the Salt script failed: {type(e).__name__}: {e}"})
    finally:
        stop(procs)


main()
