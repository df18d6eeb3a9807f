"""The aws_network role's input rules (plugins/filter/aws_network_input_errors.py), one case per rule."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.aws_network_input_errors import aws_network_input_errors
from validation_support import good_inputs

GOOD = good_inputs(
    "aws_network",
    aws_network_name_prefix="ec2-fleet-lab",
    aws_network_tags={"Project": "ec2-fleet", "Environment": "lab"},
    aws_network_database_cidrs=["10.20.0.0/16"],
)
EXISTING = {
    "aws_network_vpc_id": "vpc-0123456789abcdef0",
    "aws_network_public_subnet_ids": ["subnet-1", "subnet-2"],
    "aws_network_private_subnet_tags": {"Tier": "private"},
}


def errors(existing: bool = False, **changes: Any) -> list[str]:
    return aws_network_input_errors(GOOD | changes, existing)


def test_good_inputs_have_no_errors() -> None:
    assert errors() == []
    assert errors(existing=True, **EXISTING) == []
    assert errors(aws_network_database_cidrs=[], aws_network_database_anywhere=True) == []
    assert errors(aws_network_database_cidrs=[], aws_network_database_security_group_id="sg-0123456789abcdef0") == []
    assert errors(aws_network_availability_zones=["us-east-1a", "us-east-1b"], aws_network_app_port="8080") == []


CASES = [
    ({"aws_network_name_prefix": "-lab"}, "aws_network_name_prefix must be 1-41 letters, digits or '-' (got '-lab') "
     'and aws_network_tags must contain non-empty Project and Environment (got {"Project": "ec2-fleet", '
     '"Environment": "lab"})'),
    ({"aws_network_tags": {"Project": "ec2-fleet", "Environment": ""}}, "aws_network_tags must contain non-empty"),
    ({"aws_network_teardown_retries": 1000}, "aws_network_teardown_retries must be 0-360 (got 1000) and "
     "aws_network_teardown_delay 1-60 seconds (got 10)"),
    ({"aws_network_teardown_delay": 0}, "aws_network_teardown_delay 1-60 seconds (got 0)"),
    ({"aws_network_app_port": 0}, "aws_network_app_port must be a TCP port 1-65535 (got 0)"),
    ({"aws_network_redis_port": 65536}, "aws_network_redis_port must be a TCP port 1-65535 (got 65536)"),
    ({"aws_network_alb_ingress_ports": [80, 0]}, "aws_network_alb_ingress_ports must be a TCP port 1-65535 (got 0)"),
    ({"aws_network_alb_ingress_cidrs": ["0.0.0.0"]}, "aws_network_alb_ingress_cidrs holds '0.0.0.0', which is not "
     "an IPv4 CIDR such as 203.0.113.0/24"),
    ({"aws_network_ssh_cidrs": ["203.0.113.7"]}, "aws_network_ssh_cidrs holds '203.0.113.7'"),
    ({"aws_network_bastion_cidrs": ["203.0.113.7/24"]}, "aws_network_bastion_cidrs holds '203.0.113.7/24'"),
    ({"aws_network_ssh_security_group_id": "sg-1"}, "aws_network_ssh_security_group_id must be empty or an id like "
     "sg-0123456789abcdef0 (got 'sg-1')"),
    ({"aws_network_vpc_cidr": "10.89.0.0/33"}, "aws_network_vpc_cidr must be an IPv4 CIDR (got '10.89.0.0/33'); "
     "aws_network_public_subnet_cidrs and aws_network_private_subnet_cidrs must list at least two non-overlapping "
     'CIDRs each, as many of each, inside the VPC CIDR (got ["10.20.0.0/24", "10.20.1.0/24"] and '
     '["10.20.10.0/24", "10.20.11.0/24"]); aws_network_availability_zones must be empty or name one distinct zone '
     "per subnet pair (got [])"),
    ({"aws_network_public_subnet_cidrs": ["10.20.0.0/24"]}, "aws_network_vpc_cidr must be an IPv4 CIDR"),
    ({"aws_network_private_subnet_cidrs": ["10.20.10.0/24"]}, "as many of each"),
    ({"aws_network_private_subnet_cidrs": ["10.20.10.0/24", "10.99.11.0/24"]}, "inside the VPC CIDR"),
    ({"aws_network_private_subnet_cidrs": ["10.20.0.0/23", "10.20.11.0/24"]}, "non-overlapping"),
    ({"aws_network_availability_zones": ["us-east-1a"]}, "one distinct zone per subnet pair"),
    ({"aws_network_availability_zones": ["us-east-1a", "us-east-1a"]}, '(got ["us-east-1a", "us-east-1a"])'),
    ({"aws_network_database_cidrs": []}, "The hosts may reach the database only where it is: set "
     "aws_network_database_cidrs to its IPv4 CIDRs (got []; for Supabase, its pooler's addresses, "
     "docs/database.md) and/or aws_network_database_security_group_id to its group (got ''), or allow any address "
     "explicitly with aws_network_database_anywhere: true. aws_network_database_port must be 1-65535 (got 5432)"),
    ({"aws_network_database_cidrs": ["10.0.0.1"]}, 'set aws_network_database_cidrs to its IPv4 CIDRs (got '
     '["10.0.0.1"]'),
    ({"aws_network_database_security_group_id": "sg-x"}, "aws_network_database_security_group_id to its group "
     "(got 'sg-x')"),
    ({"aws_network_database_port": 0}, "aws_network_database_port must be 1-65535 (got 0)"),
]


@pytest.mark.parametrize(("changes", "expected"), CASES, ids=[f"{c}"[:70] for c, _ in CASES])
def test_each_rule_names_the_variable(changes: dict, expected: str) -> None:
    found = errors(**changes)
    assert len(found) == 1, found
    assert expected in found[0]


EXISTING_CASES = [
    {"aws_network_vpc_id": "vpc-1"},
    {"aws_network_vpc_tags": {"Name": "shared"}},
    {"aws_network_public_subnet_tags": {"Tier": "public"}},
    {"aws_network_private_subnet_tags": {}},
]


@pytest.mark.parametrize("changes", EXISTING_CASES, ids=[next(iter(c)) for c in EXISTING_CASES])
def test_an_existing_vpc_is_named_by_id_or_tags_and_each_tier_by_ids_or_tags(changes: dict) -> None:
    found = errors(existing=True, **(EXISTING | changes))
    assert len(found) == 1, found
    assert found[0].startswith("With an existing VPC give aws_network_vpc_id (vpc-...) or aws_network_vpc_tags")


def test_an_existing_vpc_skips_the_cidrs_to_create() -> None:
    assert errors(existing="True", aws_network_vpc_cidr="bad", **EXISTING) == []


def test_every_problem_is_reported_and_the_database_comes_last() -> None:
    found = errors(aws_network_database_cidrs=["bad"], aws_network_vpc_cidr="bad", aws_network_ssh_cidrs=["x", "y"])
    assert [e.split(" ")[0] for e in found] == [
        "aws_network_ssh_cidrs",
        "aws_network_ssh_cidrs",
        "aws_network_vpc_cidr",
        "The",
    ]
