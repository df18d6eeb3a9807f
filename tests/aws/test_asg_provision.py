"""provision.yml with fleet_capacity asg against moto: no fixed instances; an Auto Scaling group of the release's baked
image in the private subnets behind the environment's target group, booting with ec2-fleet-boot (the user data),
with the hosts' instance profile, which may complete the group's launch hook; the app's settings as SecureStrings
under the environment's path, never shown; the interface endpoints the instances need with no NAT gateway. A
second run changes nothing; a changed setting is rewritten and a removed one deleted; an existing group keeps the
image it runs (a deploy changes it); bad inputs are refused before anything exists; site.yml refuses the mode;
teardown.yml removes the group, its template and the settings.

Its own environment (Environment=asgprov, its own VPC CIDR), Session Manager access (no bastion), an external
Redis (no cache to make): the test_provision_* files own the lab environment.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator

import pytest

from ec2_fleet_dev.lab.refresh import REFRESHES, Refresh
from ec2_fleet_dev.moto_aws import CANONICAL, Run

ENV = "asgprov"
NAME = f"ec2-fleet-{ENV}-web"
SETTINGS = f"/ec2-fleet/{ENV}/app-env"
DATABASE_URL = "postgresql://orders:db-secret-4711@10.91.20.5:5432/orders"
REDIS_URL = "rediss://default:redis-secret-4712@redis.example.internal:6379/0"
ASG = {
    "fleet_environment": ENV,
    "fleet_capacity": "asg",
    "fleet_access": "ssm",
    "fleet_app_version": "1.0.0",
    "aws_network_vpc_cidr": "10.91.0.0/16",
    "aws_network_public_subnet_cidrs": ["10.91.0.0/24", "10.91.1.0/24"],
    "aws_network_private_subnet_cidrs": ["10.91.10.0/24", "10.91.11.0/24"],
    "provision_cache": False,
    "aws_cache_external_url": REDIS_URL,
    "fleet_database_url_ssm_parameter": "",
    "fleet_database_url": DATABASE_URL,
    "fleet_redis_ca_file": "",
    "aws_asg_wait": False,
}
TAGS = [{"Name": "tag:Project", "Values": ["ec2-fleet"]}, {"Name": "tag:Environment", "Values": [ENV]}]


def settings(client: Callable) -> dict[str, tuple[str, str]]:
    found = client("ssm").get_parameters_by_path(Path=SETTINGS, WithDecryption=True)["Parameters"]
    return {p["Name"].rsplit("/", 1)[1]: (p["Type"], p["Value"]) for p in found}


def group(client: Callable) -> dict | None:
    found = client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[NAME])["AutoScalingGroups"]
    return found[0] if found else None


def template_data(client: Callable, version: str) -> dict:
    return client("ec2").describe_launch_template_versions(LaunchTemplateName=NAME, Versions=[version])[
        "LaunchTemplateVersions"][0]["LaunchTemplateData"]  # fmt: skip


def bake(client: Callable, release: str) -> str:
    """An image of the app's release, tagged as bake.yml tags it."""
    ec2 = client("ec2")
    base = sorted(ec2.describe_images(Owners=[CANONICAL])["Images"], key=lambda i: i["Name"])[-1]["ImageId"]
    builder = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    tags = [{"Key": "Project", "Value": "ec2-fleet"}, {"Key": "App", "Value": "orders-api"},
            {"Key": "Release", "Value": release}]  # fmt: skip
    image = ec2.create_image(InstanceId=builder, Name=f"ec2-fleet-orders-api-{release}", TagSpecifications=[
        {"ResourceType": "image", "Tags": tags}, {"ResourceType": "snapshot", "Tags": tags}])["ImageId"]  # fmt: skip
    ec2.terminate_instances(InstanceIds=[builder])
    return image


def nothing_of_the_environment(client: Callable) -> bool:
    return client("ec2").describe_vpcs(Filters=TAGS)["Vpcs"] == [] and group(client) is None


