# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""Small predicates shared by the roles' input checks (the ``*_input_errors`` filters).

Every role checks its inputs in one filter that returns a list of messages, each naming the
wrong variable and what is allowed; the role's ``validate.yml`` asserts that the list is empty.
The predicates here never raise on a value of the wrong type: ``meta/argument_specs.yml`` has
already named such a value, and a check that meets one simply reports it as not allowed.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean


def matches(pattern: str, value: Any) -> bool:
    """True when the string value matches the pattern from its start, as Jinja's ``match`` test does."""
    return isinstance(value, str) and re.match(pattern, value) is not None


def as_int(value: Any) -> int | None:
    """The value as an integer (``8080`` or ``"8080"``, as ``-e name=8080`` passes it), else None."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def int_between(value: Any, low: int, high: int | None = None) -> bool:
    """True for an integer (see as_int) of at least low and, when high is given, at most high."""
    number = as_int(value)
    return number is not None and number >= low and (high is None or number <= high)


def as_bool(value: Any) -> bool:
    """The value as Ansible's ``bool`` filter reads it (``true``, ``"yes"``, ``1``, ``"on"``...)."""
    if not isinstance(value, (str, bytes, int, float)):
        return False
    return boolean(value, strict=False)


def is_ipv4_cidr(value: Any) -> bool:
    """True for an IPv4 network in CIDR notation whose host bits are zero (10.0.0.0/16)."""
    if not isinstance(value, str) or "/" not in value:
        return False
    try:
        ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        return False
    return True


def cidr_within(value: Any, outer: Any) -> bool:
    """True when the CIDR value lies inside the CIDR outer."""
    if not (is_ipv4_cidr(value) and is_ipv4_cidr(outer)):
        return False
    return ipaddress.IPv4Network(value).subnet_of(ipaddress.IPv4Network(outer))


def cidrs_overlap(values: list[Any]) -> bool:
    """True when any two CIDRs of the list overlap (entries that are not CIDRs are ignored)."""
    nets = [ipaddress.IPv4Network(v) for v in values if is_ipv4_cidr(v)]
    return any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])


def has_project_tags(tags: Any) -> bool:
    """True when the tags hold a non-empty Project and a non-empty Environment."""
    return isinstance(tags, Mapping) and all(str(tags.get(key) or "") for key in ("Project", "Environment"))


def to_json(value: Any) -> str:
    """The value as Ansible's ``to_json`` filter writes it, for messages that show a list or a dict."""
    return json.dumps(value, default=str)
