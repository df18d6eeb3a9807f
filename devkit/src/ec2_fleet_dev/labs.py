"""A private lab (its own name, ports, state dir and VPC octets) and a handle on it: lab tests, fleet tests
and benchmarks start theirs with `lab_env` + `labctl up`, and never touch a developer's lab."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from ec2_fleet_dev.paths import ROOT
from ec2_fleet_dev.plays import free_port

LABCTL = ROOT / "lab" / "labctl.py"


def lab_env(
    name: str,
    state_dir: Path,
    *,
    net: str | None = None,
    cache_dir: Path | None = None,
    base: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a private lab: base (default os.environ) with its name, state dir and free ports.

    net: the first two octets of its VPC (EC2_FLEET_LAB_NET). cache_dir: also AWS_URL and a private
    inventory and fact cache there (playbooks then never read a developer's cache, never a stale one).
    """
    moto_port = free_port()
    env = {
        **(os.environ if base is None else base),
        "EC2_FLEET_LAB_NAME": name,
        "EC2_FLEET_LAB_STATE_DIR": str(state_dir),
        "EC2_FLEET_LAB_MOTO_PORT": str(moto_port),
        "EC2_FLEET_LAB_LB_PORT": str(free_port()),
        "EC2_FLEET_LAB_LB_HTTPS_PORT": str(free_port()),
        # The CloudFront edge (inventories/lab reads it too: the frontend's origin, CORS_ALLOW_ORIGINS).
        "EC2_FLEET_LAB_EDGE_PORT": str(free_port()),
    }
    if net is not None:
        env["EC2_FLEET_LAB_NET"] = net
    if cache_dir is not None:
        env.update({
            "AWS_URL": f"http://127.0.0.1:{moto_port}",
            "ANSIBLE_INVENTORY_CACHE_CONNECTION": str(cache_dir / "inventory-cache"),
            "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache_dir / "facts"),
        })
    return env


def labctl(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """lab/labctl.py ARGS for the lab that env names (from the repo root, output captured)."""
    return subprocess.run([sys.executable, str(LABCTL), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


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
    """A lab the lab tests drive through its AWS API (boto3) and labctl."""

    name: str
    state_dir: Path
    env: dict[str, str]
    endpoints: dict[str, Any]
    session: boto3.session.Session
    facts: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoints["aws_url"])

    def labctl(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return labctl(self.env, *args, timeout=timeout)

    def containers(self) -> dict[str, str]:
        out = subprocess.run(
            ["podman", "ps", "-a", "--filter", f"label=ec2-fleet-lab={self.name}", "--format", "json"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        return {c["Names"][0]: c["State"] for c in json.loads(out or "[]")}


LAB_TAGS = [{"Key": "Project", "Value": "ec2-fleet"}, {"Key": "Environment", "Value": "lab"}]


def instances_serving(lab: Lab, script: str, path: str) -> tuple[str, list[str], list[str]]:
    """A VPC with a subnet in us-east-1a and 1b, one t3.small lab instance in each, every one running the
    Python `script` (copied to `path`, started with the instance id as its argument): (vpc, subnets, ids)."""
    ec2 = lab.client("ec2")
    wanted = ipaddress.ip_network(f"{lab.env['EC2_FLEET_LAB_NET']}.0.0/16")
    free = ipaddress.ip_network(free_vpc_cidr())
    cidr = wanted if wanted.network_address >= free.network_address else free  # taken: a free one
    vpc = ec2.create_vpc(CidrBlock=str(cidr))["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=str(list(cidr.subnets(8))[10 + n]), AvailabilityZone=f"us-east-1{z}")[
            "Subnet"]["SubnetId"]
        for n, z in enumerate("ab")
    ]  # fmt: skip
    ami = lab.client("ssm").get_parameter(Name="/ec2-fleet/lab/ubuntu-ami-id")["Parameter"]["Value"]
    tags = [{"ResourceType": "instance", "Tags": LAB_TAGS}]
    ids = [
        ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.small", SubnetId=subnet,
                          TagSpecifications=tags)["Instances"][0]["InstanceId"]
        for subnet in subnets
    ]  # fmt: skip
    for iid in ids:
        container = f"{lab.name}-{iid}"
        wait_for(f"container {container}", lambda c=container: lab.containers().get(c) == "running", 90)
        subprocess.run(["podman", "exec", "-i", container, "sh", "-c", f"cat > {path}"],
                       input=script, text=True, check=True, timeout=30)  # fmt: skip
        subprocess.run(["podman", "exec", "-d", container, "python3", path, iid],
                       check=True, capture_output=True, timeout=30)  # fmt: skip
    return vpc, subnets, ids