@pytest.fixture(scope="module")
def asg_env(client: Callable, run: Callable[..., Run]) -> Iterator[dict]:
    refused = run("playbooks/provision.yml", ASG)  # before any image of 1.0.0 exists
    assert nothing_of_the_environment(client)
    image = bake(client, "1.0.0")
    bad_sizes = run("playbooks/provision.yml", {**ASG, "aws_asg_min_size": 3, "aws_asg_max_size": 2})
    assert nothing_of_the_environment(client)
    first = run("playbooks/provision.yml", ASG, timeout=600)
    assert first.rc == 0, first.tail()
    # The group's part again (the rest of provision.yml's second run is the fixed fleet's tests' concern).
    second = run("playbooks/provision.yml", ASG, "--tags", "aws_asg", "--diff", timeout=600)
    yield {"image": image, "refused": refused, "bad_sizes": bad_sizes, "first": first, "second": second}
    # The images this file made are gone again: the orders-api images of the session are test_aws_image's to prune.
    ec2 = client("ec2")
    for made in ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [
            "ec2-fleet-orders-api-1.0.0", "ec2-fleet-orders-api-2.0.0"]}])["Images"]:  # fmt: skip
        ec2.deregister_image(ImageId=made["ImageId"])
        for mapping in made.get("BlockDeviceMappings", []):
            if "Ebs" in mapping and mapping["Ebs"].get("SnapshotId"):
                ec2.delete_snapshot(SnapshotId=mapping["Ebs"]["SnapshotId"])


def test_a_new_group_whose_release_has_no_image_is_refused_before_anything_exists(asg_env: dict) -> None:
    refused = asg_env["refused"]
    assert refused.rc != 0
    assert "release 1.0.0 (fleet_app_version) of orders-api has no available image" in refused.output, refused.tail()
    assert "playbooks/bake.yml" in refused.output


def test_a_min_size_above_the_max_is_refused_before_anything_exists(asg_env: dict, client: Callable) -> None:
    bad = asg_env["bad_sizes"]
    assert bad.rc != 0
    assert "aws_asg_min_size" in bad.output and "aws_asg_max_size" in bad.output, bad.tail()
    assert "Create the network" not in bad.output  # refused in the pre_tasks


