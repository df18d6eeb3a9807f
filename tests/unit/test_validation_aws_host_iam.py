"""The aws_host_iam role's input rules (plugins/filter/aws_host_iam_input_errors.py), one case per rule."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.aws_host_iam_input_errors import aws_host_iam_input_errors
from validation_support import good_inputs

GOOD = good_inputs(
    "aws_host_iam",
    aws_host_iam_name="ec2-fleet-lab-host",
    aws_host_iam_tags={"Project": "ec2-fleet", "Environment": "lab"},
    aws_host_iam_ssm_parameter_path="/ec2-fleet/lab",
)


def errors(**changes: Any) -> list[str]:
    return aws_host_iam_input_errors(GOOD | changes)


def test_good_inputs_have_no_errors() -> None:
    assert errors() == []
    assert errors(aws_host_iam_managed_policies=["arn:aws:iam::123456789012:policy/fleet-extra"]) == []


CASES = [
    ({"aws_host_iam_name": "host role"}, "aws_host_iam_name must be 1-64 letters, digits or +=,.@_- (got 'host "
     'role\') and aws_host_iam_tags must contain Project and Environment (got {"Project": "ec2-fleet", '
     '"Environment": "lab"})'),
    ({"aws_host_iam_name": "r" * 65}, "aws_host_iam_name must be 1-64"),
    ({"aws_host_iam_tags": {}}, "aws_host_iam_tags must contain Project and Environment (got {})"),
    ({"aws_host_iam_ssm_parameter_path": "ec2-fleet/lab"}, "aws_host_iam_ssm_parameter_path must be a parameter "
     "path like /ec2-fleet/staging (got 'ec2-fleet/lab') and aws_host_iam_managed_policies a list of policy ARNs "
     '(got ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"])'),
    ({"aws_host_iam_ssm_parameter_path": ""}, "aws_host_iam_ssm_parameter_path must be a parameter path"),
    ({"aws_host_iam_managed_policies": ["AmazonSSMManagedInstanceCore"]}, 'aws_host_iam_managed_policies a list of '
     'policy ARNs (got ["AmazonSSMManagedInstanceCore"])'),
]


@pytest.mark.parametrize(("changes", "expected"), CASES, ids=[f"{c}"[:70] for c, _ in CASES])
def test_each_rule_names_the_variable(changes: dict, expected: str) -> None:
    found = errors(**changes)
    assert len(found) == 1, found
    assert expected in found[0]


def test_an_existing_role_needs_no_parameter_path_or_policies() -> None:
    unused = {"aws_host_iam_ssm_parameter_path": "", "aws_host_iam_managed_policies": ["x"]}
    assert errors(aws_host_iam_create=False, **unused) == []
