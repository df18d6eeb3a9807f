"""Faults on purpose (`labctl.py fault ACTION`): stop and start the cache or the database, or fail
the cache over to a new primary, without the controller repairing the fault behind the tester's back.

`labctl` writes the wanted state to `<state dir>/faults.json`; the controller's reconcile loop, the
only process that touches the service containers, applies it on its next pass and publishes the
result in `status.json`; `labctl` waits until the status shows it and the service's port answers
(or stopped answering)."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ACTIONS = ("redis-stop", "redis-start", "redis-failover", "db-stop", "db-start", "instance-kill", "ext-redis-stop",
           "ext-redis-start")
# Actions that name an instance id.
TARGETED = ("instance-kill",)
DB_PORT = 5432


@dataclass(frozen=True)
class Faults:
    redis_stopped: bool = False
    # Bumped by each failover: the controller replaces the Redis container with a new one at a
    # new address and moves the endpoint names (network aliases) to it.
    redis_generation: int = 0
    db_stopped: bool = False
    # Instances whose container was killed and stays dead: EC2 still calls them running (as a
    # host that crashed or froze), so their targets fail the load balancer's health checks.
    killed_instances: tuple[str, ...] = ()
    # The internet Redis (internet.py: a managed Redis outside the VPC) stopped, and left stopped.
    ext_redis_stopped: bool = False


def path(state_dir: Path) -> Path:
    return state_dir / "faults.json"


def read(state_dir: Path) -> Faults:
    try:
        data = json.loads(path(state_dir).read_text())
    except (OSError, ValueError):
        return Faults()
    known = {k: v for k, v in data.items() if k in Faults.__dataclass_fields__}
    known["killed_instances"] = tuple(known.get("killed_instances", ()))
    return Faults(**known)


def write(state_dir: Path, faults: Faults) -> None:
    tmp = path(state_dir).with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(faults), indent=2) + "\n")
    os.replace(tmp, path(state_dir))


def change(faults: Faults, action: str, target: str | None = None) -> Faults:
    """The wanted state after one action (a failover also starts a stopped cache)."""
    if action == "instance-kill":
        if not target or not target.startswith("i-"):
            raise ValueError("instance-kill needs the instance id, e.g. labctl.py fault instance-kill i-0abc...")
        return replace(faults, killed_instances=tuple(sorted({*faults.killed_instances, target})))
    if action == "redis-stop":
        return replace(faults, redis_stopped=True)
    if action == "redis-start":
        return replace(faults, redis_stopped=False)
    if action == "redis-failover":
        return replace(faults, redis_stopped=False, redis_generation=faults.redis_generation + 1)
    if action == "db-stop":
        return replace(faults, db_stopped=True)
    if action in ("ext-redis-stop", "ext-redis-start"):
        return replace(faults, ext_redis_stopped=action == "ext-redis-stop")
    if action == "db-start":
        return replace(faults, db_stopped=False)
    raise ValueError(f"unknown fault action {action!r}: one of {', '.join(ACTIONS)}")


def port_open(ip: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


def applied(status: dict, action: str, wanted: Faults, target: str | None = None) -> str | None:
    """What the status shows once the action took effect (None while it has not)."""
    if action == "instance-kill":
        row = next((i for i in status.get("instances") or [] if i["id"] == target), None)
        dead = row is not None and row["container"] != "running"
        return f"instance {target}: container killed ({row['container'] if row else '?'}), left dead" if dead else None
    if action in ("ext-redis-stop", "ext-redis-start"):
        ext = status.get("external_redis") or {}
        if not ext:
            return None
        answers = port_open(ext["ip"], ext["port"])
        if action == "ext-redis-stop":
            done = ext["state"] != "running" and not answers
            return f"internet Redis {ext['endpoint']} stopped (does not answer)" if done else None
        done = ext["state"] == "running" and answers
        return f"internet Redis {ext['endpoint']} running again at {ext['ip']}" if done else None
    redis = status.get("redis") or []
    db = status.get("db") or {}
    db_ips = db.get("ips") or []
    if action == "redis-stop":
        done = bool(redis) and all(r["state"] != "running" and not port_open(r["ip"], r["port"]) for r in redis)
        message = "; ".join(f"Redis {r['group']} stopped ({r['endpoint']} does not answer)" for r in redis)
    elif action in ("redis-start", "redis-failover"):
        done = bool(redis) and all(
            r["state"] == "running" and r.get("generation") == wanted.redis_generation and port_open(r["ip"], r["port"])
            for r in redis
        )
        verb = "failed over to a new primary" if action == "redis-failover" else "running"
        message = "; ".join(f"Redis {r['group']} {verb}: {r['endpoint']} at {r['ip']}" for r in redis)
    elif action == "db-stop":
        done = db.get("state") not in (None, "running") and not any(port_open(ip, DB_PORT) for ip in db_ips)
        message = f"database {db.get('alias')} stopped (data kept)"
    else:
        done = db.get("state") == "running" and bool(db_ips) and all(port_open(ip, DB_PORT) for ip in db_ips)
        message = f"database {db.get('alias')} running again at {', '.join(db_ips)}"
    return message if done else None


def wait(read_status: Callable[[], dict | None], action: str, wanted: Faults, timeout: float,
         target: str | None = None) -> tuple[bool, str]:
    """Poll the controller's status until the action took effect; (done, message)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = read_status()
        if status is not None:
            message = applied(status, action, wanted, target)
            if message:
                return True, message
        time.sleep(0.2)
    return False, f"{action}: not done after {timeout:g} s (see the controller's log and `labctl.py status`)"
