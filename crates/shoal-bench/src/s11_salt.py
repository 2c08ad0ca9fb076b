# Salt peer for S11 (run by crates/shoal-bench/src/s11_query.rs): a salt-master and N salt-minions on
# 127.0.0.1, each with its own config and root dir; once every minion answers test.ping, asks
# `grains.item host` REPS times and prints one JSON line per ask (first and last answer, ms).
# Usage: python3 s11_salt.py N REPS ROOT_DIR
import json, os, subprocess, sys, time, socket, tempfile

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def main():
    n, reps, root = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    pub, ret = free_port(), free_port()
    common = "user: root\nlog_level: quiet\nlog_level_logfile: quiet\n"
    md = os.path.join(root, "master")
    os.makedirs(md, exist_ok=True)
    with open(os.path.join(md, "master"), "w") as f:
        f.write(common + f"root_dir: {md}\ninterface: 127.0.0.1\npublish_port: {pub}\nret_port: {ret}\n"
                f"auto_accept: True\npki_dir: {md}/pki\ncachedir: {md}/cache\nsock_dir: {md}/sock\n"
                f"log_file: {md}/master.log\npidfile: {md}/master.pid\nkey_logfile: {md}/key.log\n")
    procs = [subprocess.Popen(["salt-master", "-c", md], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        time.sleep(3)
        for i in range(n):
            d = os.path.join(root, f"m{i}")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "minion"), "w") as f:
                f.write(common + f"master: 127.0.0.1\nmaster_port: {ret}\npublish_port: {pub}\nid: minion-{i}\n"
                        f"root_dir: {d}\npki_dir: {d}/pki\ncachedir: {d}/cache\nsock_dir: {d}/sock\n"
                        f"log_file: {d}/minion.log\npidfile: {d}/minion.pid\nacceptance_wait_time: 1\n")
            procs.append(subprocess.Popen(["salt-minion", "-c", d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        import salt.client, salt.config
        opts = salt.config.client_config(os.path.join(md, "master"))
        client = salt.client.LocalClient(mopts=opts)
        deadline = time.time() + 180
        while True:
            try:
                up = client.cmd("*", "test.ping", timeout=5)
            except Exception:
                up = {}
                time.sleep(1)
            if len(up) >= n:
                break
            if time.time() > deadline:
                print(json.dumps({"error": f"only {len(up)} of {n} minions answered test.ping within 180 s"})); return
        time.sleep(1)
        rss = 0
        for p in procs[1:]:
            try:
                out = subprocess.run(["ps", "-o", "rss=", "-g", str(p.pid)], capture_output=True, text=True).stdout
                rss += sum(int(x) for x in out.split())
            except Exception:
                pass
        for _ in range(reps):
            t0 = time.time(); first = None; got = 0
            for ret_ in client.cmd_iter("*", "grains.item", ["host"], timeout=30):
                got += len(ret_)
                if first is None: first = time.time() - t0
            total = time.time() - t0
            print(json.dumps({"first_ms": first * 1e3, "all_ms": total * 1e3, "answered": got, "minion_rss_kb": rss / max(n, 1)}), flush=True)
    finally:
        import signal
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except Exception:
                pass
        for p in procs:
            p.wait()

main()
