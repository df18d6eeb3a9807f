"""Fixtures of the AWS control-plane tests: a moto server on 127.0.0.1 and ansible runs against it."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator

import boto3
import pytest
from api_recorder import ApiCall, RecordingMotoServer
from iam_check import REPORT_KEY, annotate
from provision_helpers import HEALTH, PREFIX, PROVISION_ORDER

from ec2_fleet_dev.lab import moto_lab
from ec2_fleet_dev.lab import refresh as lab_refresh
from ec2_fleet_dev.moto_aws import (
    CHECKS_ACCESS_KEY,
    PLAYBOOK_ACCESS_KEY,
    REGION,
    ROOT,
    Run,
    cache_role_ready,
    reset_moto,
)
from ec2_fleet_dev.plays import free_port


def _order(item: pytest.Item) -> tuple[bool, int]:
    name = item.path.name
    stem = name.removeprefix("test_provision_").removesuffix(".py")
    provision = name.startswith("test_provision_") and stem in PROVISION_ORDER
    return name == "test_iam_policy.py", PROVISION_ORDER.index(stem) + 1 if provision else 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The provision files in PROVISION_ORDER after the others; the IAM policy test reads the AWS calls of
    every other test of the session: it runs last."""
    items.sort(key=_order)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """The IAM policy test's figures: calls checked, actions granted but never called."""
    for line in config.stash.get(REPORT_KEY, []):
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def moto_recorder() -> Iterator[RecordingMotoServer]:
    """A moto server on a free port of 127.0.0.1 for the whole session, recording every AWS call."""
    # AWS's managed policies exist, as on AWS (the hosts' role attaches AmazonSSMManagedInstanceCore).
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    moto_lab.patch_image_tags()  # CreateImage with tags for its snapshot too, as amazon.aws.ec2_ami sends them
    lab_refresh.patch_describe()  # DescribeInstanceRefreshes (verify.yml, provision.yml in asg mode) as AWS answers
    server = RecordingMotoServer("127.0.0.1", free_port())
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"

    def before(call: ApiCall) -> dict:
        # The tags IAM would see on the resources a playbook call acts on (for aws:ResourceTag conditions).
        return (
            annotate(call, lambda service: _checks_client(url, service))
            if call.access_key == PLAYBOOK_ACCESS_KEY
            else {}
        )

    server.annotate = before
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_url(moto_recorder: RecordingMotoServer) -> str:
    host, port = moto_recorder.get_host_and_port()
    return f"http://{host}:{port}"


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
    """boto3 clients bound to the moto server, with an access key of their own.

    The playbooks sign with "testing" (the lab's), the tests' own setup and checks with CHECKS_ACCESS_KEY,
    so the IAM policy test counts the playbooks' calls only (moto accepts any key, same account).
    """

    def _client(service: str):
        return _checks_client(moto_url, service)

    return _client


_CLIENTS_LOCK = threading.Lock()


@functools.cache
def _checks_client(url: str, service: str):
    # One client per service, made under a lock: the recorder's server threads ask for them too.
    with _CLIENTS_LOCK:
        return boto3.session.Session().client(
            service,
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id=CHECKS_ACCESS_KEY,
            aws_secret_access_key="testing",
        )


# The inputs these tests assert on, pinned here so that they do not follow the lab's env.yml
# (which is tuned for the lab controller: its own VPC CIDR, 3 hosts, a key pair file it makes).
PINNED_INPUTS: dict = {
    "aws_network_vpc_cidr": "10.89.0.0/16",
    "aws_network_public_subnet_cidrs": ["10.89.0.0/24", "10.89.1.0/24"],
    "aws_network_private_subnet_cidrs": ["10.89.10.0/24", "10.89.11.0/24"],
    # The operators' network that may SSH to the bastion (the hosts: from the bastion only).
    "fleet_bastion_cidrs": ["203.0.113.0/24"],
    "aws_instances_count": 2,
    "aws_instances_key_name": "",
    "aws_instances_public_key_file": "",
    # The lab's certificate parameter exists only while a lab controller runs: plain HTTP on purpose
    # here (test_provision_alb turns HTTPS on with a certificate of its own).
    "aws_alb_certificate_ssm_parameter": "",
    "aws_alb_allow_http_only": True,
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
        env: dict[str, str] | None = None,
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
            env={**os.environ, **aws_env, **(env or {})},
        )
        return Run(proc.returncode, proc.stdout + proc.stderr)

    return _run


@pytest.fixture(scope="session")
def lab(moto_url: str, client: Callable, run: Callable[..., Run], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Resources the playbooks must leave alone, then provision.yml run twice: the environment every
    test_provision_* file inspects (they run in PROVISION_ORDER, the teardown last)."""
    reset_moto(moto_url, client)
    ec2 = client("ec2")
    # Someone else's things: an untagged VPC with a security group, an untagged instance,
    # an untagged key pair, and an instance of the same project in another environment.
    foreign_vpc = ec2.create_vpc(CidrBlock="172.31.0.0/16")["Vpc"]["VpcId"]
    foreign_subnet = ec2.create_subnet(VpcId=foreign_vpc, CidrBlock="172.31.1.0/24")["Subnet"]["SubnetId"]
    foreign_sg = ec2.create_security_group(GroupName="not-ours", Description="untagged", VpcId=foreign_vpc)["GroupId"]
    ami = client("ssm").get_parameter(Name="/ec2-fleet/lab/ubuntu-ami-id")["Parameter"]["Value"]
    untagged = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, SubnetId=foreign_subnet)["Instances"][0]
    staging = ec2.run_instances(
        ImageId=ami,
        MinCount=1,
        MaxCount=1,
        SubnetId=foreign_subnet,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": "Project", "Value": "ec2-fleet"},
                    {"Key": "Environment", "Value": "staging"},
                    {"Key": "Role", "Value": "web"},
                    {"Key": "Name", "Value": "ec2-fleet-staging-web"},
                ],
            }
        ],
    )["Instances"][0]
    ec2.create_key_pair(KeyName="not-ours")

    # (Not the NAT gateway of staging and production: moto files its tags under resource type "nat-gateway", so
    # ec2_vpc_nat_gateway re-tags it on every run and idempotence fails.) The hosts' IAM role and instance
    # profile: provision.yml makes them.
    keydir = tmp_path_factory.mktemp("key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keydir / "id")], check=True)
    extra = {
        "provision_cache": cache_role_ready(),
        "provision_wait_for_hosts": False,
        "aws_instances_key_name": PREFIX,
        "aws_instances_public_key_file": str(keydir / "id.pub"),
        **HEALTH,
    }
    first = run("playbooks/provision.yml", extra)
    assert first.rc == 0, first.tail()
    second = run("playbooks/provision.yml", extra)
    profile = client("iam").get_instance_profile(InstanceProfileName=f"{PREFIX}-host")["InstanceProfile"]
    return {
        "extra": extra,
        "first": first,
        "second": second,
        "ami": ami,
        "profile": profile["Arn"],
        "foreign": {
            "vpc": foreign_vpc,
            "subnet": foreign_subnet,
            "sg": foreign_sg,
            "instance": untagged["InstanceId"],
            "staging": staging["InstanceId"],
            "key": "not-ours",
        },
    }
