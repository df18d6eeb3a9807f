"""The dry-run plan of provision.yml for a new environment (plugins/filter/fleet_plan.py)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.ec2_fleet.fleet.plugins.filter.fleet_plan import fleet_provision_plan

BASE = {
    "prefix": "ec2-fleet-production",
    "vpc_cidr": "10.40.0.0/16",
    "public_subnet_cidrs": ["10.40.0.0/24", "10.40.1.0/24", "10.40.2.0/24"],
    "private_subnet_cidrs": ["10.40.10.0/24", "10.40.11.0/24", "10.40.12.0/24"],
    "availability_zones": ["eu-west-1a", "eu-west-1b", "eu-west-1c", "eu-west-1d"],
    "nat_gateway": True,
    "nat_gateway_per_az": True,
    "bastion_cidrs": [],
    "ssm_endpoints": True,
    "region": "eu-west-1",
    "cache": True,
    "cache_id": "ec2-fleet-production",
    "cache_subnet_group": "ec2-fleet-production-cache",
    "cache_node_type": "cache.t4g.small",
    "cache_clusters": 2,
    "alb_name": "ec2-fleet-production",
    "target_group_name": "ec2-fleet-production-tg",
    "https": "certificate arn:aws:acm:eu-west-1:123456789012:certificate/abc",
    "instances": 3,
    "instance_name": "ec2-fleet-production-web",
    "instance_type": "m7i.large",
    "ami": "ami-0123456789abcdef0",
    "key_name": "ec2-fleet-production",
    "public_key_file": "",
    "bastion": False,
    "bastion_name": "ec2-fleet-production-bastion",
    "host_iam": "ec2-fleet-production-host",
}


def test_production_plan_lists_every_resource_once_per_zone() -> None:
    plan = fleet_provision_plan(BASE)
    assert all(line.startswith("would create ") for line in plan)
    text = "\n".join(plan)
    # Three zones (the first three of the region), a subnet pair, a NAT gateway and a route table in each.
    assert sum("subnet ec2-fleet-production-" in line for line in plan) == 6
    assert "eu-west-1d" not in text
    assert [line for line in plan if line.startswith("would create NAT gateway")] == [
        f"would create NAT gateway ec2-fleet-production-nat-eu-west-1{z} with an Elastic IP" for z in "abc"
    ]
    assert sum("route table ec2-fleet-production-private-" in line for line in plan) == 3
    assert sum("VPC endpoint com.amazonaws.eu-west-1." in line for line in plan) == 3
    assert "security group ec2-fleet-production-endpoints" in text
    assert "security group ec2-fleet-production-bastion" not in text
    assert "ElastiCache replication group ec2-fleet-production (cache.t4g.small, 2 nodes)" in text
    assert "HTTPS listener on 443 (certificate arn:aws:acm:" in text
    assert "3 instance(s) ec2-fleet-production-web (m7i.large, ami-0123456789abcdef0)" in text
    assert "IAM role and instance profile ec2-fleet-production-host for the hosts" in text
    assert len(plan) == len(set(plan))


def test_lab_plan_without_nat_cache_or_instances() -> None:
    plan = fleet_provision_plan({**BASE, "nat_gateway": False, "cache": False, "instances": 0, "https": "",
                                 "ssm_endpoints": False, "bastion_cidrs": ["203.0.113.0/24"], "bastion": True,
                                 "public_key_file": "/tmp/id.pub", "host_iam": ""})  # fmt: skip
    text = "\n".join(plan)
    assert "IAM role" not in text  # an existing profile (aws_host_iam_create: false) is only checked
    assert "NAT gateway" not in text
    assert "route table ec2-fleet-production-private (no route out)" in text
    assert "ElastiCache" not in text and "instance(s)" not in text
    assert "with HTTP listener on 80" in text
    assert "security group ec2-fleet-production-bastion" in text
    assert "bastion instance ec2-fleet-production-bastion" in text
    assert "key pair ec2-fleet-production from /tmp/id.pub (unless it exists)" in text


def test_incomplete_settings_are_an_error() -> None:
    with pytest.raises(AnsibleFilterError, match="incomplete settings"):
        fleet_provision_plan({"prefix": "x"})