def test_the_group_runs_the_release_image_behind_the_target_group_with_the_boot(asg_env: dict,
                                                                               client: Callable) -> None:
    g = group(client)
    assert g is not None
    assert (g["MinSize"], g["MaxSize"], g["DesiredCapacity"]) == (1, 5, 1)
    assert g["HealthCheckType"] == "ELB"
    target_groups = client("elbv2").describe_target_groups(Names=[f"ec2-fleet-{ENV}-tg"])["TargetGroups"]
    assert g["TargetGroupARNs"] == [target_groups[0]["TargetGroupArn"]]
    private = {s["SubnetId"] for s in client("ec2").describe_subnets(
        Filters=[*TAGS, {"Name": "tag:Tier", "Values": ["private"]}])["Subnets"]}  # fmt: skip
    assert set(g["VPCZoneIdentifier"].split(",")) == private and len(private) == 2
    data = template_data(client, g["LaunchTemplate"]["Version"])
    assert data["ImageId"] == asg_env["image"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    user_data = base64.b64decode(data["UserData"]).decode().replace("\\\n  ", "")  # one command, two lines
    assert user_data.startswith("#!/bin/sh\n")
    assert (f"ec2-fleet-boot --app orders-api --ssm-path /ec2-fleet/{ENV} --asg {NAME} --lifecycle-hook launch"
            in user_data), user_data  # fmt: skip
    hosts_group = [sg for sg in client("ec2").describe_security_groups(Filters=TAGS)["SecurityGroups"]
                   if sg["GroupName"] == f"ec2-fleet-{ENV}-hosts"]  # fmt: skip
    assert data["SecurityGroupIds"] == [hosts_group[0]["GroupId"]]
    profile = data["IamInstanceProfile"]
    assert profile.get("Name") == f"ec2-fleet-{ENV}-host" or profile["Arn"].endswith(f"/ec2-fleet-{ENV}-host")
    # No fixed instance: every instance of the environment is the group's.
    instances = [i for r in client("ec2").describe_instances(Filters=[
        *TAGS, {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
        for i in r["Instances"]]  # fmt: skip
    assert instances and all({"Key": "aws:autoscaling:groupName", "Value": NAME} in i["Tags"] for i in instances), [
        i["Tags"] for i in instances]  # fmt: skip
    assert "ec2-fleet-asgprov-web: image " in asg_env["first"].output


def test_the_app_settings_are_securestrings_never_shown(asg_env: dict, client: Callable) -> None:
    found = settings(client)
    assert found.pop("CORS_ALLOW_ORIGINS")[1].startswith("https://127.0.0.1:")  # the lab's frontend origin
    assert found == {"DATABASE_URL": ("SecureString", DATABASE_URL), "REDIS_URL": ("SecureString", REDIS_URL)}
    for result in (asg_env["first"], asg_env["second"]):
        assert "db-secret-4711" not in result.output and "redis-secret-4712" not in result.output


def test_the_instances_reach_ssm_and_auto_scaling_and_may_complete_the_hook(asg_env: dict, client: Callable) -> None:
    ec2 = client("ec2")
    vpc = ec2.describe_vpcs(Filters=TAGS)["Vpcs"][0]["VpcId"]
    services = {e["ServiceName"].rsplit(".", 1)[1] for e in ec2.describe_vpc_endpoints(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}])["VpcEndpoints"]}  # fmt: skip
    assert {"ssm", "autoscaling", "monitoring", "logs"} <= services, services
    iam = client("iam")
    role = f"ec2-fleet-{ENV}-host"
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    hook = [s for s in document["Statement"] if s.get("Sid") == "CompleteTheGroupLaunchHook"]
    assert hook and hook[0]["Resource"].endswith(f":autoScalingGroupName/{NAME}"), document
    assert "autoscaling:CompleteLifecycleAction" in hook[0]["Action"]


def test_a_second_run_changes_nothing(asg_env: dict) -> None:
    second = asg_env["second"]
    assert second.rc == 0, second.tail()
    assert second.recap()["localhost"]["changed"] == 0, second.tail(8000)


def test_changed_settings_are_rewritten_removed_ones_deleted_and_the_group_keeps_its_image(
        asg_env: dict, client: Callable, run: Callable[..., Run]) -> None:
    """The database moved, the frontend gone, and the environment's release now 2.0.0 (baked): the settings follow;
    the existing group stays on the version and image it runs (a deploy changes them, not a provision run)."""
    bake(client, "2.0.0")
    before = group(client)["LaunchTemplate"]["Version"]
    moved = "postgresql://orders:db-secret-4713@10.91.20.6:5432/orders"
    changed = run("playbooks/provision.yml", {**ASG, "fleet_database_url": moved, "fleet_frontend_origin": "",
                                              "fleet_app_version": "2.0.0"},
                  "--tags", "aws_asg", "--diff", timeout=600)  # fmt: skip
    assert changed.rc == 0, changed.tail()
    assert settings(client) == {"DATABASE_URL": ("SecureString", moved), "REDIS_URL": ("SecureString", REDIS_URL)}
    assert "db-secret-4713" not in changed.output and "db-secret-4711" not in changed.output
    assert "DATABASE_URL=(set, changed)" in changed.output  # --diff names the keys only
    after = group(client)["LaunchTemplate"]["Version"]
    assert after == before and template_data(client, after)["ImageId"] == asg_env["image"]


def test_a_refresh_going_on_is_refused_naming_it(asg_env: dict, client: Callable, run: Callable[..., Run]) -> None:
    """A deploy's instance refresh owns the group's template version until it ends: provision.yml waits for it. The
    refresh is recorded as the lab's StartInstanceRefresh records one (moto has none; nothing moves it on here)."""
    refresh = Refresh("0f7c3d2e-refresh", NAME, 2, "1", {"MinHealthyPercentage": 100}, {})
    REFRESHES.setdefault(NAME, []).append(refresh)
    try:
        refused = run("playbooks/provision.yml", ASG, "--tags", "aws_asg", timeout=600)
    finally:
        REFRESHES[NAME].remove(refresh)
    assert refused.rc != 0
    assert f"{NAME} is in instance refresh 0f7c3d2e-refresh (Pending" in refused.output, refused.tail()


def test_site_refuses_an_auto_scaling_group_environment(asg_env: dict, run: Callable[..., Run]) -> None:
    refused = run("playbooks/site.yml", ASG)
    assert refused.rc != 0
    assert "fleet_capacity is asg" in refused.output and "playbooks/rolling_update.yml" in refused.output


def test_teardown_removes_the_group_its_template_and_the_settings(asg_env: dict, client: Callable,
                                                                  run: Callable[..., Run]) -> None:
    removed = run("playbooks/teardown.yml", {**ASG, "teardown_confirm": ENV}, timeout=600)
    assert removed.rc == 0, removed.tail()
    assert group(client) is None
    assert client("ec2").describe_launch_templates(Filters=[{"Name": "launch-template-name", "Values": [NAME]}])[
        "LaunchTemplates"] == []  # fmt: skip
    assert settings(client) == {}
    assert client("ec2").describe_vpcs(Filters=TAGS)["Vpcs"] == []
