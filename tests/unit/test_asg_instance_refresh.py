"""The module ec2_fleet.fleet.asg_instance_refresh run by ansible against moto with the lab's Auto Scaling (devkit
lab/autoscaling.py and refresh.py, moved on by a thread as the lab's loop does; every registered target healthy
but those of a broken version): it brings the group to a version and reports the refresh's timeline; a version
whose instances never become healthy rolls back and fails the task saying so; a refresh in progress is named,
not interrupted; check mode starts nothing; bad preferences are refused before any call."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator

import boto3
import pytest
from lab_asg_support import network
from moto.ec2.responses.launch_templates import LaunchTemplates

from ec2_fleet_dev.lab import autoscaling, moto_lab
from ec2_fleet_dev.plays import ROOT, moto_server

CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
NAME = "refresh-web"
BROKEN = "3"  # the launch template version whose instances fail the load balancer's checks


@pytest.fixture(scope="module")
def aws() -> Iterator[dict]:
    patch = pytest.MonkeyPatch()
    for cls, name, value in [*autoscaling.patches(), *moto_lab.DRAIN_PATCHES]:
        patch.setattr(cls, name, value, raising=False)
    patch.setattr(LaunchTemplates, "create_launch_template_version", moto_lab._create_launch_template_version)
    stop = threading.Event()
    try:
        with moto_server() as url:
            ec2, asg, elbv2 = (boto3.client(s, endpoint_url=url, **CREDS) for s in ("ec2", "autoscaling", "elbv2"))
            subnets, tg = network(ec2, elbv2, NAME, "10.0")
            template = ec2.create_launch_template(LaunchTemplateName=NAME, LaunchTemplateData={
                "ImageId": "ami-12345678", "InstanceType": "t3.small"})["LaunchTemplate"]["LaunchTemplateId"]
            for _ in range(2):  # versions 2 and 3 (BROKEN)
                ec2.create_launch_template_version(LaunchTemplateId=template, SourceVersion="1",
                                                   LaunchTemplateData={"ImageId": "ami-12345678"})
            asg.create_auto_scaling_group(AutoScalingGroupName=NAME, MinSize=1, MaxSize=4, DesiredCapacity=2,
                                          VPCZoneIdentifier=",".join(subnets), TargetGroupARNs=[tg],
                                          HealthCheckType="ELB", HealthCheckGracePeriod=1,
                                          LaunchTemplate={"LaunchTemplateId": template, "Version": "1"})  # fmt: skip
            thread = threading.Thread(target=lab_loop, args=(stop, tg), daemon=True)
            thread.start()
            yield {"url": url, "asg": asg, "ec2": ec2, "template": template}
            stop.set()
            thread.join(timeout=5)
    finally:
        patch.undo()
        moto_lab.BOOK.draining.clear()
        moto_lab.BOOK.health.clear()


def lab_loop(stop: threading.Event, tg: str) -> None:
    """The lab's Auto Scaling pass and the load balancer's checks, every 0.2 s."""
    lifecycle = autoscaling.AutoScaling("us-east-1")
    while not stop.wait(0.2):
        lifecycle.step()
        group = moto_lab.backend("autoscaling", "us-east-1").autoscaling_groups.get(NAME)
        states = group.instance_states if group else []
        versions = {s.instance.id: str(autoscaling.lab_of(s)["version"]) for s in states}
        targets = moto_lab.backend("elbv2", "us-east-1").target_groups[tg].targets
        with moto_lab.BOOK.lock:
            for instance_id, target in targets.items():
                state = "unhealthy" if versions.get(instance_id) == BROKEN else "healthy"
                moto_lab.BOOK.health[(tg, instance_id, int(target["Port"]))] = moto_lab.Health(state)


def module(aws: dict, *flags: str, _module: str = "asg_instance_refresh", **args: object) -> dict:
    params = {"name": NAME, "endpoint_url": aws["url"], "region": "us-east-1", "access_key": "testing",
              "secret_key": "testing", **args}  # fmt: skip
    if _module == "asg_instance_refresh":
        params = {"poll_interval": 0.5, "wait_timeout": 120, **params}
    proc = subprocess.run(
        ["ansible", "localhost", "-m", f"ec2_fleet.fleet.{_module}", "-a", json.dumps(params), *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
        env={**os.environ, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
             "ANSIBLE_NOCOLOR": "1"},
    )  # fmt: skip
    report, _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{"):])
    return report["plays"][0]["tasks"][0]["hosts"]["localhost"]


def versions(aws: dict) -> list[str]:
    group = aws["asg"].describe_auto_scaling_groups(AutoScalingGroupNames=[NAME])["AutoScalingGroups"][0]
    return sorted(i["LaunchTemplate"]["Version"] for i in group["Instances"] if i["LifecycleState"] == "InService")


def test_a_refresh_brings_every_instance_to_the_version_and_check_mode_starts_nothing(aws: dict) -> None:
    checked = module(aws, "--check", launch_template_version="2", min_healthy_percentage=50,
                     max_healthy_percentage=100)  # fmt: skip
    assert checked["changed"] is True and checked["instance_refresh_id"] == ""
    assert aws["asg"].describe_instance_refreshes(AutoScalingGroupName=NAME)["InstanceRefreshes"] == []
    done = module(aws, launch_template_version="2", min_healthy_percentage=50, max_healthy_percentage=100)
    assert done.get("failed") is not True, done.get("msg")
    assert (done["changed"], done["status"], done["percentage_complete"]) == (True, "Successful", 100)
    assert [t["status"] for t in done["timeline"]][-1] == "Successful" and len(done["timeline"]) >= 2
    assert versions(aws) == ["2", "2"]


def test_a_version_that_never_becomes_healthy_is_rolled_back_and_the_task_fails_saying_so(aws: dict) -> None:
    before = versions(aws)
    failed = module(aws, launch_template_version=BROKEN)  # min 100, max 200, auto rollback: the defaults
    assert failed["failed"] is True and failed["status"] == "RollbackSuccessful", failed
    assert "failed to become ready" in failed["msg"] and "runs the version it ran before" in failed["msg"]
    assert failed["timeline"][0]["status"] in ("Pending", "InProgress")  # it started, then failed and rolled back
    assert versions(aws) == before


def test_a_refresh_in_progress_is_named_not_interrupted_and_can_be_cancelled(aws: dict) -> None:
    started = module(aws, launch_template_version="1", wait=False, checkpoint_percentages=[50, 100],
                     checkpoint_delay=600, skip_matching=False)  # fmt: skip
    assert started["changed"] is True and started["instance_refresh_id"], started
    # verify.yml's view of the group (asg_fleet_info) names the refresh going on. The refresh launches and
    # replaces instances meanwhile: the module sees those of the group before its run, after it, or both.
    ids_before = {i["InstanceId"] for i in aws["asg"].describe_auto_scaling_groups(
        AutoScalingGroupNames=[NAME])["AutoScalingGroups"][0]["Instances"]}  # fmt: skip
    seen = module(aws, _module="asg_fleet_info")
    assert seen["changed"] is False and seen["exists"] is True, seen
    assert seen["refresh"]["instance_refresh_id"] == started["instance_refresh_id"], seen["refresh"]
    assert seen["refresh"]["status"] in ("Pending", "InProgress") and seen["refresh"]["launch_template_version"] == "1"
    group = aws["asg"].describe_auto_scaling_groups(AutoScalingGroupNames=[NAME])["AutoScalingGroups"][0]
    assert seen["group"]["desired_capacity"] == group["DesiredCapacity"] and seen["group"]["max_size"] == 4
    ids_after = {i["InstanceId"] for i in group["Instances"]}
    ids = [i["instance_id"] for i in seen["instances"]]
    assert ids == sorted(ids) and ids_before & ids_after <= set(ids) <= ids_before | ids_after, (ids_before, ids)
    for instance in seen["instances"]:
        assert instance["launch_template_version"] in ("1", "2") and instance["image_id"] == "ami-12345678", instance
        assert set(instance["target_health"]) == set(group["TargetGroupARNs"]), instance
    refused = module(aws, launch_template_version="1")
    assert refused["failed"] is True and started["instance_refresh_id"] in refused["msg"], refused
    cancelled = module(aws, state="cancelled")
    assert (cancelled["changed"], cancelled["status"]) == (True, "Cancelled"), cancelled
    assert module(aws, state="cancelled")["changed"] is False
    assert module(aws, _module="asg_fleet_info")["refresh"] == {}
    missing = module(aws, _module="asg_fleet_info", name="no-such-group")
    assert (missing["exists"], missing["instances"], missing["group"]) == (False, [], {}), missing


@pytest.mark.parametrize(("args", "named"), [
    ({"min_healthy_percentage": 100, "max_healthy_percentage": 100}, "needs max_healthy_percentage above 100"),
    ({"max_healthy_percentage": 250}, "max_healthy_percentage must be 100-200 (got 250)"),
    ({"min_healthy_percentage": 50, "max_healthy_percentage": 200}, "at most 100 more than min_healthy_percentage"),
    ({"checkpoint_percentages": [50, 20]}, "checkpoint_percentages must rise, each 1-100 (got [50, 20])"),
])  # fmt: skip
def test_bad_preferences_are_refused_before_any_call(aws: dict, args: dict, named: str) -> None:
    refused = module(aws, launch_template_version="2", **args)
    assert refused["failed"] is True and named in refused["msg"], refused


def test_an_image_gets_a_version_made_from_the_one_the_group_runs_and_a_second_run_changes_nothing(aws: dict) -> None:
    """What rolling_update.yml in asg mode does: the release's image in a new version of the group's template,
    every other parameter the version the group runs has (SourceVersion), the default version left alone."""
    image = "ami-0123456789abcdef0"
    ec2 = aws["ec2"]
    before = ec2.describe_launch_templates(LaunchTemplateIds=[aws["template"]])["LaunchTemplates"][0]
    checked = module(aws, "--check", image_id=image, min_healthy_percentage=50, max_healthy_percentage=100)
    assert (checked["changed"], checked["version_made"], checked["launch_template_version"]) == (True, True, "(new)")
    assert ec2.describe_launch_templates(LaunchTemplateIds=[aws["template"]])["LaunchTemplates"][0] == before
    done = module(aws, image_id=image, version_description="2.0.0", min_healthy_percentage=50,
                  max_healthy_percentage=100)  # fmt: skip
    assert done.get("failed") is not True, done.get("msg")
    made = done["launch_template_version"]
    assert (done["status"], done["version_made"], int(made)) == ("Successful", True, before["LatestVersionNumber"] + 1)
    data = ec2.describe_launch_template_versions(LaunchTemplateId=aws["template"], Versions=[made])[
        "LaunchTemplateVersions"][0]  # fmt: skip
    assert (data["LaunchTemplateData"]["ImageId"], data["LaunchTemplateData"]["InstanceType"]) == (image, "t3.small")
    assert data["VersionDescription"] == "2.0.0"
    assert versions(aws) == [made, made]
    after = ec2.describe_launch_templates(LaunchTemplateIds=[aws["template"]])["LaunchTemplates"][0]
    assert after["DefaultVersionNumber"] == before["DefaultVersionNumber"]
    again = module(aws, image_id=image)
    assert (again["changed"], again["version_made"], again["instance_refresh_id"]) == (False, False, ""), again


def test_an_alarm_in_alarm_rolls_the_refresh_back_and_the_task_fails_naming_it(aws: dict) -> None:
    """rolling_update.yml in asg mode hands the environment's deploy alarms to the refresh (AlarmSpecification)."""
    cloudwatch = boto3.client("cloudwatch", endpoint_url=aws["url"], **CREDS)
    cloudwatch.put_metric_alarm(AlarmName="refresh-5xx", MetricName="HTTPCode_Target_5XX_Count", Statistic="Sum",
                                Namespace="AWS/ApplicationELB", Period=10, EvaluationPeriods=1, Threshold=1,
                                ComparisonOperator="GreaterThanThreshold")  # fmt: skip
    cloudwatch.set_alarm_state(AlarmName="refresh-5xx", StateValue="ALARM", StateReason="5xx during the deploy")
    before = versions(aws)
    failed = module(aws, launch_template_version="2", alarms=["refresh-5xx"], bake_time=60)
    assert failed["failed"] is True and failed["status"] == "RollbackSuccessful", failed
    assert "Alarm(s) in ALARM state: refresh-5xx" in failed["msg"] and "runs the version it ran before" in failed["msg"]
    assert versions(aws) == before
    refreshed = aws["asg"].describe_instance_refreshes(AutoScalingGroupName=NAME)["InstanceRefreshes"][0]
    assert refreshed["Preferences"]["AlarmSpecification"]["Alarms"] == ["refresh-5xx"], refreshed["Preferences"]
    assert refreshed["Preferences"]["BakeTime"] == 60
    refused = module(aws, launch_template_version="2", alarms=[f"alarm-{n}" for n in range(11)])
    assert refused["failed"] is True and "alarms takes at most 10 CloudWatch alarms" in refused["msg"], refused
