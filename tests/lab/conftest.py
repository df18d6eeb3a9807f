"""Fixtures of the lab tests: a lab controller on non-default ports with a unique name and state
dir, and a fleet (VPC, two lab instances) created through its AWS API with boto3."""

from __future__ import annotations

import ipaddress
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from ec2_fleet_dev.labs import LAB_TAGS, Lab, free_vpc_cidr, lab_env
from ec2_fleet_dev.plays import ROOT


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    name = f"ltest-{uuid.uuid4().hex[:6]}"
    state_dir = tmp_path_factory.mktemp("lab-state")
    env = lab_env(name, state_dir, base={**os.environ, "CONTAINERS_CONF": str(ROOT / "tools" / "containers.conf")})
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    lab = Lab(name, state_dir, env, {}, session)
    try:
        started = time.monotonic()
        up = lab.labctl("up", "--json")
        assert up.returncode == 0, up.stderr
        lab.endpoints = json.loads(up.stdout)
        lab.facts["up_seconds"] = time.monotonic() - started
        yield lab
    finally:
        lab.labctl("down", timeout=180)
        print(f"\nlab log: {state_dir / 'controller.log'}")


@pytest.fixture(scope="module")
def fleet(lab: Lab) -> dict[str, Any]:
    """A VPC with two subnets in two zones, the lab's key pair and two lab instances, one per subnet."""
    ec2 = lab.client("ec2")
    cidr = ipaddress.ip_network(free_vpc_cidr())
    vpc = ec2.create_vpc(CidrBlock=str(cidr))["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=str(list(cidr.subnets(8))[10 + n]), AvailabilityZone=f"us-east-1{z}")[
            "Subnet"
        ]["SubnetId"]
        for n, z in enumerate("ab")
    ]
    key_name = f"{lab.name}-key"
    public_key = Path(lab.endpoints["ssh_public_key_file"]).read_text()
    ec2.import_key_pair(KeyName=key_name, PublicKeyMaterial=public_key)
    ami = lab.client("ssm").get_parameter(Name="/ec2-fleet/lab/ubuntu-ami-id")["Parameter"]["Value"]
    instances = []
    for subnet in subnets:
        started = ec2.run_instances(
            ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.small", SubnetId=subnet, KeyName=key_name,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [*LAB_TAGS, {"Key": "Role", "Value": "web"}]}],
        )["Instances"][0]  # fmt: skip
        instances.append((started["InstanceId"], started["PrivateIpAddress"]))
    # The one instance the control node may reach over SSH (the lab's firewall drops port 22 to the rest).
    bastion = ec2.run_instances(
        ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=subnets[0], KeyName=key_name,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [*LAB_TAGS, {"Key": "Role", "Value": "bastion"}]}],
    )["Instances"][0]  # fmt: skip
    return {"vpc": vpc, "cidr": str(cidr), "subnets": subnets, "instances": instances,
            "bastion": (bastion["InstanceId"], bastion["PrivateIpAddress"]), "launched": time.monotonic()}
