"""The module ec2_fleet.fleet.aws_alb_target run by ansible against moto: it registers a target and waits until
it is healthy, deregisters and waits until it is gone, changes nothing on a second run or in check mode, and
refuses a host without an instance id before any call."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import boto3
import pytest

from ec2_fleet_dev.plays import ROOT, moto_server

CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


@pytest.fixture(scope="module")
def aws() -> Iterator[dict]:
    with moto_server() as url:
        ec2 = boto3.client("ec2", endpoint_url=url, **CREDS)
        elbv2 = boto3.client("elbv2", endpoint_url=url, **CREDS)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, SubnetId=subnet)
        group = elbv2.create_target_group(Name="web-tg", Protocol="HTTP", Port=8000, VpcId=vpc,
                                          TargetType="instance", HealthCheckIntervalSeconds=5, HealthyThresholdCount=2)
        yield {"url": url, "elbv2": elbv2, "instance": instance["Instances"][0]["InstanceId"],
               "arn": group["TargetGroups"][0]["TargetGroupArn"]}


def module(aws: dict, *flags: str, **args: object) -> dict:
    """Run the module once on localhost; its result."""
    params = {"target_group_name": "web-tg", "endpoint_url": aws["url"], "region": "us-east-1",
              "access_key": "testing", "secret_key": "testing", **args}
    proc = subprocess.run(
        ["ansible", "localhost", "-m", "ec2_fleet.fleet.aws_alb_target", "-a", json.dumps(params), *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
             "ANSIBLE_NOCOLOR": "1"},
    )
    report, _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{"):])
    return report["plays"][0]["tasks"][0]["hosts"]["localhost"]


def states(aws: dict) -> dict[str, str]:
    found = aws["elbv2"].describe_target_health(TargetGroupArn=aws["arn"])["TargetHealthDescriptions"]
    return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in found}


def test_register_waits_for_healthy_and_a_second_run_changes_nothing(aws: dict) -> None:
    checked = module(aws, "--check", target_id=aws["instance"])
    assert checked["changed"] is True and checked["state_before"] == "unregistered"
    assert aws["instance"] not in states(aws)  # check mode registers nothing

    first = module(aws, target_id=aws["instance"])
    assert first["changed"] is True, first
    assert (first["state_before"], first["state"]) == ("unregistered", "healthy")
    # interval x (threshold + 1) + the check timeout + the default margin of 120 s
    group = aws["elbv2"].describe_target_groups(TargetGroupArns=[aws["arn"]])["TargetGroups"][0]
    assert first["timeout_s"] == 5 * 3 + group["HealthCheckTimeoutSeconds"] + 120
    assert states(aws)[aws["instance"]] == "healthy"

    again = module(aws, target_id=aws["instance"])
    assert again["changed"] is False and again["state"] == "healthy"
    assert again["polls"] == 1  # one read of the target's health, no wait


def test_drain_deregisters_and_waits_until_it_is_gone(aws: dict) -> None:
    module(aws, target_id=aws["instance"])
    drained = module(aws, target_id=aws["instance"], state="drained", drain_margin=5)
    assert drained["changed"] is True and drained["state_before"] == "healthy"
    assert drained["state"] in ("unused", "unregistered")
    assert states(aws).get(aws["instance"], "unregistered") in ("unused", "unregistered")
    again = module(aws, target_id=aws["instance"], state="drained")
    assert again["changed"] is False


def test_a_host_without_an_instance_id_is_refused_by_name(aws: dict) -> None:
    refused = module(aws, target_id="")
    assert refused.get("failed") is True
    assert "target_id is empty" in refused["msg"] and "instance_id" in refused["msg"]


def test_an_unknown_target_group_is_named(aws: dict) -> None:
    refused = module(aws, target_id=aws["instance"], target_group_name="no-such-tg")
    assert refused.get("failed") is True and "no-such-tg" in refused["msg"]
