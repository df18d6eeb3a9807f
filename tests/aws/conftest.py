"""Fixtures of the AWS control-plane tests: a moto server on 127.0.0.1 and ansible runs against it."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator

import boto3
import pytest
from aws_helpers import REGION, ROOT, Run
from fleettest import moto_server


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """A moto server on a free port of 127.0.0.1 for the whole session."""
    with moto_server() as url:
        yield url


@pytest.fixture(scope="session")
def aws_env(moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of every ansible run: moto as AWS, an inventory cache of this session only."""
    cache = tmp_path_factory.mktemp("inventory-cache")
    return {
        "AWS_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_INVENTORY_CACHE_CONNECTION": str(cache),
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache / "facts"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_DEPRECATION_WARNINGS": "false",
    }


@pytest.fixture(scope="session")
def client(moto_url: str) -> Callable:
    """boto3 clients bound to the moto server."""

    def _client(service: str):
        return boto3.client(
            service,
            endpoint_url=moto_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return _client


# The inputs these tests assert on, pinned here so that they do not follow the lab's env.yml
# (which is tuned for the lab controller: its own VPC CIDR, 3 hosts, a key pair file it makes).
PINNED_INPUTS: dict = {
    "aws_network_vpc_cidr": "10.89.0.0/16",
    "aws_network_public_subnet_cidrs": ["10.89.0.0/24", "10.89.1.0/24"],
    "aws_network_private_subnet_cidrs": ["10.89.10.0/24", "10.89.11.0/24"],
    "aws_network_ssh_cidrs": ["10.89.0.0/16"],
    "aws_instances_count": 2,
    "aws_instances_key_name": "",
    "aws_instances_public_key_file": "",
}


@pytest.fixture(scope="session")
def run(aws_env: dict[str, str]) -> Callable[..., Run]:
    """Run ansible-playbook (or another ansible command) from the repo root against moto."""

    def _run(
        playbook: str,
        extra_vars: dict | None = None,
        *args: str,
        inventory: str = "inventories/lab",
        command: str = "ansible-playbook",
        timeout: int = 300,
    ) -> Run:
        cmd = [command, "-i", inventory, *([playbook] if playbook else []), *args]
        if command == "ansible-playbook":
            cmd += ["-e", json.dumps({**PINNED_INPUTS, **(extra_vars or {})})]
        elif extra_vars:
            cmd += ["-e", json.dumps(extra_vars)]
        proc = subprocess.run(
            cmd,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **aws_env},
        )
        return Run(proc.returncode, proc.stdout + proc.stderr)

    return _run
