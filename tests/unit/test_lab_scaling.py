"""The lab's target tracking (devkit lab/scaling.py) on a group made through moto's real autoscaling API
(in-process, with the lab's Auto Scaling patches), its instances' CPU and memory given by a stand-in for their
cgroups and time by a clock the test moves: scale-out after 3 high periods, proportional and within max, not again
while the new instances warm up; scale-in only after 15 low periods of every policy, within min; the metrics
published to CloudWatch as EC2 and the CloudWatch agent name them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ec2_fleet_dev.lab import autoscaling, moto_lab, scaling
from ec2_fleet_dev.lab.config import LabConfig

REGION = "us-east-1"
NAME = "lab-web"
CONFIG = LabConfig(name="unit", scaling_period_seconds=10.0, cores_per_vcpu=0.1, mib_per_gib=256)


class Clock:
    """Time that moves only when the test moves it (a slow pass must not count as a period)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.offset = 0.0

    def __call__(self) -> float:
        return self.start + self.offset


class FakeCgroups:
    """Each instance's CPU (percent of its quota) and memory (percent of its limit), as set by the test."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.load: dict[str, tuple[float, float]] = {}
        self.cpu_seconds: dict[str, tuple[float, float]] = {}  # container -> (at, total)

    def read(self, container: str) -> tuple[float, int] | None:
        cpu, memory = self.load.get(container.removeprefix(f"{CONFIG.name}-"), (0.0, 0.0))
        cores, mib = scaling.resources(CONFIG, "t3.small")
        now = self.clock()
        at, total = self.cpu_seconds.get(container, (now, 0.0))
        total += (now - at) * cores * cpu / 100
        self.cpu_seconds[container] = (now, total)
        return total, int(mib * 1024 * 1024 * memory / 100)


@pytest.fixture
def lab(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for cls, name, value in [*autoscaling.patches(), *moto_lab.DRAIN_PATCHES]:
        monkeypatch.setattr(cls, name, value, raising=False)
    clock = Clock()
    monkeypatch.setattr(scaling, "clock", clock)
    monkeypatch.setattr(autoscaling, "clock", clock)
    with mock_aws():
        ec2, asg = boto3.client("ec2", region_name=REGION), boto3.client("autoscaling", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{n}.0/24", AvailabilityZone=f"{REGION}{z}")[
            "Subnet"]["SubnetId"] for n, z in enumerate("ab")]  # fmt: skip
        ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        ec2.create_launch_template(LaunchTemplateName=NAME, LaunchTemplateData={"ImageId": ami,
                                                                                "InstanceType": "t3.small"})
        asg.create_auto_scaling_group(AutoScalingGroupName=NAME, MinSize=1, MaxSize=5, DesiredCapacity=1,
                                      VPCZoneIdentifier=",".join(subnets),
                                      LaunchTemplate={"LaunchTemplateName": NAME, "Version": "$Latest"})  # fmt: skip
        for policy, spec in (
            ("cpu", {"PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"},
                     "TargetValue": 70.0}),
            ("memory", {"CustomizedMetricSpecification": {
                "MetricName": "mem_used_percent", "Namespace": "CWAgent", "Statistic": "Average",
                "Dimensions": [{"Name": "AutoScalingGroupName", "Value": NAME}]}, "TargetValue": 80.0}),
        ):  # fmt: skip
            asg.put_scaling_policy(AutoScalingGroupName=NAME, PolicyName=policy, PolicyType="TargetTrackingScaling",
                                   EstimatedInstanceWarmup=60, TargetTrackingConfiguration=spec)  # fmt: skip
        cgroups = FakeCgroups(clock)
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        tracker = scaling.Scaling(CONFIG, cloudwatch, cgroups)  # type: ignore[arg-type]
        lifecycle = autoscaling.AutoScaling(REGION)
        lifecycle.step()  # Pending -> InService
        yield {"asg": asg, "cloudwatch": cloudwatch, "clock": clock, "cgroups": cgroups, "tracker": tracker,
               "lifecycle": lifecycle}  # fmt: skip


def members(lab: dict[str, Any]) -> list[str]:
    group = lab["asg"].describe_auto_scaling_groups(AutoScalingGroupNames=[NAME])["AutoScalingGroups"][0]
    return [i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] in autoscaling.LIVE]


def desired(lab: dict[str, Any]) -> int:
    return lab["asg"].describe_auto_scaling_groups(AutoScalingGroupNames=[NAME])["AutoScalingGroups"][0][
        "DesiredCapacity"]  # fmt: skip


def run(lab: dict[str, Any], seconds: float, cpu: float, memory: float = 30.0, until: Any = None,
        only: dict[str, tuple[float, float]] | None = None) -> float:
    """Up to `seconds` of the lab's passes (every 5 s of the clock) with every live instance at cpu and memory
    percent (but those in `only`, at theirs), or until `until()`: the seconds it ran."""
    for n in range(1, int(seconds // 5) + 1):
        for instance in members(lab):
            lab["cgroups"].load[instance] = (only or {}).get(instance, (cpu, memory))
        lab["clock"].offset += 5
        lab["lifecycle"].step()
        lab["tracker"].step()
        if until is not None and until():
            return n * 5
    return seconds


def test_cpu_above_the_target_scales_out_proportionally_once_and_not_again_while_warming_up(lab):
    run(lab, 70, cpu=20)  # past the first instance's 60 s warmup, well below the target
    assert desired(lab) == 1
    # Three 10 s periods above the target (the third ends up to a period after the load began, and is read on the
    # next pass): ceil(1 x 99 / 70) = 2.
    took = run(lab, 60, cpu=99, until=lambda: desired(lab) > 1)
    assert desired(lab) == 2 and len(members(lab)) == 2
    assert 30 <= took <= 45, took
    assert "cpu: " in lab["tracker"].decisions[-1]["cause"]
    run(lab, 40, cpu=99)  # the new one warms up (60 s): counted in the capacity, not in the average, no new scale-out
    assert desired(lab) == 2
    run(lab, 60, cpu=99)  # both warm and high: ceil(2 x 99 / 70) = 3
    assert desired(lab) == 3


def test_memory_above_its_target_scales_out_within_max(lab):
    lab["asg"].update_auto_scaling_group(AutoScalingGroupName=NAME, MaxSize=2)
    run(lab, 70, cpu=10, memory=40)
    run(lab, 60, cpu=10, memory=100, until=lambda: desired(lab) > 1)  # ceil(1 x 100 / 80) = 2; cpu stays low
    assert desired(lab) == 2
    run(lab, 120, cpu=10, memory=100)  # would be 3: max is 2
    assert desired(lab) == 2


def test_a_new_instance_counts_with_its_own_use_once_warm_not_with_the_last_average(lab):
    """One instance holds 90 % of its memory, the scale-out's new one 20 %: once the new one is warm the average is
    of both (55 %), and no second scale-out follows (an average of the first alone, times two, would ask for 3)."""
    (first,) = members(lab)
    run(lab, 70, cpu=10, memory=20)
    run(lab, 60, cpu=10, memory=20, only={first: (10, 90)}, until=lambda: desired(lab) > 1)
    assert desired(lab) == 2
    run(lab, 180, cpu=10, memory=20, only={first: (10, 90)})
    assert desired(lab) == 2, lab["tracker"].decisions


def test_scale_in_needs_every_policy_low_for_15_periods_and_stops_at_min(lab):
    lab["asg"].set_desired_capacity(AutoScalingGroupName=NAME, DesiredCapacity=3)
    run(lab, 70, cpu=66, memory=30)  # warm; cpu 66 is not below 90 % of 70 (63): no scale-in
    run(lab, 160, cpu=66, memory=30)
    assert desired(lab) == 3
    # 15 low periods of both (150 s, read up to a period later): ceil(3 x 30 / 80) = 2 (memory's, the larger).
    took = run(lab, 200, cpu=10, memory=30, until=lambda: desired(lab) < 3)
    assert desired(lab) == 2, lab["tracker"].decisions
    assert 150 <= took <= 165, took
    assert "every policy below 90 %" in lab["tracker"].decisions[-1]["cause"]
    run(lab, 400, cpu=1, memory=1)
    assert desired(lab) == 1  # min


def test_the_metrics_reach_cloudwatch_as_ec2_and_the_agent_name_them(lab):
    run(lab, 20, cpu=50, memory=40)
    (instance,) = members(lab)
    cw = lab["cloudwatch"]
    listed = {(m["Namespace"], m["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"])))
              for m in cw.list_metrics()["Metrics"]}  # fmt: skip
    assert ("AWS/EC2", "CPUUtilization", (("InstanceId", instance),)) in listed
    assert ("AWS/EC2", "CPUUtilization", (("AutoScalingGroupName", NAME),)) in listed
    assert ("CWAgent", "mem_used_percent", (("AutoScalingGroupName", NAME),)) in listed
    data = cw.get_metric_data(MetricDataQueries=[{"Id": "cpu", "MetricStat": {"Metric": {
        "Namespace": "AWS/EC2", "MetricName": "CPUUtilization",
        "Dimensions": [{"Name": "AutoScalingGroupName", "Value": NAME}]}, "Period": 60, "Stat": "Average"}}],
        StartTime=time.time() - 600, EndTime=time.time() + 60)["MetricDataResults"][0]["Values"]  # fmt: skip
    assert data and all(abs(v - 50) < 1 for v in data), data
