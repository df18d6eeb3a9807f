#!/usr/bin/python3
"""Behaviour checks of the supervisor, run on the converged host as root.

Each check prints one JSON line {"check", "ok", "detail"}; the verify play
asserts on them. Every loop is bounded in count and time; all traffic goes to
127.0.0.1 or to the probe sockets on this host.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

APP, PORT = "fixture", 8080
SOCKETS = "/run/ec2-fleet/sockets"


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path, timeout=3):
        super().__init__("localhost", timeout=timeout)
        self.path_ = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path_)


def get(path, port=PORT, instance=None, app=APP, timeout=3):
    conn = UnixConn(f"{SOCKETS}/{app}/{instance}.sock", timeout) if instance else \
        http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def prop(unit, name):
    return subprocess.run(["systemctl", "show", unit, f"--property={name}", "--value"],
                          capture_output=True, text=True).stdout.strip()


def main_pid(instance, app=APP):
    return int(prop(f"{app}@{instance}.service", "MainPID") or 0)


def wait_for(predicate, timeout, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def healthy_new_pid(instance, old, app=APP):
    def check():
        pid = main_pid(instance, app)
        if pid and pid != old:
            try:
                if get("/health", instance=instance, app=app, timeout=1)[0] == 200:
                    return pid
            except OSError:
                return None
        return None
    return check


def report(check, ok, detail):
    print(json.dumps({"check": check, "ok": bool(ok), "detail": detail}), flush=True)


def check_cluster():
    pids = set()
    for _ in range(40):
        pids.add(get("/pid")[1]["pid"])
        if len(pids) == 2:
            break
    states = [prop(f"{APP}@{i}.service", "ActiveState") for i in (1, 2)]
    report("cluster", states == ["active", "active"] and len(pids) == 2,
           f"instances {states}, distinct pids answering on :{PORT}: {sorted(pids)}")


def check_crash_restart_and_backoff():
    """kill -9 the same instance three times: it comes back each time, later each time."""
    downtimes = []
    since = f"@{int(time.time()) - 1}"
    for _ in range(3):
        old = wait_for(lambda: main_pid(1), 30)
        t0 = time.monotonic()
        os.kill(old, signal.SIGKILL)
        new = wait_for(healthy_new_pid(1, old), 40)
        if not new:
            report("crash_restart", False, f"instance 1 did not come back after kill -9 of {old}")
            return
        downtimes.append(round(time.monotonic() - t0, 2))
    restarts = prop(f"{APP}@1.service", "NRestarts")
    report("crash_restart", True, f"kill -9 three times: back after {downtimes} s; NRestarts={restarts}")
    # The waits the supervisor chose (its journal lines), and the downtimes they made: a loaded
    # machine adds start-up time to each downtime, so the downtimes are judged with a margin.
    journal = subprocess.run(["journalctl", "-u", f"{APP}@1.service", "--since", since, "-o", "cat",
                              "--no-pager"], capture_output=True, text=True).stdout
    waits = [float(w) for w in re.findall(r"failed \d+ time\(s\) in a row; waiting ([\d.]+)s", journal)]
    report("exponential_backoff", waits == [1.0, 2.0, 4.0] and downtimes[2] >= downtimes[0] + 1.5
           and downtimes[2] >= 3.5,
           f"waits before the restarts {waits} s (restart_delay 1 s, doubling); downtimes {downtimes} s")


def check_memory_restart():
    old = main_pid(2)
    _, body = get("/alloc?mb=96", instance=2, timeout=20)
    new = wait_for(healthy_new_pid(2, old), 30)
    journal = subprocess.run(["journalctl", "-u", f"{APP}-liveness.service", "--no-pager", "-n", "50"],
                             capture_output=True, text=True).stdout
    report("max_memory_restart", bool(new) and "over max_memory_restart" in journal,
           f"instance 2 grew to {body.get('allocated_mb')} MiB (limit 64M): pid {old} -> {new}")


def check_liveness():
    old = main_pid(2)
    get("/sick", instance=2)
    t0 = time.monotonic()
    new = wait_for(healthy_new_pid(2, old), 40)
    journal = subprocess.run(["journalctl", "-u", f"{APP}-liveness.service", "--no-pager", "-n", "50"],
                             capture_output=True, text=True).stdout
    report("liveness_probe", bool(new) and "failed 3 probes in a row" in journal,
           f"instance 2 made unhealthy: restarted after {time.monotonic() - t0:.1f} s (pid {old} -> {new})")


def load_during(action, port, threads=4, max_requests=20000, max_seconds=60):
    """Send requests from `threads` clients while action() runs; count failures."""
    stop = threading.Event()
    counts = {"ok": 0, "failed": 0}
    errors = []
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds

    def client():
        while not stop.is_set() and time.monotonic() < deadline:
            with lock:
                if counts["ok"] + counts["failed"] >= max_requests:
                    return
            try:
                status, _ = get("/pid", port=port, timeout=10)
                ok = status == 200
                err = None if ok else f"HTTP {status}"
            except OSError as exc:
                ok, err = False, f"{type(exc).__name__}: {exc}"
            with lock:
                counts["ok" if ok else "failed"] += 1
                if err and len(errors) < 5:
                    errors.append(err)
            time.sleep(0.005)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for w in workers:
        w.start()
    time.sleep(0.5)
    result = action()
    time.sleep(0.5)
    stop.set()
    for w in workers:
        w.join(timeout=15)
    return counts, errors, result


def check_reload(app, port, instances):
    before = [main_pid(i, app) for i in range(1, instances + 1)]
    counts, errors, proc = load_during(
        lambda: subprocess.run(["fleetctl", "reload", app], capture_output=True, text=True), port)
    after = [main_pid(i, app) for i in range(1, instances + 1)]
    replaced = all(a and a != b for a, b in zip(after, before, strict=True))
    report(f"graceful_reload_{app}", proc.returncode == 0 and replaced and counts["failed"] == 0
           and counts["ok"] > 50,
           f"fleetctl reload {app} ({instances} instance(s)) under load: {counts['ok']} ok, "
           f"{counts['failed']} failed {errors}; pids {before} -> {after}")


def check_graceful_stop():
    """A request in flight when its instance is restarted still completes."""
    result = {}

    def slow():
        try:
            result["status"] = get("/slow?ms=2000", port=8081, timeout=10)[0]
        except OSError as exc:
            result["status"] = repr(exc)

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)
    subprocess.run(["systemctl", "restart", "solo@1.service"], check=False)
    t.join(timeout=15)
    report("graceful_stop", result.get("status") == 200,
           f"a 2 s request in flight during 'systemctl restart solo@1' answered {result.get('status')}")


def check_sandbox_and_env():
    _, who = get("/whoami")
    _, etc = get("/write?path=/etc/ec2-fleet-probe")
    _, usr = get("/write?path=/usr/local/ec2-fleet-probe")
    _, data = get("/write?path=/var/lib/fixture/ok")
    report("unprivileged", who["uid"] != 0, f"app runs as uid {who['uid']}")
    report("sandbox", not etc["written"] and not usr["written"] and data["written"],
           f"write /etc: {etc.get('error')}; write /usr: {usr.get('error')}; "
           f"write /var/lib/fixture: {data['written']}")
    _, env = get("/env?key=GREETING")
    report("env_overrides", env["value"] == "hello-production", f"GREETING={env['value']!r}")


def check_logs():
    journal = subprocess.run(["journalctl", "-u", f"{APP}@1.service", "--no-pager", "-n", "200"],
                             capture_output=True, text=True).stdout
    get("/pid", port=8081)

    def solo_log():
        with open("/var/log/solo.log") as fh:
            text = fh.read()
        return text if "GET /pid" in text else None

    solo = wait_for(solo_log, 10) or ""
    report("logs", "serving" in journal and "GET /pid" in solo,
           "fixture@1 logs in the journal; solo logs to /var/log/solo.log")


def main():
    checks = [check_cluster, check_sandbox_and_env, check_logs, check_graceful_stop,
              lambda: check_reload("fixture", 8080, 2), lambda: check_reload("solo", 8081, 1),
              check_crash_restart_and_backoff, check_memory_restart, check_liveness]
    for c in checks:
        try:
            c()
        except Exception as exc:  # report and go on: every check gets its line
            report(getattr(c, "__name__", "check"), False, f"{type(exc).__name__}: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
