"""The lab's Auto Scaling (devkit lab/autoscaling.py) through the real autoscaling, ec2 and elbv2 APIs of moto
in-process, with the lab's pass run by hand: launches from the whole launch template, lifecycle hooks, target
registration only once in service, scale-in that drains before it terminates, ELB health replacement."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from lab_asg_support import network
from moto import mock_aws

from ec2_fleet_dev.lab import autoscaling, moto_lab

REGION = "us-east-1"
NAME = "lab-web"
SCRIPT = b"#!/bin/sh\nexec /usr/local/lib/ec2-fleet/ec2-fleet-boot --app orders-api\n"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto with the lab's patches (undone after the test): a VPC with a subnet in two zones, a target group
    with a 1 s deregistration delay, an instance profile and a launch template (IMDSv2, the profile, user data)."""
    for cls, name, value in [*autoscaling.patches(), *moto_lab.DRAIN_PATCHES]:
        monkeypatch.setattr(cls, name, value, raising=False)
    with mock_aws():
        c = {s: boto3.client(s, region_name=REGION) for s in ("ec2", "autoscaling", "elbv2", "iam")}
        ec2 = c["ec2"]
        c["subnets"], c["tg"] = network(ec2, c["elbv2"], NAME, "10.9")
        c["profile"] = c["iam"].create_instance_profile(InstanceProfileName=NAME)["InstanceProfile"]["Arn"]
        ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        c["template"] = ec2.create_launch_template(LaunchTemplateName=NAME, LaunchTemplateData={
            "ImageId": ami, "InstanceType": "t3.small", "UserData": base64.b64encode(SCRIPT).decode(),
            "IamInstanceProfile": {"Arn": c["profile"]},
            "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
        })["LaunchTemplate"]["LaunchTemplateId"]  # fmt: skip
        c["pass"] = autoscaling.AutoScaling(REGION).step
        yield c
        moto_lab.BOOK.draining.clear()


def make_group(aws: dict[str, Any], desired: int, *hooks: tuple[str, str, int, str], grace: int = 0) -> None:
    aws["autoscaling"].create_auto_scaling_group(
        AutoScalingGroupName=NAME, MinSize=0, MaxSize=5, DesiredCapacity=0, VPCZoneIdentifier=",".join(aws["subnets"]),
        TargetGroupARNs=[aws["tg"]], HealthCheckType="ELB", HealthCheckGracePeriod=grace,
        LaunchTemplate={"LaunchTemplateId": aws["template"], "Version": "$Latest"},
        Tags=[{"Key": "Project", "Value": "ec2-fleet", "PropagateAtLaunch": True}],
    )  # fmt: skip
    for name, transition, timeout, default in hooks:
        aws["autoscaling"].put_lifecycle_hook(AutoScalingGroupName=NAME, LifecycleHookName=name,
                                              LifecycleTransition=f"autoscaling:EC2_INSTANCE_{transition}",
                                              HeartbeatTimeout=timeout, DefaultResult=default)  # fmt: skip
    aws["autoscaling"].set_desired_capacity(AutoScalingGroupName=NAME, DesiredCapacity=desired)


