# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""What is wrong with the aws_network role's inputs (what meta/argument_specs.yml cannot say)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.ec2_fleet.fleet.plugins.plugin_utils.input_checks import (
    as_bool,
    cidr_within,
    cidrs_overlap,
    has_project_tags,
    int_between,
    is_ipv4_cidr,
    matches,
    to_json,
)

NAME_PREFIX_RE = r"^[A-Za-z0-9][A-Za-z0-9-]{0,40}$"
SECURITY_GROUP_RE = r"^(sg-[0-9a-f]{8,17})?$"
VPC_ID_RE = r"^(vpc-[0-9a-f]{8,17})?$"


def _rule_errors(v: Mapping[str, Any]) -> list[str]:
    """The name prefix, tags, teardown retries, ports, rule CIDRs and the SSH group."""
    e = []
    if not (matches(NAME_PREFIX_RE, v["aws_network_name_prefix"]) and has_project_tags(v["aws_network_tags"])):
        e.append(
            f"aws_network_name_prefix must be 1-41 letters, digits or '-' (got '{v['aws_network_name_prefix']}') and "
            "aws_network_tags must contain non-empty Project and Environment "
            f"(got {to_json(v['aws_network_tags'])})"
        )
    if not (
        int_between(v["aws_network_teardown_retries"], 0, 360) and int_between(v["aws_network_teardown_delay"], 1, 60)
    ):
        e.append(
            f"aws_network_teardown_retries must be 0-360 (got {v['aws_network_teardown_retries']}) and "
            f"aws_network_teardown_delay 1-60 seconds (got {v['aws_network_teardown_delay']})"
        )
    ports = [(key, v[key]) for key in ("aws_network_app_port", "aws_network_redis_port")]
    ports += [("aws_network_alb_ingress_ports", port) for port in v["aws_network_alb_ingress_ports"]]
    e.extend(f"{key} must be a TCP port 1-65535 (got {port})" for key, port in ports if not int_between(port, 1, 65535))
    for key in ("aws_network_alb_ingress_cidrs", "aws_network_ssh_cidrs", "aws_network_bastion_cidrs"):
        e.extend(
            f"{key} holds '{cidr}', which is not an IPv4 CIDR such as 203.0.113.0/24"
            for cidr in v[key]
            if not is_ipv4_cidr(cidr)
        )
    if not matches(SECURITY_GROUP_RE, v["aws_network_ssh_security_group_id"]):
        e.append(
            "aws_network_ssh_security_group_id must be empty or an id like sg-0123456789abcdef0 "
            f"(got '{v['aws_network_ssh_security_group_id']}')"
        )
    return e


def _existing_vpc_errors(v: Mapping[str, Any]) -> list[str]:
    """With an existing VPC: its id or its tags, and for each tier subnet ids or subnet tags."""
    ok = (
        matches(VPC_ID_RE, v["aws_network_vpc_id"])
        and not (v["aws_network_vpc_id"] and v["aws_network_vpc_tags"])
        and bool(v["aws_network_public_subnet_ids"]) != bool(v["aws_network_public_subnet_tags"])
        and bool(v["aws_network_private_subnet_ids"]) != bool(v["aws_network_private_subnet_tags"])
    )
    if ok:
        return []
    return [
        "With an existing VPC give aws_network_vpc_id (vpc-...) or aws_network_vpc_tags, not both, and for each tier "
        "either aws_network_public_subnet_ids / aws_network_private_subnet_ids or "
        "aws_network_public_subnet_tags / aws_network_private_subnet_tags"
    ]


def _new_vpc_errors(v: Mapping[str, Any]) -> list[str]:
    """For a VPC to create: its CIDR, and as many public as private subnets, inside it, in distinct zones."""
    vpc_cidr = v["aws_network_vpc_cidr"]
    public, private = v["aws_network_public_subnet_cidrs"], v["aws_network_private_subnet_cidrs"]
    zones = v["aws_network_availability_zones"]
    subnets = list(public) + list(private)
    ok = (
        is_ipv4_cidr(vpc_cidr)
        and len(public) >= 2
        and len(private) == len(public)
        and len(zones) in (0, len(public))
        and len(set(zones)) == len(zones)
        and all(cidr_within(cidr, vpc_cidr) for cidr in subnets)
        and not cidrs_overlap(subnets)
    )
    if ok:
        return []
    return [
        f"aws_network_vpc_cidr must be an IPv4 CIDR (got '{vpc_cidr}'); "
        "aws_network_public_subnet_cidrs and aws_network_private_subnet_cidrs must list at least two "
        "non-overlapping CIDRs each, as many of each, inside the VPC CIDR "
        f"(got {to_json(public)} and {to_json(private)}); "
        "aws_network_availability_zones must be empty or name one distinct zone per subnet pair "
        f"(got {to_json(zones)})"
    ]


def _database_errors(v: Mapping[str, Any]) -> list[str]:
    """The hosts reach the database port only at the database, or anywhere when said explicitly."""
    cidrs, group = v["aws_network_database_cidrs"], v["aws_network_database_security_group_id"]
    ok = (
        (bool(cidrs) or bool(group) or as_bool(v["aws_network_database_anywhere"]))
        and all(is_ipv4_cidr(cidr) for cidr in cidrs)
        and matches(SECURITY_GROUP_RE, group)
        and int_between(v["aws_network_database_port"], 1, 65535)
    )
    if ok:
        return []
    return [
        "The hosts may reach the database only where it is: set aws_network_database_cidrs to its IPv4 CIDRs "
        f"(got {to_json(cidrs)}; for Supabase, its pooler's addresses, docs/database.md) "
        f"and/or aws_network_database_security_group_id to its group (got '{group}'), "
        "or allow any address explicitly with aws_network_database_anywhere: true. "
        f"aws_network_database_port must be 1-65535 (got {v['aws_network_database_port']})"
    ]


def aws_network_input_errors(inputs: Mapping[str, Any], existing: Any) -> list[str]:
    """Every problem with the aws_network_* inputs (a map of each variable's name to its value).

    existing says whether the role uses a VPC it did not create: then the VPC and subnets are
    named by id or tags; otherwise the CIDRs of the VPC and subnets to create are checked. The
    database's reach comes last: the lab derives its database CIDR from the VPC CIDR, named first.
    """
    e = _rule_errors(inputs)
    e += _existing_vpc_errors(inputs) if as_bool(existing) else _new_vpc_errors(inputs)
    return e + _database_errors(inputs)


class FilterModule:
    """Filters: aws_network_input_errors."""

    def filters(self) -> dict:
        return {"aws_network_input_errors": aws_network_input_errors}
