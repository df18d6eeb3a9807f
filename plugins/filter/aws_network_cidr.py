"""CIDR checks for the aws_network role (standard library only: no netaddr on the control node)."""

from __future__ import annotations

import ipaddress


def aws_network_is_cidr(value: object) -> bool:
    """True for an IPv4 network in CIDR notation whose host bits are zero (10.0.0.0/16)."""
    if not isinstance(value, str) or "/" not in value:
        return False
    try:
        ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        return False
    return True


def aws_network_cidr_within(value: object, outer: object) -> bool:
    """True when the CIDR value lies inside the CIDR outer."""
    if not (aws_network_is_cidr(value) and aws_network_is_cidr(outer)):
        return False
    return ipaddress.IPv4Network(str(value)).subnet_of(ipaddress.IPv4Network(str(outer)))


def aws_network_cidrs_overlap(values: list) -> bool:
    """True when any two CIDRs of the list overlap."""
    nets = [ipaddress.IPv4Network(v) for v in values if aws_network_is_cidr(v)]
    return any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])


class FilterModule:
    """Filters: aws_network_is_cidr, aws_network_cidr_within, aws_network_cidrs_overlap."""

    def filters(self) -> dict:
        return {
            "aws_network_is_cidr": aws_network_is_cidr,
            "aws_network_cidr_within": aws_network_cidr_within,
            "aws_network_cidrs_overlap": aws_network_cidrs_overlap,
        }
