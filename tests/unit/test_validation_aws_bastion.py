"""The aws_bastion role's input rules (plugins/filter/aws_bastion_input_errors.py), one case per rule."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.aws_bastion_input_errors import aws_bastion_input_errors
from validation_support import good_inputs

GOOD = good_inputs(
    "aws_bastion",
    aws_bastion_name="ec2-fleet-lab-bastion",
    aws_bastion_tags={"Project": "ec2-fleet", "Environment": "lab"},
)


def errors(**changes: Any) -> list[str]:
    return aws_bastion_input_errors(GOOD | changes)


def test_good_inputs_have_no_errors() -> None:
    assert errors() == []
    assert errors(aws_bastion_ami_id="ami-0123456789abcdef0", aws_bastion_ami_ssm_parameter="") == []


CASES = [
    {"aws_bastion_name": "bastion host"},
    {"aws_bastion_tags": {"Project": "ec2-fleet"}},
    {"aws_bastion_type": "t3"},
    {"aws_bastion_ami_id": "ami-x"},
    {"aws_bastion_ami_ssm_parameter": "ami-id"},
    {"aws_bastion_ami_ssm_parameter": ""},
]


@pytest.mark.parametrize("changes", CASES, ids=[f"{c}"[:70] for c in CASES])
def test_each_rule_gives_the_message_with_every_value(changes: dict) -> None:
    values = GOOD | changes
    assert errors(**changes) == [
        f"aws_bastion_name (got '{values['aws_bastion_name']}') must be letters, digits, '.', '_' or '-'; "
        "aws_bastion_tags must contain Project and Environment (got "
        f"{json.dumps(values['aws_bastion_tags'])}); "
        f"aws_bastion_type must look like t3.micro (got '{values['aws_bastion_type']}'); aws_bastion_ami_id must "
        f"be empty or an AMI id (got '{values['aws_bastion_ami_id']}'), and then aws_bastion_ami_ssm_parameter a "
        f"parameter path (got '{values['aws_bastion_ami_ssm_parameter']}')"
    ]
