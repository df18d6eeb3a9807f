"""Helpers of the lab tests (import with `from lab_helpers import ...`)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from fleettest import ROOT

LABCTL = ROOT / "lab" / "labctl.py"


def free_vpc_cidr() -> str:
    """A /16 that no podman network and no host route uses (podman's own pool is 10.88-10.89)."""
    names = subprocess.run(["podman", "network", "ls", "--format", "{{.Name}}"], capture_output=True, text=True).stdout
    nets = json.loads(
        subprocess.run(["podman", "network", "inspect", *names.split()], capture_output=True, text=True).stdout
    )
    used = [ipaddress.ip_network(s["subnet"]) for n in nets for s in n.get("subnets") or []]
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout.split("\n")
    used += [ipaddress.ip_network(r.split()[0]) for r in routes if r and r.split()[0][0].isdigit()]
    for second in range(200, 250):
        candidate = ipaddress.ip_network(f"10.{second}.0.0/16")
        if not any(candidate.overlaps(u) for u in used):
            return str(candidate)
    raise RuntimeError("no free 10.x.0.0/16 for the test VPC")


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Poll check() until it returns something truthy; fail naming what after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


@dataclass
class Lab:
    name: str
    state_dir: Path
    env: dict[str, str]
    endpoints: dict[str, Any]
    session: boto3.session.Session
    facts: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoints["aws_url"])

    def labctl(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(LABCTL), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def containers(self) -> dict[str, str]:
        out = subprocess.run(
            ["podman", "ps", "-a", "--filter", f"label=ec2-fleet-lab={self.name}", "--format", "json"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        return {c["Names"][0]: c["State"] for c in json.loads(out or "[]")}


LAB_TAGS = [{"Key": "Project", "Value": "ec2-fleet"}, {"Key": "Environment", "Value": "lab"}]
