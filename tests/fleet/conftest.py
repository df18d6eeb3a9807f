"""The fleet scenario: a whole lab from nothing, driven by the real playbooks and inventory."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest

from ec2_fleet_dev.labs import lab_env, labctl
from ec2_fleet_dev.lbhttp import http, trust
from ec2_fleet_dev.plays import ROOT, PlayResult, run_playbook


@dataclass
class Fleet:
    env: dict[str, str]
    endpoints: dict
    state_dir: Path
    runs: dict[str, PlayResult] = field(default_factory=dict)
    # Every play this session ran that succeeded, as (playbook, options, extra vars): what
    # test_95_first_run_doc compares the commands of docs/first-run-on-aws.md with.
    history: list[tuple[str, frozenset[str], frozenset[tuple[str, str]]]] = field(default_factory=list)

    def play(self, name: str, *args: str, extra: dict | None = None) -> PlayResult:
        # Its own artifact cache: a release is built once per version, so a developer's cached
        # build of the same version must not stand in for the code under test.
        full = {"app_artifact_cache_dir": str(self.state_dir / "artifacts"), **(extra or {})}
        result = run_playbook(ROOT / "playbooks" / f"{name}.yml", "inventories/lab", full, *args,
                              env=self.env, timeout=1500)
        if result.rc == 0:
            self.history.append((name, frozenset(args), frozenset((k, str(v)) for k, v in (extra or {}).items())))
        return result

    def labctl(self, *args: str) -> subprocess.CompletedProcess:
        return labctl(self.env, *args, timeout=600)


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A lab of its own (name, ports, state dir), torn down at the end, also on failure.

    It uses inventories/lab unchanged: only AWS_URL, the lab's state dir and its network
    (EC2_FLEET_LAB_NET, so a developer's lab on the default 10.213 can keep running) differ.
    """
    state_dir = tmp_path_factory.mktemp("fleet-lab")
    # A private inventory and fact cache (cache_dir): never the developer's, never stale across runs.
    env = lab_env(f"fleet-{uuid.uuid4().hex[:6]}", state_dir, cache_dir=state_dir,
                  net=os.environ.get("EC2_FLEET_TEST_LAB_NET", "10.231"))
    fleet = Fleet(env, {}, state_dir)
    up = fleet.labctl("up", "--json")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        fleet.endpoints = json.loads(up.stdout)
        trust(fleet.endpoints["lb_ca_file"])  # the load balancer's HTTPS listener: the lab CA's certificate
        yield fleet
    finally:
        down = fleet.labctl("down")
        print(f"\nlab down: rc={down.returncode}; log in {state_dir / 'controller.log'}")


@pytest.fixture(scope="session")
def converged(fleet: Fleet) -> Fleet:
    """The lab provisioned (provision.yml) and configured (site.yml) once, for every test that needs hosts;
    first, as docs/first-run-on-aws.md says, a dry run of provision.yml on the empty account."""
    if "provision-dry-run" not in fleet.runs:
        dry = fleet.play("provision", "--check", "--diff")
        fleet.runs["provision-dry-run"] = dry
        assert dry.rc == 0, f"provision.yml --check --diff failed on an empty account:\n{dry.output[-4000:]}"
    for name in ("provision", "site"):
        if name not in fleet.runs:
            result = fleet.play(name)
            fleet.runs[name] = result
            assert result.rc == 0, f"{name}.yml failed:\n{result.output[-4000:]}"
    return fleet


def baked_images(fleet: Fleet, app: str) -> list[dict]:
    ec2 = boto3.client("ec2", endpoint_url=fleet.env["AWS_URL"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    return ec2.describe_images(Owners=["self"], Filters=[{"Name": "tag:App", "Values": [app]}])["Images"]


@pytest.fixture(scope="session")
def baked(converged: Fleet) -> tuple[Fleet, str, PlayResult, dict]:
    """bake.yml of the release the fleet runs, once (test_50_bake proves it, test_51_asg_scaling's groups run it):
    (fleet, release, the run, the image)."""
    fleet = converged
    status, _, body = http(fleet.endpoints["lb_url"] + "/version")
    assert status == 200, body
    release = body["version"]
    started = time.monotonic()
    run = fleet.play("bake", extra={"app_version": release})
    seconds = time.monotonic() - started
    (fleet.state_dir / "bake.log").write_text(run.output)  # the whole run, for a failure's reader
    assert run.rc == 0, run.tail(6000)
    found = [i for i in baked_images(fleet, "orders-api") if {"Key": "Release", "Value": release} in i["Tags"]]
    assert len(found) == 1, found
    print(f"\nFIGURE bake_seconds={seconds:.1f} (bake.yml of {release}: builder, converge, image, terminate)")
    return fleet, release, run, found[0]
