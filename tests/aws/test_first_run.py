"""The first steps on a new account, against moto: a dry run lists what provision would create; a
production-like network (a NAT gateway per zone, the database port scoped to the database); a dry run
of that environment reports only what would change; teardown needs nothing but the environment and its
confirmation, and waits out a lingering dependency.

The tests after the first share one provisioned environment and run in file order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from ec2_fleet_dev.moto_aws import Run, reset_moto, snapshot

TAGS = [{"Name": "tag:Project", "Values": ["ec2-fleet"]}, {"Name": "tag:Environment", "Values": ["lab"]}]
PREFIX = "ec2-fleet-lab"
QUICK = {"provision_cache": False, "provision_wait_for_hosts": False}
# As production: one NAT gateway per zone (moto makes them at once).
LAYOUT = {**QUICK, "aws_instances_count": 1, "aws_network_nat_gateway": True, "aws_network_nat_gateway_per_az": True}


def _tagged_subnets(ec2) -> list[str]:
    return [s["SubnetId"] for s in ec2.describe_subnets(Filters=TAGS)["Subnets"]]


def _name(resource: dict) -> str:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}.get("Name", "")


def test_dry_run_on_an_empty_account_lists_what_it_would_create(
    moto_url: str, client: Callable, run: Callable[..., Run]
) -> None:
    reset_moto(moto_url, client)
    before = snapshot(client)
    dry = run("playbooks/provision.yml", {**QUICK, "provision_cache": True}, "--check", "--diff")
    assert dry.rc == 0, dry.tail()
    plan = [line.strip().strip('",') for line in dry.output.splitlines() if '"would create ' in line]
    expected = [
        "would create VPC ec2-fleet-lab-vpc 10.89.0.0/16",
        "would create subnet ec2-fleet-lab-public-us-east-1a 10.89.0.0/24 (public)",
        "would create subnet ec2-fleet-lab-public-us-east-1b 10.89.1.0/24 (public)",
        "would create subnet ec2-fleet-lab-private-us-east-1a 10.89.10.0/24 (private)",
        "would create subnet ec2-fleet-lab-private-us-east-1b 10.89.11.0/24 (private)",
        "would create internet gateway ec2-fleet-lab-igw",
        "would create security group ec2-fleet-lab-hosts",
        "would create ElastiCache replication group ec2-fleet-lab (cache.t4g.small, 2 nodes)",
        "would create target group ec2-fleet-lab-tg",
        "would create bastion instance ec2-fleet-lab-bastion in the first public subnet",
    ]
    assert all(line in plan for line in expected), plan
    assert any(line.startswith("would create 2 instance(s) ec2-fleet-lab-web (t3.small, ami-") for line in plan), plan
    assert any(line.startswith("would create application load balancer ec2-fleet-lab ") for line in plan), plan
    # The IAM role reports itself (its module runs in check mode); nothing at all was created.
    assert "would create IAM role and instance profile ec2-fleet-lab-host for the hosts" in plan, plan
    assert dry.recap()["localhost"]["changed"] >= 1
    assert snapshot(client) == before
    assert client("iam").list_roles()["Roles"] == []


@pytest.fixture(scope="module")
def provisioned(moto_url: str, client: Callable, run: Callable[..., Run]) -> dict:
    reset_moto(moto_url, client)
    first = run("playbooks/provision.yml", LAYOUT, timeout=600)
    assert first.rc == 0, first.tail()
    return {"vpc": client("ec2").describe_vpcs(Filters=TAGS)["Vpcs"][0]["VpcId"]}


def test_each_zone_leaves_through_its_own_nat_gateway(client: Callable, provisioned: dict) -> None:
    ec2 = client("ec2")
    vpc = [{"Name": "vpc-id", "Values": [provisioned["vpc"]]}]
    subnets = {s["SubnetId"]: s for s in ec2.describe_subnets(Filters=vpc)["Subnets"]}
    nats = [n for n in ec2.describe_nat_gateways(Filters=vpc)["NatGateways"] if n["State"] == "available"]
    zone_of_nat = {n["NatGatewayId"]: subnets[n["SubnetId"]]["AvailabilityZone"] for n in nats}
    assert sorted(zone_of_nat.values()) == ["us-east-1a", "us-east-1b"]
    private = {}
    for table in ec2.describe_route_tables(Filters=vpc)["RouteTables"]:
        if _name(table).startswith(f"{PREFIX}-private-"):
            (subnet,) = [a["SubnetId"] for a in table["Associations"] if a.get("SubnetId")]
            (nat,) = [r["NatGatewayId"] for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
            private[subnets[subnet]["AvailabilityZone"]] = zone_of_nat[nat]
    # Each zone's private subnet routes through the NAT gateway of the same zone.
    assert private == {"us-east-1a": "us-east-1a", "us-east-1b": "us-east-1b"}


def test_hosts_reach_the_database_port_only_at_the_database(client: Callable, provisioned: dict) -> None:
    hosts = [*TAGS, {"Name": "group-name", "Values": [f"{PREFIX}-hosts"]}]
    group = client("ec2").describe_security_groups(Filters=hosts)
    rules = group["SecurityGroups"][0]["IpPermissionsEgress"]
    database = [r for r in rules if r.get("FromPort") == 5432]
    assert [[ip["CidrIp"] for ip in r["IpRanges"]] for r in database] == [["10.89.0.0/16"]]


def test_dry_run_of_a_provisioned_environment_reports_changes_only(
    client: Callable, run: Callable[..., Run], provisioned: dict
) -> None:
    before = snapshot(client)
    # Every module runs in check mode now that the ids exist: one more host and a closed port are reported.
    dry = run("playbooks/provision.yml", {**LAYOUT, "aws_instances_count": 2, "aws_network_alb_ingress_ports": [80]},
              "--check", "--diff", timeout=600)  # fmt: skip
    assert dry.rc == 0, dry.tail()
    assert "would create" not in dry.output
    assert "changed: [localhost] => (item=ec2-fleet-lab-alb)" in dry.output  # the ALB group's rules
    task = "TASK [ec2_fleet.fleet.aws_instances : Launch or terminate instances in each subnet]"
    launch = dry.output.split(task)[1].split("TASK [")[0]
    assert launch.count("changed: [localhost] => (item=subnet-") == 1, launch  # one more host, in one subnet
    assert snapshot(client) == before


def test_teardown_needs_no_key_file_and_waits_out_a_lingering_dependency(
    client: Callable, run: Callable[..., Run], provisioned: dict
) -> None:
    ec2 = client("ec2")
    # Stands for what AWS leaves behind for a while (a deleted load balancer's or endpoint's network
    # interfaces): the VPC cannot be deleted while it exists (DependencyViolation, in moto as in AWS).
    blocker = ec2.create_subnet(VpcId=provisioned["vpc"], CidrBlock="10.89.200.0/24")["Subnet"]["SubnetId"]
    teardown = {
        **QUICK,
        "teardown_confirm": "lab",
        # The key pair is deleted by name: its public key file is not needed, and here does not exist.
        "aws_instances_key_name": PREFIX,
        "aws_instances_public_key_file": "/nonexistent/ec2-fleet-lab.pub",
        "aws_network_teardown_delay": 1,
    }
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(run, "playbooks/teardown.yml", teardown, timeout=600)
        # Once teardown has removed its own subnets it is at the VPC, retrying: then the dependency goes.
        deadline = time.monotonic() + 400
        while _tagged_subnets(ec2) and not future.done() and time.monotonic() < deadline:
            time.sleep(0.5)
        # Long enough for several refused attempts at the VPC (each retry 1 s apart), on a loaded machine too.
        time.sleep(15)
        assert not future.done(), future.result().tail()
        ec2.delete_subnet(SubnetId=blocker)
        removed = future.result(timeout=600)
    assert removed.rc == 0, removed.tail()
    assert "FAILED - RETRYING: [localhost]: Delete the VPC" in removed.output, removed.tail()
    assert ec2.describe_vpcs(Filters=TAGS)["Vpcs"] == []
    assert [n["State"] for n in ec2.describe_nat_gateways()["NatGateways"]] in ([], ["deleted", "deleted"])
