"""labctl.py up | down | status | run | fault ACTION  (options override the EC2_FLEET_LAB_* variables)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time

from ec2_fleet_dev.lab import config as lab_config
from ec2_fleet_dev.lab import faults, state
from ec2_fleet_dev.paths import ROOT

MARK = "ec2_fleet_dev.lab"  # the controller's module: in its command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labctl.py", description="The local AWS lab (see lab/README.md).")
    parser.add_argument("command", choices=["up", "down", "status", "run", "fault"])
    parser.add_argument(
        "action", nargs="?", choices=faults.ACTIONS,
        help="fault: stop/start Redis or PostgreSQL, fail Redis over to a new primary at a new address, "
        "stop/start the internet Redis (ext-redis-stop|ext-redis-start), "
        "or kill an instance's container for good (instance-kill ID)",
    )
    parser.add_argument("target", nargs="?", help="fault instance-kill: the instance id")
    parser.add_argument("--name", help="prefix/label of containers and networks (EC2_FLEET_LAB_NAME)")
    parser.add_argument("--state-dir", help="pid file, logs, keys, CA, HAProxy config (EC2_FLEET_LAB_STATE_DIR)")
    parser.add_argument("--moto-port", type=int, help="port of the AWS API on 127.0.0.1 (EC2_FLEET_LAB_MOTO_PORT)")
    parser.add_argument(
        "--lb-port", type=int, help="port of the load balancer's HTTP listener on 127.0.0.1 (EC2_FLEET_LAB_LB_PORT)"
    )
    parser.add_argument(
        "--lb-https-port", type=int,
        help="port of the load balancer's HTTPS listener on 127.0.0.1 (EC2_FLEET_LAB_LB_HTTPS_PORT)",
    )
    parser.add_argument("--timeout", type=float, help="up: seconds to wait until ready (900); fault: until done (120)")
    parser.add_argument("--json", action="store_true", help="up/status: print JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.command == "fault") != (args.action is not None):
        parser.error("an ACTION goes with `fault` only, and `fault` needs one: " + ", ".join(faults.ACTIONS))
    try:
        config = lab_config.load(
            {
                "name": args.name,
                "state_dir": args.state_dir,
                "moto_port": args.moto_port,
                "lb_port": args.lb_port,
                "lb_https_port": args.lb_https_port,
            }
        )
    except ValueError as exc:
        print(f"labctl: {exc}", file=sys.stderr)
        return 2
    return {"up": up, "down": down, "status": status, "run": run, "fault": fault}[args.command](config, args)


def run(config: lab_config.LabConfig, args: argparse.Namespace) -> int:
    from ec2_fleet_dev.lab.controller import Controller  # moto is slow to import: only here

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    paths = state.Paths(config.state_dir)
    other = state.read_pid(paths.pid, MARK)
    if other is not None and other != os.getpid():
        print(f"labctl: a lab controller (pid {other}) already runs with {config.state_dir}", file=sys.stderr)
        return 1
    return Controller(config).run()


def _endpoints(paths: state.Paths, pid: int) -> dict | None:
    try:
        data = json.loads(paths.endpoints.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("pid") == pid else None


def up(config: lab_config.LabConfig, args: argparse.Namespace) -> int:
    paths = state.Paths(config.state_dir)
    pid = state.read_pid(paths.pid, MARK)
    if pid is None:
        from ec2_fleet_dev.lab import preflight

        problems = preflight.check(config)
        if problems:
            print("labctl: the lab cannot start on this machine; nothing was started:\n"
                  + "\n".join(map(str, problems)), file=sys.stderr)
            return 4
        config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        env = {**os.environ, **config.to_env()}
        with open(paths.log, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", MARK, "run"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=str(ROOT / "lab"),
            )
        pid = proc.pid
        deadline = time.monotonic() + (args.timeout or 900)
        while _endpoints(paths, pid) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    state.stop_pid(pid, 30)
                tail = paths.log.read_text(errors="replace").splitlines()[-30:] if paths.log.exists() else []
                print("labctl: the lab did not start; the end of its log:\n" + "\n".join(tail), file=sys.stderr)
                return 1
            time.sleep(0.3)
    endpoints = _endpoints(paths, pid)
    assert endpoints is not None
    if args.json:
        print(json.dumps(endpoints, indent=2))
    else:
        width = max(len(k) for k in endpoints)
        for key, value in endpoints.items():
            print(f"{key:<{width}}  {', '.join(value) if isinstance(value, list) else value}")
        print(f"\nexport AWS_URL={endpoints['aws_url']} AWS_ENDPOINT_URL={endpoints['aws_url']}")
    return 0


def down(config: lab_config.LabConfig, args: argparse.Namespace) -> int:
    paths = state.Paths(config.state_dir)
    pid = state.read_pid(paths.pid, MARK)
    if pid is not None:
        print(f"stopping the lab controller (pid {pid})")
        if not state.stop_pid(pid, 90):
            print(f"labctl: pid {pid} did not stop", file=sys.stderr)
    removed = state.cleanup(config, keep_logs=True)  # whatever a killed controller left behind
    from ec2_fleet_dev.lab import internet

    if internet.remove_firewall(config.name):
        removed.append(f"nftables table inet {internet.table_name(config.name)}")
    for item in removed:
        print(f"removed {item}")
    print("lab is down")
    return 0


def status(config: lab_config.LabConfig, args: argparse.Namespace) -> int:
    paths = state.Paths(config.state_dir)
    pid = state.read_pid(paths.pid, MARK)
    if pid is None or _endpoints(paths, pid) is None:
        print("lab is not running (labctl.py up starts it)")
        return 3
    try:
        data = json.loads(paths.status.read_text())
    except (OSError, ValueError):
        print("lab is starting")
        return 0
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(
        f"Load balancer: {data['lb_url']}    AWS API: {data['aws_url']}"
        f"    (updated {time.time() - data['updated']:.0f} s ago)"
    )
    redis = ", ".join(f"{r['endpoint']} ({r['state']})" for r in data["redis"]) or "-"
    rows = [("INSTANCE", "PRIVATE IP", "CONTAINER", "TARGET HEALTH (LB view)", "REDIS ENDPOINT")]
    for i in data["instances"]:
        rows.append((i["id"], i["ip"], i["container"], ", ".join(i["health"]) or "not registered", redis))
    if len(rows) == 1:
        rows.append(("(no running lab instance)", "", "", "", redis))
    widths = [max(len(r[n]) for r in rows) for n in range(4)]
    for r in rows:
        print("  ".join(f"{cell:<{widths[n]}}" for n, cell in enumerate(r[:4])) + "  " + r[4])
    for b in data.get("bastions", []):
        print(f"Bastion: {b['id']} at {b['ip']} ({b['container']}); the only instance this host may SSH to")
    print(f"Database: {data['db']['alias']}:5432 ({data['db']['state']}); URL in SSM {config.ssm_prefix}/database_url")
    pooler = data.get("pooler") or {}
    if pooler:
        print(f"Pooler: {pooler['alias']}:{pooler['port']} (PgBouncer, transaction mode, TLS; {pooler['state']}); "
              f"URL in SSM {config.ssm_prefix}/database_pooler_url")
    ext = data.get("external_redis") or {}
    if ext:
        print(f"Internet Redis: {ext['endpoint']} at {ext['ip']} ({ext['state']}); URL with its password: "
              "external_redis_url of `up --json`")
    wanted = data.get("faults") or {}
    held = [what for what, key in (("Redis stopped", "redis_stopped"), ("database stopped", "db_stopped"),
                                   ("internet Redis stopped", "ext_redis_stopped"))
            if wanted.get(key)]
    if held or wanted.get("redis_generation"):
        print(f"Faults (labctl.py fault): {', '.join(held) or 'none held'}; "
              f"Redis failovers: {wanted.get('redis_generation', 0)}")
    for what, error in data.get("errors", {}).items():
        print(f"ERROR {what}: {error}")
    return 0


def fault(config: lab_config.LabConfig, args: argparse.Namespace) -> int:
    """Ask the controller for a fault (or its end) and wait until it took effect."""
    paths = state.Paths(config.state_dir)
    pid = state.read_pid(paths.pid, MARK)
    if pid is None or _endpoints(paths, pid) is None:
        print("labctl: lab is not running (labctl.py up starts it)", file=sys.stderr)
        return 3
    try:
        wanted = faults.change(faults.read(config.state_dir), args.action, args.target)
    except ValueError as exc:
        print(f"labctl: {exc}", file=sys.stderr)
        return 2
    faults.write(config.state_dir, wanted)

    def read_status() -> dict | None:
        try:
            return json.loads(paths.status.read_text())
        except (OSError, ValueError):
            return None

    started = time.monotonic()
    done, message = faults.wait(read_status, args.action, wanted, args.timeout or 120, args.target)
    if not done:
        print(f"labctl: {message}", file=sys.stderr)
        return 1
    print(f"{message} ({time.monotonic() - started:.1f} s)")
    return 0
