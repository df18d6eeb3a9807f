"""The lab's instance refresh (devkit lab/refresh.py) through moto's real autoscaling API in-process, the lab's
pass run by hand and the load balancer's checks stood in for (every registered target healthy unless the test
says otherwise): batches within the healthy percentages, launch before terminate, skip matching, checkpoints,
cancel, and the automatic rollback of a version whose instances never become ready."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from lab_asg_support import network
from moto import mock_aws

from ec2_fleet_dev.lab import autoscaling, moto_lab

REGION = "us-east-1"
NAME = "lab-web"


@pytest.fixture
def lab(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for cls, name, value in [*autoscaling.patches(), *moto_lab.DRAIN_PATCHES]:
        monkeypatch.setattr(cls, name, value, raising=False)
    with mock_aws():
        ec2, asg, elbv2 = (boto3.client(s, region_name=REGION) for s in ("ec2", "autoscaling", "elbv2"))
        subnets, tg = network(ec2, elbv2, NAME, "10.9")
        ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        template = ec2.create_launch_template(LaunchTemplateName=NAME, LaunchTemplateData={
            "ImageId": ami, "InstanceType": "t3.small"})["LaunchTemplate"]["LaunchTemplateId"]  # fmt: skip
        ec2.create_launch_template_version(LaunchTemplateId=template, SourceVersion="1",
                                           LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.micro"})
        asg.create_auto_scaling_group(AutoScalingGroupName=NAME, MinSize=1, MaxSize=4, DesiredCapacity=2,
                                      VPCZoneIdentifier=",".join(subnets), TargetGroupARNs=[tg],
                                      HealthCheckType="ELB", HealthCheckGracePeriod=1,
                                      LaunchTemplate={"LaunchTemplateId": template, "Version": "1"})  # fmt: skip
        refreshes = __import__("ec2_fleet_dev.lab.refresh", fromlist=["REFRESHES"]).REFRESHES
        refreshes.clear()
        lab = {"asg": asg, "tg": tg, "template": template, "pass": autoscaling.AutoScaling(REGION).step,
               "unhealthy": set()}  # fmt: skip
        settle(lab, lambda: len(versions(lab)) == 2)
        yield lab
        moto_lab.BOOK.draining.clear()
        moto_lab.BOOK.health.clear()
        refreshes.clear()


def one_pass(lab: dict[str, Any]) -> None:
    """The lab's pass, then the load balancer's checks: registered targets healthy (but the test's unhealthy)."""
    lab["pass"]()
    backend = moto_lab.backend("elbv2", REGION)
    with moto_lab.BOOK.lock:
        for instance_id, target in backend.target_groups[lab["tg"]].targets.items():
            state = "unhealthy" if instance_id in lab["unhealthy"] else "healthy"
            moto_lab.BOOK.health[(lab["tg"], instance_id, int(target["Port"]))] = moto_lab.Health(state)


def settle(lab: dict[str, Any], done: Callable[[], Any], seconds: float = 30) -> list[dict]:
    """Passes until done(); the refresh's states seen on the way."""
    seen, deadline = [], time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"not within {seconds} s: {versions(lab)} {refreshes(lab)[:1]}"
        one_pass(lab)
        seen.append({"live": dict(versions(lab)), "refresh": (refreshes(lab) or [{}])[0]})
        time.sleep(0.1)
    return seen


def versions(lab: dict[str, Any]) -> dict[str, str]:
    """Live instance -> its launch template version."""
    group = lab["asg"].describe_auto_scaling_groups(AutoScalingGroupNames=[NAME])["AutoScalingGroups"][0]
    return {i["InstanceId"]: i["LaunchTemplate"]["Version"] for i in group["Instances"]
            if i["LifecycleState"] in autoscaling.LIVE}  # fmt: skip


def refreshes(lab: dict[str, Any]) -> list[dict]:
    return lab["asg"].describe_instance_refreshes(AutoScalingGroupName=NAME)["InstanceRefreshes"]


def status(lab: dict[str, Any]) -> str:
    return refreshes(lab)[0]["Status"]


def start(lab: dict[str, Any], **preferences: Any) -> str:
    return lab["asg"].start_instance_refresh(
        AutoScalingGroupName=NAME, DesiredConfiguration={"LaunchTemplate": {"LaunchTemplateId": lab["template"],
                                                                            "Version": "2"}},
        Preferences={"InstanceWarmup": 0, **preferences})["InstanceRefreshId"]  # fmt: skip


def group_version(lab: dict[str, Any]) -> str:
    group = lab["asg"].describe_auto_scaling_groups(AutoScalingGroupNames=[NAME])["AutoScalingGroups"][0]
    return group["LaunchTemplate"]["Version"]


def test_a_refresh_replaces_one_at_a_time_keeping_the_min_healthy_and_ends_on_the_new_version(lab):
    old = set(versions(lab))
    start(lab, MinHealthyPercentage=50)
    seen = settle(lab, lambda: status(lab) == "Successful")
    assert set(versions(lab).values()) == {"2"} and not old & set(versions(lab))
    assert group_version(lab) == "2"
    assert refreshes(lab)[0]["PercentageComplete"] == 100 and refreshes(lab)[0]["InstancesToUpdate"] == 0
    # Never fewer than one live instance of the desired two (50 %), never more than two (max 100 %).
    assert all(1 <= len(s["live"]) <= 2 for s in seen), [s["live"] for s in seen]
    assert any(s["refresh"].get("Status") == "InProgress" and 0 < s["refresh"]["PercentageComplete"] < 100
               for s in seen)  # fmt: skip


def test_max_healthy_above_100_launches_the_new_instances_before_the_old_ones_leave(lab):
    lab["asg"].set_desired_capacity(AutoScalingGroupName=NAME, DesiredCapacity=1)
    settle(lab, lambda: len(versions(lab)) == 1)
    (old,) = versions(lab)
    start(lab, MinHealthyPercentage=100, MaxHealthyPercentage=200)
    seen = settle(lab, lambda: status(lab) == "Successful")
    # The old one stayed until its replacement was ready: never fewer than one live, once two.
    assert all(len(s["live"]) >= 1 for s in seen) and max(len(s["live"]) for s in seen) == 2
    first_without_old = next(i for i, s in enumerate(seen) if old not in s["live"])
    assert all(old in s["live"] for s in seen[:first_without_old])
    assert list(versions(lab).values()) == ["2"]


def test_skip_matching_leaves_instances_already_on_the_version_and_a_checkpoint_waits(lab):
    start(lab, SkipMatching=True, MinHealthyPercentage=50, CheckpointPercentages=[50], CheckpointDelay=2)
    settle(lab, lambda: "Checkpoint 50%" in refreshes(lab)[0]["StatusReason"])
    assert status(lab) == "InProgress" and sorted(versions(lab).values()) == ["1", "2"]
    held = time.monotonic()
    settle(lab, lambda: status(lab) == "Successful")
    assert time.monotonic() - held >= 1.5  # the checkpoint's delay
    replaced = set(versions(lab))
    # A second refresh to the same version with skip matching has nothing to do.
    start(lab, SkipMatching=True)
    settle(lab, lambda: status(lab) == "Successful")
    assert set(versions(lab)) == replaced and refreshes(lab)[0]["PercentageComplete"] == 100


def test_new_instances_that_never_become_healthy_fail_the_refresh_and_it_rolls_back(lab):
    old = set(versions(lab))
    lab["unhealthy"] = UnhealthyNew(old)
    start(lab, MinHealthyPercentage=100, MaxHealthyPercentage=150, AutoRollback=True)
    seen = settle(lab, lambda: status(lab) == "RollbackSuccessful", 60)
    assert any(s["refresh"].get("Status") == "RollbackInProgress" for s in seen)
    assert "failed to become ready" in refreshes(lab)[0]["StatusReason"]
    assert set(versions(lab)) == old and group_version(lab) == "1"  # the old ones never left
    assert all(old <= set(s["live"]) for s in seen)


def test_without_auto_rollback_it_fails_and_a_cancel_stops_a_refresh(lab):
    old = set(versions(lab))
    lab["unhealthy"] = UnhealthyNew(old)
    start(lab, MinHealthyPercentage=100, MaxHealthyPercentage=150)
    settle(lab, lambda: status(lab) == "Failed", 60)
    lab["unhealthy"] = set()
    lab["asg"].update_auto_scaling_group(AutoScalingGroupName=NAME,
                                         LaunchTemplate={"LaunchTemplateId": lab["template"], "Version": "1"})
    settle(lab, lambda: set(versions(lab).values()) == {"1"} and len(versions(lab)) == 2)
    lab["asg"].start_instance_refresh(AutoScalingGroupName=NAME, Preferences={"CheckpointPercentages": [100]})
    with pytest.raises(lab["asg"].exceptions.InstanceRefreshInProgressFault):
        lab["asg"].start_instance_refresh(AutoScalingGroupName=NAME)
    lab["asg"].cancel_instance_refresh(AutoScalingGroupName=NAME)
    settle(lab, lambda: status(lab) == "Cancelled")


class UnhealthyNew(set):
    """Every instance but the given old ones fails the load balancer's checks."""

    def __init__(self, old: set[str]) -> None:
        super().__init__()
        self.old = old

    def __contains__(self, instance_id: object) -> bool:
        return instance_id not in self.old


def alarm(name: str, state: str) -> None:
    """A CloudWatch alarm in moto, in `state` (the lab's alarms.py sets states the same way)."""
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    cloudwatch.put_metric_alarm(AlarmName=name, MetricName="HTTPCode_Target_5XX_Count", Namespace="AWS/ApplicationELB",
                                Statistic="Sum", Period=10, EvaluationPeriods=1, Threshold=1,
                                ComparisonOperator="GreaterThanThreshold")  # fmt: skip
    cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="the test")


