"""The predicates every input-check filter shares (plugins/plugin_utils/input_checks.py)."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.plugin_utils.input_checks import (
    as_bool,
    as_int,
    cidr_within,
    cidrs_overlap,
    has_project_tags,
    int_between,
    is_ipv4_cidr,
    matches,
    to_json,
)


def test_matches_anchors_at_the_start_like_jinjas_match_test() -> None:
    assert matches(r"[a-z]+", "abc-1")
    assert not matches(r"[a-z]+", "1abc")
    assert not matches(r"^.*$", 5)
    assert not matches(r"^.*$", None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(8080, 8080), ("8080", 8080), (" 7 ", 7), (2.0, 2), (True, 1), ("two", None), (2.5, None), ([1], None)],
)
def test_as_int_reads_numbers_and_numbers_as_text(value: Any, expected: int | None) -> None:
    assert as_int(value) == expected


def test_int_between_is_inclusive_and_refuses_what_is_not_a_number() -> None:
    assert int_between(1, 1, 64)
    assert int_between("64", 1, 64)
    assert int_between(10**9, 0)
    assert not int_between(0, 1, 64)
    assert not int_between(65, 1, 64)
    assert not int_between("many", 0)


@pytest.mark.parametrize(("value", "expected"), [(True, True), ("yes", True), ("True", True), (1, True),
                                                 (False, False), ("no", False), ("", False), ({}, False)])  # fmt: skip
def test_as_bool_reads_values_like_ansibles_bool_filter(value: Any, expected: bool) -> None:
    assert as_bool(value) is expected


def test_cidrs() -> None:
    assert is_ipv4_cidr("10.0.0.0/16")
    assert not is_ipv4_cidr("10.0.0.1/16")  # host bits set
    assert not is_ipv4_cidr("10.0.0.0")
    assert not is_ipv4_cidr("10.0.0.0/33")
    assert not is_ipv4_cidr("fd00::/8")
    assert not is_ipv4_cidr(None)
    assert cidr_within("10.0.1.0/24", "10.0.0.0/16")
    assert not cidr_within("10.1.0.0/24", "10.0.0.0/16")
    assert not cidr_within("10.0.1.0/24", "bad")
    assert cidrs_overlap(["10.0.0.0/23", "10.0.1.0/24"])
    assert not cidrs_overlap(["10.0.0.0/24", "10.0.1.0/24", "bad"])


def test_project_tags_need_both_non_empty() -> None:
    assert has_project_tags({"Project": "p", "Environment": "e", "Owner": "o"})
    assert not has_project_tags({"Project": "p", "Environment": ""})
    assert not has_project_tags({"Project": "p"})
    assert not has_project_tags("Project=p")


def test_to_json_writes_like_ansibles_to_json() -> None:
    assert to_json({"Project": "p", "n": [1, "a"]}) == '{"Project": "p", "n": [1, "a"]}'
