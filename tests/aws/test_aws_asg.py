"""roles/aws_asg against moto: the launch template (the release's image, IMDSv2 required, encrypted gp3, the
instance profile, the boot user data), the group over two zones with the target group, ELB health checks and
their grace period, its lifecycle hooks and target-tracking policies; a second run changes nothing and keeps a
desired capacity the policies set; a new image makes a new template version the group runs; absent removes it all.

moto stores the group and launches its instances, but runs no hook, refresh or policy: the lab does
(docs/auto-scaling.md).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ec2_fleet_dev.moto_aws import CANONICAL, Run

NAME = "ec2-fleet-asgtest-web"
TAGS = {"Project": "ec2-fleet", "Environment": "asgtest"}
USER_DATA = "#!/bin/sh\nexec /usr/local/lib/ec2-fleet/ec2-fleet-boot --app orders-api --ssm-path /ec2-fleet/asgtest\n"
PLAYBOOK = """\
- name: The group
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  module_defaults:
    group/ec2_fleet.fleet.aws:
      region: us-east-1
      endpoint_url: "{{ lookup('ansible.builtin.env', 'AWS_URL') }}"
  roles:
    - role: ec2_fleet.fleet.aws_asg
"""


@pytest.fixture(scope="module")
def place(client: Callable) -> dict:
    """A VPC with private subnets in two zones, a security group, a target group, an instance profile, two images."""
    ec2, elb, iam = client("ec2"), client("elbv2"), client("iam")
    vpc = ec2.create_vpc(CidrBlock="10.78.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.78.{n}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"][
        "SubnetId"] for n, z in ((10, "a"), (11, "b"))]  # fmt: skip
    group = ec2.create_security_group(GroupName=f"{NAME}-hosts", Description="hosts", VpcId=vpc)["GroupId"]
    target_group = elb.create_target_group(Name="ec2-fleet-asgtest-web", Protocol="HTTP", Port=8000, VpcId=vpc,
                                           TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]  # fmt: skip
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    iam.create_role(RoleName=f"{NAME}-host", AssumeRolePolicyDocument=json.dumps(trust))
    iam.create_instance_profile(InstanceProfileName=f"{NAME}-host")
    iam.add_role_to_instance_profile(InstanceProfileName=f"{NAME}-host", RoleName=f"{NAME}-host")
    base = sorted(ec2.describe_images(Owners=[CANONICAL])["Images"], key=lambda i: i["Name"])[-1]["ImageId"]
    builder = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1, SubnetId=subnets[0])["Instances"][0]["InstanceId"]
    images = [ec2.create_image(InstanceId=builder, Name=f"{NAME}-{n}")["ImageId"] for n in ("1.0.0", "2.0.0")]
    ec2.terminate_instances(InstanceIds=[builder])
    return {"vpc": vpc, "subnets": subnets, "group": group, "target_group": target_group, "images": images}


def asg_play(run: Callable[..., Run], tmp_path: Path, place: dict, **inputs: object) -> Run:
    playbook = tmp_path / "asg.yml"
    playbook.write_text(PLAYBOOK)
    variables = {
        "aws_asg_name": NAME, "aws_asg_tags": TAGS, "aws_asg_image_id": place["images"][0],
        "aws_asg_security_group_ids": [place["group"]], "aws_asg_instance_profile": f"{NAME}-host",
        "aws_asg_user_data": USER_DATA, "aws_asg_subnet_ids": place["subnets"],
        "aws_asg_target_group_arns": [place["target_group"]], **inputs,
    }  # fmt: skip
    return run(str(playbook), variables)


def group(client: Callable) -> dict:
    return client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[NAME])["AutoScalingGroups"][0]


def test_the_group_its_template_hooks_and_policies(client: Callable, run: Callable[..., Run], place: dict,
                                                   tmp_path: Path) -> None:
    result = asg_play(run, tmp_path, place)
    assert result.rc == 0, result.tail()
    ec2, autoscaling = client("ec2"), client("autoscaling")
    g = group(client)
    assert (g["MinSize"], g["MaxSize"], g["DesiredCapacity"]) == (1, 5, 1)
    assert g["HealthCheckType"] == "ELB" and g["HealthCheckGracePeriod"] == 180
    assert g["TargetGroupARNs"] == [place["target_group"]]
    assert set(g["VPCZoneIdentifier"].split(",")) == set(place["subnets"])
    assert {t["Key"]: (t["Value"], t["PropagateAtLaunch"]) for t in g["Tags"]} == {
        "Project": ("ec2-fleet", True), "Environment": ("asgtest", True), "Role": ("web", True), "Name": (NAME, True)}
    version = g["LaunchTemplate"]["Version"]
    data = ec2.describe_launch_template_versions(LaunchTemplateName=NAME, Versions=[version])[
        "LaunchTemplateVersions"][0]["LaunchTemplateData"]  # fmt: skip
    assert data["ImageId"] == place["images"][0]
    metadata = data["MetadataOptions"]
    assert (metadata["HttpTokens"], metadata["HttpPutResponseHopLimit"]) == ("required", 1)
    ebs = data["BlockDeviceMappings"][0]["Ebs"]
    assert (ebs["VolumeType"], ebs["Encrypted"], ebs["DeleteOnTermination"]) == ("gp3", True, True)
    profile = data["IamInstanceProfile"]  # the module resolves the name to the ARN
    assert profile.get("Name") == f"{NAME}-host" or profile["Arn"].endswith(f":instance-profile/{NAME}-host"), profile
    assert base64.b64decode(data["UserData"]).decode() == USER_DATA
    assert data["SecurityGroupIds"] == [place["group"]]
    hooks = {h["LifecycleHookName"]: h for h in autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=NAME)[
        "LifecycleHooks"]}  # fmt: skip
    assert hooks["launch"]["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
    assert (hooks["launch"]["HeartbeatTimeout"], hooks["launch"]["DefaultResult"]) == (600, "ABANDON")
    assert "drain" not in hooks  # the target groups' deregistration delay drains a leaving instance: no hook needed
    policies = {p["PolicyName"]: p for p in autoscaling.describe_policies(AutoScalingGroupName=NAME)["ScalingPolicies"]}
    cpu = policies[f"{NAME}-cpu"]["TargetTrackingConfiguration"]
    assert cpu["PredefinedMetricSpecification"]["PredefinedMetricType"] == "ASGAverageCPUUtilization"
    assert cpu["TargetValue"] == 70
    memory = policies[f"{NAME}-memory"]["TargetTrackingConfiguration"]
    assert memory["CustomizedMetricSpecification"]["MetricName"] == "mem_used_percent"
    assert memory["CustomizedMetricSpecification"]["Dimensions"] == [{"Name": "AutoScalingGroupName", "Value": NAME}]
    assert memory["TargetValue"] == 80

    # The policies scaled out to 3: a second run keeps it and changes nothing.
    autoscaling.set_desired_capacity(AutoScalingGroupName=NAME, DesiredCapacity=3)
    again = asg_play(run, tmp_path, place)
    assert again.rc == 0 and "changed=0" in again.output, again.tail()
    assert group(client)["DesiredCapacity"] == 3

    # A new release's image: a new template version, the group on it; max lowered below 3 moves desired down.
    # A terminate hook asked for is made (and removed again once not).
    newer = asg_play(run, tmp_path, place, aws_asg_image_id=place["images"][1], aws_asg_max_size=2,
                     aws_asg_terminate_hook_timeout=120)
    assert newer.rc == 0, newer.tail()
    g = group(client)
    assert int(g["LaunchTemplate"]["Version"]) == int(version) + 1
    assert (g["MaxSize"], g["DesiredCapacity"]) == (2, 2)
    hooks = {h["LifecycleHookName"]: h for h in autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=NAME)[
        "LifecycleHooks"]}  # fmt: skip
    assert hooks["drain"]["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
    assert (hooks["drain"]["HeartbeatTimeout"], hooks["drain"]["DefaultResult"]) == (120, "CONTINUE")
    without = asg_play(run, tmp_path, place, aws_asg_image_id=place["images"][1], aws_asg_max_size=2)
    assert without.rc == 0, without.tail()
    assert [h["LifecycleHookName"] for h in autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=NAME)[
        "LifecycleHooks"]] == ["launch"]  # fmt: skip

    # aws_asg_group_version current (an instance refresh rolls the new version out): the next release's image is a
    # new template version, made only; the group and the template's default stay on the version it runs.
    staged = asg_play(run, tmp_path, place, aws_asg_image_id=place["images"][0], aws_asg_max_size=2,
                      aws_asg_group_version="current")  # fmt: skip
    assert staged.rc == 0, staged.tail()
    assert int(group(client)["LaunchTemplate"]["Version"]) == int(version) + 1
    template = ec2.describe_launch_templates(LaunchTemplateNames=[NAME])["LaunchTemplates"][0]
    assert (template["LatestVersionNumber"], template["DefaultVersionNumber"]) == (int(version) + 2, int(version) + 1)

    # absent: the group and the template are gone.
    gone = asg_play(run, tmp_path, place, aws_asg_state="absent")
    assert gone.rc == 0, gone.tail()
    assert autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[NAME])["AutoScalingGroups"] == []
    assert ec2.describe_launch_templates(Filters=[{"Name": "launch-template-name", "Values": [NAME]}])[
        "LaunchTemplates"] == []  # fmt: skip


def test_an_image_that_is_not_there_is_refused_before_anything_is_made(client: Callable, run: Callable[..., Run],
                                                                       place: dict, tmp_path: Path) -> None:
    result = asg_play(run, tmp_path, place, aws_asg_image_id="ami-0000000000000dead")
    assert result.rc != 0
    assert "aws_asg_image_id ami-0000000000000dead is not an available image" in result.output, result.tail()
    assert client("ec2").describe_launch_templates(Filters=[{"Name": "launch-template-name", "Values": [NAME]}])[
        "LaunchTemplates"] == []  # fmt: skip
