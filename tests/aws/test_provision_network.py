"""The network provision.yml makes: two zones per tier, least-privilege security groups.

One provisioned environment for every test_provision_* file (the session's `lab` fixture, tests/aws/conftest.py);
the files run in the order tests/aws/conftest.py gives them: provision twice, inspect, alb_target, teardown.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from provision_helpers import _network, _rules

pytestmark = pytest.mark.usefixtures("lab")


def test_network_spans_two_zones_per_tier(client: Callable) -> None:
    net = _network(client)
    for tier in ("public", "private"):
        zones = {s["AvailabilityZone"] for s in net["tiers"][tier]}
        assert len(zones) >= 2, (tier, zones)
    assert all(s["MapPublicIpOnLaunch"] for s in net["tiers"]["public"])
    assert not any(s["MapPublicIpOnLaunch"] for s in net["tiers"]["private"])
    # Public subnets route to the internet gateway; private ones do not.
    ec2 = client("ec2")
    for tier, wants_igw in (("public", True), ("private", False)):
        for subnet in net["tiers"][tier]:
            tables = ec2.describe_route_tables(
                Filters=[{"Name": "association.subnet-id", "Values": [subnet["SubnetId"]]}]
            )["RouteTables"]
            assert len(tables) == 1, subnet["SubnetId"]
            igw_routes = [r for r in tables[0]["Routes"] if r.get("GatewayId", "").startswith("igw-")]
            assert bool(igw_routes) is wants_igw, (tier, tables[0]["Routes"])


def test_security_groups_are_least_privilege(client: Callable) -> None:
    groups = _network(client)["groups"]
    assert set(groups) == {"alb", "hosts", "cache", "bastion"}
    alb, hosts, cache, bastion = (groups[k]["GroupId"] for k in ("alb", "hosts", "cache", "bastion"))
    expected = {
        "alb": (
            {("tcp", 80, 80, "0.0.0.0/0"), ("tcp", 443, 443, "0.0.0.0/0")},
            {("tcp", 8000, 8000, hosts)},
        ),
        "hosts": (
            # App port only from the ALB group; SSH only from the bastion's group.
            {("tcp", 8000, 8000, alb), ("tcp", 22, 22, bastion)},
            {
                ("tcp", 6379, 6379, cache),
                ("tcp", 80, 80, "0.0.0.0/0"),
                ("tcp", 443, 443, "0.0.0.0/0"),
                # The database port to the database only (the lab's: its network, the VPC CIDR here).
                ("tcp", 5432, 5432, "10.89.0.0/16"),
            },
        ),
        # Redis port only from the hosts group; nothing out (AWS's default allow-all is gone).
        "cache": ({("tcp", 6379, 6379, hosts)}, set()),
        # SSH in from the operators' network only (fleet_bastion_cidrs), and out to the hosts only.
        "bastion": ({("tcp", 22, 22, "203.0.113.0/24")}, {("tcp", 22, 22, hosts)}),
    }
    for name, (ingress, egress) in expected.items():
        group = groups[name]
        assert _rules(group["IpPermissions"]) == ingress, name
        assert _rules(group["IpPermissionsEgress"]) == egress, name
