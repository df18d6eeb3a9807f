"""The ssm access mode against moto: provision.yml makes the Session Manager endpoints in the private subnets and
no bastion, a second run changes nothing, and teardown.yml removes the endpoints with the rest.

Its own environment (tag Environment=ssmtest, its own VPC CIDR), network and hosts only (tags aws_network and
aws_instances): the load balancer and the cache are the test_provision_* files'.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ec2_fleet_dev.moto_aws import Run, reset_moto

ENV = "ssmtest"
PREFIX = f"ec2-fleet-{ENV}"
SSM = {
    "fleet_environment": ENV,
    "fleet_access": "ssm",
    "aws_network_vpc_cidr": "10.90.0.0/16",
    "aws_network_public_subnet_cidrs": ["10.90.0.0/24", "10.90.1.0/24"],
    "aws_network_private_subnet_cidrs": ["10.90.10.0/24", "10.90.11.0/24"],
    "aws_instances_count": 1,
    "provision_cache": False,
    "provision_wait_for_hosts": False,
}
TAGS = [{"Name": "tag:Project", "Values": ["ec2-fleet"]}, {"Name": "tag:Environment", "Values": [ENV]}]


@pytest.fixture(scope="module")
def ssm_env(moto_url: str, client: Callable, run: Callable[..., Run]) -> dict:
    reset_moto(moto_url, client)
    first = run("playbooks/provision.yml", SSM, "--tags", "aws_network,aws_instances")
    assert first.rc == 0, first.tail()
    second = run("playbooks/provision.yml", SSM, "--tags", "aws_network,aws_instances")
    return {"first": first, "second": second}


def _groups(ec2) -> dict[str, dict]:
    return {g["GroupName"]: g for g in ec2.describe_security_groups(Filters=TAGS)["SecurityGroups"]}


def test_session_manager_endpoints_in_the_private_subnets(client: Callable, ssm_env: dict) -> None:
    ec2 = client("ec2")
    vpc = ec2.describe_vpcs(Filters=TAGS)["Vpcs"][0]["VpcId"]
    private = {
        s["SubnetId"]
        for s in ec2.describe_subnets(Filters=[*TAGS, {"Name": "tag:Tier", "Values": ["private"]}])["Subnets"]
    }
    groups = _groups(ec2)
    endpoints_sg, hosts_sg = groups[f"{PREFIX}-endpoints"]["GroupId"], groups[f"{PREFIX}-hosts"]["GroupId"]
    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["VpcEndpoints"]
    assert sorted(e["ServiceName"] for e in endpoints) == [
        "com.amazonaws.us-east-1.ec2messages",
        "com.amazonaws.us-east-1.ssm",
        "com.amazonaws.us-east-1.ssmmessages",
    ]
    for endpoint in endpoints:
        assert endpoint["VpcEndpointType"] == "Interface"
        assert set(endpoint["SubnetIds"]) == private
        assert [g["GroupId"] for g in endpoint["Groups"]] == [endpoints_sg]
        assert {t["Key"]: t["Value"] for t in endpoint["Tags"]}.items() >= {"Environment": ENV}.items()
    # 443 from the hosts only; the hosts may reach them, and no SSH port is open on the hosts.
    ingress = groups[f"{PREFIX}-endpoints"]["IpPermissions"]
    assert [(p["FromPort"], [g["GroupId"] for g in p["UserIdGroupPairs"]], p["IpRanges"]) for p in ingress] == [
        (443, [hosts_sg], [])
    ]
    assert all(p.get("FromPort") != 22 for p in groups[f"{PREFIX}-hosts"]["IpPermissions"])
    assert any(
        p.get("FromPort") == 443 and [g["GroupId"] for g in p["UserIdGroupPairs"]] == [endpoints_sg]
        for p in groups[f"{PREFIX}-hosts"]["IpPermissionsEgress"]
    )


def test_no_bastion_in_the_ssm_mode(client: Callable, ssm_env: dict) -> None:
    ec2 = client("ec2")
    assert f"{PREFIX}-bastion" not in _groups(ec2)
    live = [{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    roles = [
        {t["Key"]: t["Value"] for t in i["Tags"]}["Role"]
        for r in ec2.describe_instances(Filters=[*TAGS, *live])["Reservations"]
        for i in r["Instances"]
    ]
    assert roles == ["web"]


def test_a_second_run_changes_nothing(ssm_env: dict) -> None:
    second = ssm_env["second"]
    assert second.rc == 0, second.tail()
    assert second.recap()["localhost"]["changed"] == 0, second.tail(8000)


def test_a_deleted_endpoint_is_named_not_taken_for_a_live_one(client: Callable, run: Callable[..., Run],
                                                             ssm_env: dict) -> None:
    """AWS (and moto) still list a deleted endpoint (state deleted), and amazon.aws's ec2_vpc_endpoint takes it for
    the service's existing one and makes none: the hosts would time out on Session Manager. provision.yml says so."""
    ec2 = client("ec2")
    vpc = ec2.describe_vpcs(Filters=TAGS)["Vpcs"][0]["VpcId"]
    (ssm,) = [e for e in ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["VpcEndpoints"]
              if e["ServiceName"].endswith(".ssm")]  # fmt: skip
    ec2.delete_vpc_endpoints(VpcEndpointIds=[ssm["VpcEndpointId"]])
    again = run("playbooks/provision.yml", SSM, "--tags", "aws_network")
    assert again.rc != 0
    assert (f"The interface endpoint of ssm in {vpc} is deleted ({ssm['VpcEndpointId']})" in again.output
            ), again.tail()  # fmt: skip


def test_teardown_removes_the_endpoints(client: Callable, run: Callable[..., Run], ssm_env: dict) -> None:
    removed = run("playbooks/teardown.yml", {**SSM, "teardown_confirm": ENV})
    assert removed.rc == 0, removed.tail()
    ec2 = client("ec2")
    endpoints = ec2.describe_vpc_endpoints()["VpcEndpoints"]
    left = [e for e in endpoints if e["State"].lower() not in ("deleted", "deleting")]
    assert left == []
    assert ec2.describe_vpcs(Filters=TAGS)["Vpcs"] == []
    assert client("iam").list_instance_profiles()["InstanceProfiles"] == []
