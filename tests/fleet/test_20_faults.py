"""Security and fault tolerance in the lab: what a host exposes, and the faults the fleet survives.

Host checks go over SSH as an operator would (the lab's key pair, user ubuntu). Each fault runs a
steady load through the lab's load balancer (ec2_fleet_dev.loadgen: open loop, 40 requests/s, a new
connection per request) and counts what the clients saw: every planned request sent, none failed.
Faults come from `labctl.py fault` (Redis and PostgreSQL), systemd (a hung instance) and nftables in
a host's network namespace (SSH lost).

Every test leaves the lab as it found it (3 hosts healthy on one release, Redis and PostgreSQL up):
the rolling updates of later files run on it. The figures each test measures are printed
(`pytest -rP` shows them) on lines starting with FIGURE.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ec2_fleet_dev.lbhttp import http, served_instances
from ec2_fleet_dev.loadgen import LoadGen, delivery
from ec2_fleet_dev.plays import ROOT, PlayResult

pytestmark = pytest.mark.fleet

APP = "orders-api"
APP_PORT = 8000
ENV_FILE = f"/etc/ec2-fleet/supervisor/{APP}.env"
MAX_EXPOSURE = 2.5
# The service's DB_TIMEOUT_SECONDS (app/src/orders_api/config.py) unless the env file sets it.
DEFAULT_DB_TIMEOUT = 3.0
RATE = 40


def figure(text: str) -> None:
    print(f"FIGURE {text}")


# --- the lab's hosts, over SSH ----------------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    id: str
    ip: str
    container: str


def lab_status(fleet) -> dict:
    result = fleet.labctl("status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def lab_hosts(fleet) -> list[Host]:
    lab = fleet.env["EC2_FLEET_LAB_NAME"]
    return [Host(i["id"], i["ip"], f"{lab}-{i['id']}") for i in sorted(lab_status(fleet)["instances"],
                                                                      key=lambda i: i["id"])]


SSH_OPTIONS = [
    "-F", "/dev/null",
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=10", "-o", "ControlMaster=no", "-o", "ControlPath=none",
]


def ssh(fleet, host: Host, command: str, *options: str, user: str = "ubuntu",
        timeout: float = 60) -> subprocess.CompletedProcess:
    """One SSH command with the lab's key pair, through the bastion (what an operator runs: the control
    node has no route to a host's SSH port; docs/access.md)."""
    key = fleet.endpoints["ssh_private_key_file"]
    return subprocess.run(
        ["ssh", *SSH_OPTIONS, *through_bastion(fleet), "-i", key, "-o", "IdentitiesOnly=yes", *options,
         f"{user}@{host.ip}", command],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def through_bastion(fleet) -> list[str]:
    """ssh options that reach a host through the lab's bastion, which the lab's key pair opens."""
    bastion = lab_status(fleet)["bastions"][0]["ip"]
    jump = " ".join(["ssh", *SSH_OPTIONS, "-i", fleet.endpoints["ssh_private_key_file"], "-o", "IdentitiesOnly=yes",
                     "-o", "BatchMode=yes", "-W", "%h:%p", f"ubuntu@{bastion}"])
    return ["-o", f"ProxyCommand={jump}"]


def sudo(fleet, host: Host, script: str, check: bool = True) -> str:
    result = ssh(fleet, host, "sudo -n sh -c " + shlex.quote(script), "-o", "BatchMode=yes")
    if check:
        assert result.returncode == 0, f"{host.id}: {script}\n{result.stdout}{result.stderr}"
    return result.stdout


def unit_pids(fleet, host: Host) -> dict[str, tuple[str, str]]:
    """MainPID and NRestarts of every instance unit of the app on a host."""
    out = sudo(fleet, host, f"systemctl show -p Id -p MainPID -p NRestarts '{APP}@*.service'")
    units: dict[str, tuple[str, str]] = {}
    for block in out.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        units[props["Id"]] = (props["MainPID"], props["NRestarts"])
    return units


def wait_for(what: str, check: Callable[[], object], timeout: float, interval: float = 0.5) -> tuple[object, float]:
    """(the first truthy result of check, seconds it took); bounded in time."""
    started = time.monotonic()
    while True:
        result = check()
        if result:
            return result, time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


def assert_lab_as_found(fleet) -> None:
    """What later files need: 3 hosts healthy on one release behind the balancer, Redis and PostgreSQL up."""
    def settled() -> dict | None:
        status = lab_status(fleet)
        healthy = [i for i in status["instances"] if i["health"] and all(h.endswith(":healthy") for h in i["health"])]
        up = all(r["state"] == "running" for r in status["redis"]) and status["db"]["state"] == "running"
        return status if len(healthy) == len(status["instances"]) == 3 and up else None

    wait_for("3 healthy hosts, Redis and PostgreSQL running", settled, 60, interval=1)
    lb = fleet.endpoints["lb_url"]
    assert served_instances(lb) == {h.id for h in lab_hosts(fleet)}
    versions = {http(f"{lb}/version")[2].get("version") for _ in range(12)}
    assert len(versions) == 1, versions


@pytest.fixture
def lab_faults(converged):
    """The lab for a fault test: as found before, and Redis and PostgreSQL running again after, whatever happened."""
    assert_lab_as_found(converged)
    yield converged
    for action in ("redis-start", "db-start"):
        result = converged.labctl("fault", action)
        assert result.returncode == 0, result.stdout + result.stderr


def new_order(lb: str, customer: str = "fault-test") -> dict:
    status, _, order = http(f"{lb}/orders", {"customer": customer,
                                             "items": [{"sku": "F-1", "qty": 1, "unit_price_cents": 990}]})
    assert status == 201, order
    return order


def cached(lb: str, order_id: int, reads: int = 12) -> bool:
    """True when `reads` reads in a row through the balancer are all cache hits (a bounded loop)."""
    for _ in range(reads):
        status, headers, _ = http(f"{lb}/orders/{order_id}", timeout=5)
        if status != 200 or headers.get("x-cache") != "hit":
            return False
    return True


def loaded_failures(report: dict) -> str:
    return f"{report['failed']} of {report['requests']} failed ({report['failures_by_kind']}): {report['failures'][:5]}"


# --- hosts ----------------------------------------------------------------------------------------------


def test_app_unit_exposure_is_at_most_2_5_and_the_service_still_answers(converged):
    scores = {}
    for host in lab_hosts(converged):
        out = sudo(converged, host, f"SYSTEMD_COLORS=0 systemd-analyze security --no-pager {APP}@1.service")
        match = re.search(rf"Overall exposure level for {re.escape(APP)}@1\.service:\s+([0-9.]+)\s+(\S+)", out)
        assert match, out[-2000:]
        scores[host.id] = float(match.group(1))
        assert scores[host.id] <= MAX_EXPOSURE, out[-3000:]
        status, _, ready = http(f"http://{host.ip}:{APP_PORT}/ready", timeout=5)
        assert status == 200 and ready["status"] == "ready", ready
    figure(f"systemd-analyze security {APP}@1.service: exposure {sorted(set(scores.values()))} "
           f"(at most {MAX_EXPOSURE}) on {len(scores)} hosts")


def test_ssh_refuses_password_and_root_logins(converged, tmp_path: Path):
    fleet = converged
    host = lab_hosts(fleet)[0]
    key = fleet.endpoints["ssh_private_key_file"]
    public_key = Path(f"{key}.pub").read_text().strip()
    assert ssh(fleet, host, "id -un", "-o", "BatchMode=yes").stdout.strip() == "ubuntu"

    # Password: ubuntu gets a known password for the test; a client that would type it is never asked.
    password = secrets.token_urlsafe(12)
    asked = tmp_path / "asked"
    askpass = tmp_path / "askpass"
    askpass.write_text(f"#!/bin/sh\necho asked >> {asked}\necho '{password}'\n")
    askpass.chmod(0o700)
    old_hash = sudo(fleet, host, "getent shadow ubuntu | cut -d: -f2").strip()
    sudo(fleet, host, f"echo 'ubuntu:{password}' | chpasswd")
    try:
        env = {"PATH": "/usr/bin:/bin", "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}
        attempt = subprocess.run(
            ["ssh", *SSH_OPTIONS, *through_bastion(fleet), "-o", "PubkeyAuthentication=no",
             "-o", "NumberOfPasswordPrompts=1",
             "-o", "PreferredAuthentications=password,keyboard-interactive", f"ubuntu@{host.ip}", "true"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env,
        )
    finally:
        sudo(fleet, host, f"usermod -p {shlex.quote(old_hash)} ubuntu")
    assert attempt.returncode == 255, attempt.stderr
    assert "Permission denied (publickey)" in attempt.stderr, attempt.stderr
    assert not asked.exists(), "the server asked for a password"

    # Root: the lab's key in root's authorized_keys for the test; sshd still refuses root.
    marker = f"ec2-fleet-fault-test-{secrets.token_hex(4)}"
    had_keys = sudo(fleet, host, "test -e /root/.ssh/authorized_keys && echo yes || echo no").strip() == "yes"
    sudo(fleet, host, f"install -d -m 0700 /root/.ssh && echo {shlex.quote(public_key + ' ' + marker)} "
                      ">> /root/.ssh/authorized_keys && chmod 0600 /root/.ssh/authorized_keys")
    try:
        root = ssh(fleet, host, "id -un", "-o", "BatchMode=yes", user="root")
    finally:
        sudo(fleet, host, f"sed -i '/{marker}/d' /root/.ssh/authorized_keys"
                          + ("" if had_keys else " && rm -f /root/.ssh/authorized_keys"))
    assert root.returncode == 255 and "Permission denied" in root.stderr, root.stdout + root.stderr
    figure(f"SSH {host.id}: password login refused ({attempt.stderr.strip()}); "
           f"root with an authorized key refused ({root.stderr.strip()})")


def _listeners(ss_output: str) -> list[tuple[str, str, str, str]]:
    """(netid, address, port, process) of every listening socket in `ss -H -lntup` output."""
    rows = []
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        address, port = fields[4].rsplit(":", 1)
        address = address.strip("[]").split("%", 1)[0]
        rows.append((fields[0], address, port, " ".join(fields[6:])))
    return rows


def _public(address: str) -> bool:
    try:
        return not ipaddress.ip_address(address).is_loopback
    except ValueError:
        return True  # "*": every address


def test_nothing_listens_on_a_public_address_but_ssh_and_the_app(converged):
    allowed = {("tcp", "22"), ("tcp", str(APP_PORT))}
    for host in lab_hosts(converged):
        out = sudo(converged, host, "ss -H -lntup")
        public = [row for row in _listeners(out) if _public(row[1])]
        ports = {(netid, port) for netid, _, port, _ in public}
        assert ports == allowed, f"{host.id} listens publicly on {sorted(ports - allowed)}:\n{out}"
    figure(f"ss -lntup on {len(lab_hosts(converged))} hosts: public listeners only tcp/22 (sshd) and "
           f"tcp/{APP_PORT} ({APP}.socket)")


def test_the_env_file_and_keys_are_readable_only_by_the_app_user_and_root(converged):
    fleet = converged
    for host in lab_hosts(fleet):
        owners = sudo(fleet, host, f"stat -c '%n %U:%G %a' {ENV_FILE} /etc/ssh/ssh_host_*_key").splitlines()
        assert owners[0] == f"{ENV_FILE} root:app 640", owners
        assert owners[1:] and all(line.endswith(" root:root 600") for line in owners[1:]), owners
        # No one else is in the app's group, and what the modes say holds: app reads, others do not.
        assert sudo(fleet, host, "getent group app").strip().split(":")[3] == ""
        assert sudo(fleet, host, f"sudo -u app test -r {ENV_FILE} && echo readable").strip() == "readable"
        for user in ("nobody", "ubuntu"):
            denied = ssh(fleet, host, f"sudo -n -u {user} cat {ENV_FILE}", "-o", "BatchMode=yes")
            assert denied.returncode != 0 and "Permission denied" in denied.stderr, (user, denied.stderr)
        if host == lab_hosts(fleet)[0]:
            figure(f"{host.id}: " + "; ".join(owners))


# --- faults survived ------------------------------------------------------------------------------------


def test_redis_stopped_for_30_s_under_load_loses_no_request(lab_faults):
    fleet = lab_faults
    lb = fleet.endpoints["lb_url"]
    order = new_order(lb)
    wait_for("the order cached", lambda: cached(lb, order["id"]), 30)
    with LoadGen(f"{lb}/orders/{order['id']}", rate=RATE, timeout=5, max_seconds=240,
                 ca_file=fleet.endpoints["lb_ca_file"]) as load:
        load.wait(3)
        stop = fleet.labctl("fault", "redis-stop")
        assert stop.returncode == 0, stop.stdout + stop.stderr
        stopped_at = time.monotonic()
        # Reads answer from PostgreSQL meanwhile; writes too.
        status, headers, body = http(f"{lb}/orders/{order['id']}", timeout=5)
        assert (status, headers.get("x-cache"), body) == (200, "miss", order)
        assert http(f"{lb}/orders", {"customer": "no-cache", "items": [{"sku": "F-2", "qty": 1,
                                                                       "unit_price_cents": 1}]})[0] == 201
        load.wait(30 - (time.monotonic() - stopped_at))
        start = fleet.labctl("fault", "redis-start")
        assert start.returncode == 0, start.stdout + start.stderr
        back_at = time.monotonic()
        _, recovery = wait_for("cache hits again", lambda: cached(lb, order["id"]), 60, interval=0.1)
        load.wait(3)
    report = load.report
    figure(f"Redis stopped {back_at - stopped_at:.0f} s under {RATE} req/s: "
           f"{report['failed']} failed of {report['requests']} (p99 {report['latency_ms']['p99']} ms, "
           f"max {report['latency_ms']['max']} ms); cache hits again {recovery:.1f} s after Redis was back")
    assert report["sent"] == report["planned"], delivery(report)
    assert report["failed"] == 0, loaded_failures(report)
    assert recovery < 15
    assert_lab_as_found(fleet)


def test_redis_failover_the_service_reconnects_by_itself(lab_faults):
    fleet = lab_faults
    lb = fleet.endpoints["lb_url"]
    hosts = lab_hosts(fleet)
    units_before = {h.id: unit_pids(fleet, h) for h in hosts}
    before = lab_status(fleet)["redis"][0]
    order = new_order(lb)
    wait_for("the order cached", lambda: cached(lb, order["id"]), 30)
    with LoadGen(f"{lb}/orders/{order['id']}", rate=RATE, timeout=5, max_seconds=180,
                 ca_file=fleet.endpoints["lb_ca_file"]) as load:
        load.wait(3)
        failover = fleet.labctl("fault", "redis-failover")
        assert failover.returncode == 0, failover.stdout + failover.stderr
        _, recovery = wait_for("cache hits on the new primary", lambda: cached(lb, order["id"]), 60, interval=0.1)
        load.wait(3)
    report = load.report
    after = lab_status(fleet)["redis"][0]
    assert (after["endpoint"], after["state"]) == (before["endpoint"], "running")
    assert after["ip"] != before["ip"], "the endpoint did not move"
    # By itself: no instance of the service was restarted (same main pids, same restart counts).
    assert {h.id: unit_pids(fleet, h) for h in hosts} == units_before
    figure(f"Redis failover ({before['endpoint']}: {before['ip']} -> {after['ip']}) under {RATE} req/s: "
           f"{report['failed']} failed of {report['requests']}; cache hits on the new primary {recovery:.1f} s "
           f"after it answered; 0 service restarts")
    assert report["sent"] == report["planned"], delivery(report)
    assert report["failed"] == 0, loaded_failures(report)
    assert_lab_as_found(fleet)


@dataclass
class Write:
    sent: float  # monotonic
    seconds: float
    status: int | None
    body: dict


def _writer(lb: str, until: threading.Event, out: list[Write], deadline: float) -> None:
    """POST orders one after another until told or the deadline (bounded in time and count)."""
    for n in range(2000):
        if until.is_set() or time.monotonic() > deadline:
            return
        started = time.monotonic()
        try:
            status, _, body = http(f"{lb}/orders", {"customer": f"writer-{n}",
                                                    "items": [{"sku": "W-1", "qty": 1, "unit_price_cents": 100}]},
                                   timeout=15)
        except OSError as exc:
            status, body = None, {"error": repr(exc)}
        out.append(Write(started, time.monotonic() - started, status, body))
        time.sleep(0.2)


def _db_timeout(fleet, host: Host) -> float:
    line = sudo(fleet, host, f"grep -E '^DB_TIMEOUT_SECONDS=' {ENV_FILE} || true").strip()
    return float(line.split("=", 1)[1].strip("'\"")) if line else DEFAULT_DB_TIMEOUT


def _orders_in_db(fleet, ids: list[int]) -> set[int]:
    """The ids that PostgreSQL holds (asked directly, not through the cache)."""
    db = f"{fleet.env['EC2_FLEET_LAB_NAME']}-db"
    password = (fleet.state_dir / "db" / "password").read_text().strip()
    query = f"SELECT id FROM orders WHERE id IN ({','.join(str(i) for i in ids)})"
    result = subprocess.run(["podman", "exec", "-e", f"PGPASSWORD={password}", db, "psql", "-h", "127.0.0.1",
                             "-U", "app", "-d", "orders", "-Atc", query],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return {int(line) for line in result.stdout.split()}


def test_postgresql_stopped_cached_reads_answer_writes_get_a_quick_503_and_no_order_is_lost(lab_faults):
    fleet = lab_faults
    lb = fleet.endpoints["lb_url"]
    timeout = _db_timeout(fleet, lab_hosts(fleet)[0])
    order = new_order(lb)
    wait_for("the order cached", lambda: cached(lb, order["id"]), 30)
    uncached = new_order(lb)  # never read: in PostgreSQL only
    writes: list[Write] = []
    stop_writing = threading.Event()
    writers = [threading.Thread(target=_writer, args=(lb, stop_writing, writes, time.monotonic() + 240))
               for _ in range(3)]
    with LoadGen(f"{lb}/orders/{order['id']}", rate=RATE, timeout=5, max_seconds=240,
                 ca_file=fleet.endpoints["lb_ca_file"]) as load:
        for writer in writers:
            writer.start()
        try:
            load.wait(3)
            stop = fleet.labctl("fault", "db-stop")
            assert stop.returncode == 0, stop.stdout + stop.stderr
            down_at = time.monotonic()
            load.wait(2)
            read = http(f"{lb}/orders/{uncached['id']}", timeout=15)
            assert read[0] == 503 and read[2]["error"] == "database_unavailable", read
            load.wait(20 - (time.monotonic() - down_at))
            restart_at = time.monotonic()  # PostgreSQL may answer before labctl has seen it
            start = fleet.labctl("fault", "db-start")
            assert start.returncode == 0, start.stdout + start.stderr
            up_at = time.monotonic()
            _, recovery = wait_for("a write accepted again",
                                   lambda: any(w.sent >= up_at and w.status == 201 for w in writes), 60)
            load.wait(3)
        finally:
            stop_writing.set()
            for writer in writers:
                writer.join(30)
    report = load.report
    during = [w for w in writes if w.sent > down_at + 1 and w.sent + w.seconds < restart_at]
    refused = [w for w in during if w.status == 503 and w.body.get("error") == "database_unavailable"]
    accepted = [w.body["id"] for w in writes if w.status == 201]
    present = _orders_in_db(fleet, accepted)
    slowest = max(w.seconds for w in writes if down_at < w.sent < restart_at)
    figure(f"PostgreSQL stopped {restart_at - down_at:.0f} s: cached reads {report['failed']} failed of "
           f"{report['requests']}; writes during the outage {len(refused)}/{len(during)} answered 503 "
           f"database_unavailable, slowest write answer {slowest:.2f} s (DB_TIMEOUT_SECONDS {timeout:g}); "
           f"writes accepted again {recovery:.1f} s after PostgreSQL answered; {len(accepted)} orders accepted "
           f"(201), {len(set(accepted) - present)} lost")
    assert report["sent"] == report["planned"], delivery(report)
    assert report["failed"] == 0, loaded_failures(report)
    assert during and len(refused) == len(during), [(w.status, w.body) for w in during if w not in refused]
    assert slowest <= timeout + 1.0
    assert set(accepted) == present
    assert_lab_as_found(fleet)


def _fleetctl_health(fleet, host: Host, instance: int) -> str:
    """The HEALTH column of `fleetctl status` for one instance ('' when not listed)."""
    out = sudo(fleet, host, f"/usr/local/lib/ec2-fleet/fleetctl status {APP}", check=False)
    for line in out.splitlines():
        fields = line.split()
        if fields[:2] == [APP, str(instance)]:
            return fields[-1]
    return ""


def test_a_hung_instance_is_restarted_by_the_liveness_probe(lab_faults):
    fleet = lab_faults
    lb = fleet.endpoints["lb_url"]
    host = lab_hosts(fleet)[0]
    unit = f"{APP}@1.service"
    pid_before, _ = unit_pids(fleet, host)[unit]
    since = sudo(fleet, host, "date '+%Y-%m-%d %H:%M:%S'").strip()
    with LoadGen(f"{lb}/version", rate=RATE, timeout=5, max_seconds=300,
                 ca_file=fleet.endpoints["lb_ca_file"]) as load:
        load.wait(3)
        # Hang every process of the instance (gunicorn master and workers): alive, but no answer.
        hung_at = load.now()
        sudo(fleet, host, f"systemctl kill --signal=SIGSTOP {unit}")

        def restarted() -> bool:
            pid, _ = unit_pids(fleet, host)[unit]
            return pid not in ("0", pid_before) and _fleetctl_health(fleet, host, 1) == "ok"

        _, seconds = wait_for(f"{unit} restarted and healthy", restarted, 180, interval=1)
        back_at = load.now()
        load.wait(3)
    report = load.report
    journal = sudo(fleet, host, f"journalctl --no-pager -o cat -u {APP}-liveness.service --since '{since}'")
    assert f"liveness: {unit} failed 3 probes in a row; restarting it" in journal, journal[-3000:]
    figure(f"hung instance ({unit} on {host.id}, SIGSTOP): restarted by the liveness probe and healthy "
           f"{seconds:.0f} s later; through the balancer {report['failed']} failed of {report['requests']} "
           f"({report['failures_by_kind']})")
    assert seconds < 120
    assert report["sent"] == report["planned"], delivery(report)
    # What the stopped process had already taken cannot be answered: a request it was serving, or one the
    # balancer sent on a keep-alive connection the process held (an ALB does not retry a sent request
    # either). Those few time out; every other request is served by the host's other instance and hosts.
    taken = [f for f in report["failures"] if f["kind"] == "timeout" and hung_at - 1 <= f["t"] <= back_at]
    assert report["failed"] == len(taken) <= HUNG_PROCESS_HELD, loaded_failures(report)
    assert_lab_as_found(fleet)


# At most this many requests time out because the hung process held them: its 2 workers, each with a
# request in flight or an idle keep-alive connection from the balancer.
HUNG_PROCESS_HELD = 4

NFT_TABLE = "ec2fleet_fault_ssh"


def _netns_nft(host: Host, script: str) -> subprocess.CompletedProcess:
    """nft in the host container's network namespace (the instance loses its network, not the control node)."""
    pid = subprocess.run(["podman", "inspect", "-f", "{{.State.Pid}}", host.container],
                         capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    return subprocess.run(["nsenter", "-t", pid, "-n", "nft", "-f", "-"], input=script,
                          capture_output=True, text=True, timeout=60)


def test_a_host_that_loses_ssh_mid_play_is_reported_unreachable_and_a_rerun_completes(converged, tmp_path: Path):
    fleet = converged
    victim = lab_hosts(fleet)[-1]
    log = tmp_path / "site.log"
    extra = json.dumps({"app_artifact_cache_dir": str(fleet.state_dir / "artifacts")})
    with log.open("w") as out:
        play = subprocess.Popen(["ansible-playbook", "-i", "inventories/lab", "playbooks/site.yml", "-e", extra],
                                cwd=ROOT, env={**fleet.env, "ANSIBLE_NOCOLOR": "1", "PYTHONUNBUFFERED": "1"},
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        # Once the hosts' play runs its roles, the control node holds an SSH session to every host.
        wait_for("site.yml configuring the hosts", lambda: "TASK [ec2_fleet.fleet.base : " in log.read_text(), 600)
        block = _netns_nft(victim, f"table inet {NFT_TABLE} {{\n chain input {{\n"
                                   "  type filter hook input priority -10; policy accept;\n"
                                   "  tcp dport 22 reject with tcp reset\n }\n}\n")
        assert block.returncode == 0, block.stderr
        blocked_at = time.monotonic()
        rc = play.wait(timeout=1200)
        ended_at = time.monotonic()
    finally:
        if play.poll() is None:
            play.kill()
            play.wait()
        _netns_nft(victim, f"delete table inet {NFT_TABLE}")
    result = PlayResult(rc, log.read_text())
    recap = result.recap()
    name = next((h for h in recap if victim.id in h), None)
    assert name, recap
    unreachable = [line for line in result.output.splitlines() if line.startswith(f"fatal: [{name}]: UNREACHABLE!")]
    assert rc == 4 and unreachable, result.tail()
    assert recap[name]["unreachable"] == 1 and recap[name]["failed"] == 0, recap
    assert all(c["unreachable"] == 0 and c["failed"] == 0 for h, c in recap.items() if h != name), recap
    message = json.loads(unreachable[0].split("=>", 1)[1])["msg"]
    # Through the bastion, ssh says the connection to the host was closed (directly, "port 22: refused").
    assert victim.ip in message and ("port 22" in message or "Connection closed" in message), message
    figure(f"SSH lost mid-play ({name}; the run ended {ended_at - blocked_at:.0f} s later): rc {rc}, "
           f"recap unreachable=1 for it only, message: {' / '.join(message.splitlines())}")

    rerun = fleet.play("site")
    assert rerun.rc == 0, rerun.tail()
    assert all(c["unreachable"] == 0 and c["failed"] == 0 for c in rerun.recap().values()), rerun.recap()
    assert name in rerun.recap()
    figure(f"rerun of site.yml after SSH was back: rc {rerun.rc}, {len(rerun.recap())} hosts, changed "
           f"{ {h: c['changed'] for h, c in rerun.recap().items()} }")
    assert_lab_as_found(fleet)