def test_an_alarm_in_alarm_during_the_refresh_rolls_it_back_and_bake_time_watches_after_the_last_batch(lab):
    old = set(versions(lab))
    alarm("deploy-5xx", "OK")
    start(lab, MinHealthyPercentage=100, MaxHealthyPercentage=150, AutoRollback=True, BakeTime=3600,
          AlarmSpecification={"Alarms": ["deploy-5xx", "no-such-alarm"]})  # fmt: skip
    # Every instance replaced: the refresh bakes (not Successful yet) with the alarms still watched.
    seen = settle(lab, lambda: status(lab) == "Baking", 60)
    assert set(versions(lab).values()) == {"2"} and not old & set(versions(lab))
    assert all(s["refresh"].get("Status") != "Successful" for s in seen)
    assert refreshes(lab)[0]["StatusReason"] == "Baking for 3600 s"
    alarm("deploy-5xx", "ALARM")
    seen = settle(lab, lambda: status(lab) == "RollbackSuccessful", 60)
    assert any(s["refresh"].get("Status") == "RollbackInProgress" for s in seen)
    assert refreshes(lab)[0]["StatusReason"] == "Alarm(s) in ALARM state: deploy-5xx"
    assert set(versions(lab).values()) == {"1"} and group_version(lab) == "1"


def test_without_auto_rollback_an_alarm_fails_the_refresh_where_it_is_and_a_short_bake_ends_it(lab):
    alarm("deploy-5xx", "ALARM")
    start(lab, MinHealthyPercentage=50, AlarmSpecification={"Alarms": ["deploy-5xx"]})
    settle(lab, lambda: status(lab) == "Failed")
    assert refreshes(lab)[0]["StatusReason"] == "Alarm(s) in ALARM state: deploy-5xx"
    assert set(versions(lab).values()) == {"1"}  # failed before its first batch: nothing replaced
    alarm("deploy-5xx", "OK")
    start(lab, MinHealthyPercentage=50, BakeTime=1, AlarmSpecification={"Alarms": ["deploy-5xx"]})
    seen = settle(lab, lambda: status(lab) == "Successful")
    assert any(s["refresh"].get("Status") == "Baking" for s in seen) and set(versions(lab).values()) == {"2"}
    with pytest.raises(lab["asg"].exceptions.ClientError, match="at most 10 alarms"):
        lab["asg"].start_instance_refresh(AutoScalingGroupName=NAME, Preferences={
            "AlarmSpecification": {"Alarms": [f"a{n}" for n in range(11)]}})  # fmt: skip