def members(aws: dict[str, Any]) -> dict[str, str]:
    """Instance id -> lifecycle state."""
    group = aws["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[NAME])["AutoScalingGroups"][0]
    return {i["InstanceId"]: i["LifecycleState"] for i in group["Instances"]}


def targets(aws: dict[str, Any]) -> dict[str, str]:
    """Target id -> its state in the target group."""
    found = aws["elbv2"].describe_target_health(TargetGroupArn=aws["tg"])["TargetHealthDescriptions"]
    return {t["Target"]["Id"]: t["TargetHealth"]["State"] for t in found}


def ec2_state(aws: dict[str, Any], instance_id: str) -> str:
    return aws["ec2"].describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


def until(aws: dict[str, Any], done: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"not within {seconds} s: {members(aws)} {targets(aws)}"
        aws["pass"]()
        time.sleep(0.2)


def test_an_instance_gets_the_whole_template_in_the_zone_with_fewest_and_targets_only_once_in_service(aws):
    make_group(aws, 2)
    launched = members(aws)
    assert sorted(launched.values()) == ["Pending", "Pending"] and targets(aws) == {}
    reservations = aws["ec2"].describe_instances(InstanceIds=list(launched))["Reservations"]
    instances = [i for r in reservations for i in r["Instances"]]
    assert sorted(i["SubnetId"] for i in instances) == sorted(aws["subnets"])  # one per zone
    for i in instances:
        assert i["IamInstanceProfile"]["Arn"] == aws["profile"]
        assert i["MetadataOptions"]["HttpTokens"] == "required"
        assert i["InstanceType"] == "t3.small"
        assert {"Key": "Project", "Value": "ec2-fleet"} in i["Tags"]
        data = aws["ec2"].describe_instance_attribute(InstanceId=i["InstanceId"], Attribute="userData")
        assert base64.b64decode(data["UserData"]["Value"]) == SCRIPT
    aws["pass"]()
    assert set(members(aws).values()) == {"InService"}
    assert set(targets(aws)) == set(launched)


def test_a_launch_hook_holds_the_instance_out_of_service_until_completed_abandoned_or_timed_out(aws):
    make_group(aws, 1, ("launch", "LAUNCHING", 30, "ABANDON"))
    (first,) = members(aws)
    aws["pass"]()
    assert members(aws) == {first: "Pending:Wait"} and targets(aws) == {}
    aws["autoscaling"].complete_lifecycle_action(AutoScalingGroupName=NAME, LifecycleHookName="launch",
                                                 LifecycleActionResult="CONTINUE", InstanceId=first)  # fmt: skip
    aws["pass"]()
    assert members(aws) == {first: "InService"} and first in targets(aws)
    with pytest.raises(ClientError, match="No active Lifecycle Action found"):  # completed already
        aws["autoscaling"].complete_lifecycle_action(AutoScalingGroupName=NAME, LifecycleHookName="launch",
                                                     LifecycleActionResult="CONTINUE", InstanceId=first)  # fmt: skip
    # ABANDON: terminated, and another launched in its place.
    aws["autoscaling"].set_desired_capacity(AutoScalingGroupName=NAME, DesiredCapacity=2)
    (second,) = set(members(aws)) - {first}
    aws["autoscaling"].complete_lifecycle_action(AutoScalingGroupName=NAME, LifecycleHookName="launch",
                                                 LifecycleActionResult="ABANDON", InstanceId=second)  # fmt: skip
    until(aws, lambda: ec2_state(aws, second) == "terminated")
    assert second not in members(aws) and second not in targets(aws)
    (third,) = set(members(aws)) - {first}
    assert members(aws)[third] == "Pending:Wait"
    # No answer: the hook's default result when its timeout ends (ABANDON here); a heartbeat restarts the timeout.
    aws["autoscaling"].put_lifecycle_hook(AutoScalingGroupName=NAME, LifecycleHookName="launch",
                                          LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
                                          HeartbeatTimeout=30, DefaultResult="ABANDON")  # fmt: skip
    state = next(s for s in moto_lab.backend("autoscaling", REGION).autoscaling_groups[NAME].instance_states
                 if s.instance.id == third)  # fmt: skip
    wait = state.lab["wait"]
    wait.deadlines["launch"] = time.monotonic() + 1
    aws["autoscaling"].record_lifecycle_action_heartbeat(AutoScalingGroupName=NAME, LifecycleHookName="launch",
                                                         LifecycleActionToken=wait.token)  # fmt: skip
    time.sleep(1.2)
    aws["pass"]()
    assert members(aws)[third] == "Pending:Wait"  # the heartbeat gave it another 30 s
    wait.deadlines["launch"] = time.monotonic()
    until(aws, lambda: ec2_state(aws, third) == "terminated")


def test_scale_in_drains_the_instance_before_terminating_it_and_waits_on_a_terminate_hook(aws):
    make_group(aws, 2, ("drain", "TERMINATING", 30, "CONTINUE"))
    aws["pass"]()
    both = members(aws)
    assert set(both.values()) == {"InService"} and set(targets(aws)) == set(both)
    aws["autoscaling"].set_desired_capacity(AutoScalingGroupName=NAME, DesiredCapacity=1)
    leaving = next(i for i, s in members(aws).items() if s == "Terminating")
    (staying,) = set(both) - {leaving}
    assert targets(aws)[leaving] == "draining" and ec2_state(aws, leaving) == "running"
    until(aws, lambda: members(aws).get(leaving) == "Terminating:Wait")  # after the 1 s deregistration delay
    assert leaving not in targets(aws) and ec2_state(aws, leaving) == "running"
    aws["autoscaling"].complete_lifecycle_action(AutoScalingGroupName=NAME, LifecycleHookName="drain",
                                                 LifecycleActionResult="CONTINUE", InstanceId=leaving)  # fmt: skip
    aws["pass"]()
    assert ec2_state(aws, leaving) == "terminated" and members(aws) == {staying: "InService"}
    # TerminateInstanceInAutoScalingGroup without decrement: drained, terminated, replaced.
    aws["autoscaling"].delete_lifecycle_hook(AutoScalingGroupName=NAME, LifecycleHookName="drain")
    aws["autoscaling"].terminate_instance_in_auto_scaling_group(InstanceId=staying,
                                                                ShouldDecrementDesiredCapacity=False)  # fmt: skip
    assert targets(aws)[staying] == "draining"
    until(aws, lambda: ec2_state(aws, staying) == "terminated")
    assert list(members(aws).values()) == ["InService"]


def test_an_instance_unhealthy_in_the_target_group_after_the_grace_period_is_replaced(aws):
    make_group(aws, 1, grace=1)
    aws["pass"]()
    (sick,) = members(aws)
    port = 8000
    with moto_lab.BOOK.lock:
        moto_lab.BOOK.health[(aws["tg"], sick, port)] = moto_lab.Health("unhealthy", "Target.FailedHealthChecks")
    aws["pass"]()
    assert members(aws) == {sick: "InService"}  # within the grace period
    time.sleep(1.1)
    aws["pass"]()
    assert members(aws)[sick] == "Terminating"
    group = aws["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[NAME])["AutoScalingGroups"][0]
    assert {i["InstanceId"]: i["HealthStatus"] for i in group["Instances"]}[sick] == "Unhealthy"
    until(aws, lambda: ec2_state(aws, sick) == "terminated")
    assert list(members(aws).values()) == ["InService"]
    with moto_lab.BOOK.lock:
        moto_lab.BOOK.health.clear()


def test_deleting_the_group_terminates_its_instances(aws):
    make_group(aws, 2)
    ids = list(members(aws))
    aws["autoscaling"].delete_auto_scaling_group(AutoScalingGroupName=NAME, ForceDelete=True)
    assert {ec2_state(aws, i) for i in ids} == {"terminated"}
