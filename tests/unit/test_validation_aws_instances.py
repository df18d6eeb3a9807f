"""The aws_instances role's input rules (plugins/filter/aws_instances_input_errors.py), one case per rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.aws_instances_input_errors import aws_instances_input_errors
from validation_support import good_inputs

GOOD = good_inputs(
    "aws_instances",
    aws_instances_name="ec2-fleet-lab-web",
    aws_instances_tags={"Project": "ec2-fleet", "Environment": "lab"},
)


def errors(**changes: Any) -> list[str]:
    return aws_instances_input_errors(GOOD | changes)


def test_good_inputs_have_no_errors(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519.pub"
    key.write_text("ssh-ed25519 AAAA lab\n")
    assert errors() == []
    assert errors(aws_instances_count=0, aws_instances_type="m7g.large", aws_instances_ubuntu_release=22.04,
                  aws_instances_ami_id="ami-0123456789abcdef0", aws_instances_key_name="lab",
                  aws_instances_public_key_file=str(key)) == []  # fmt: skip
    assert errors(aws_instances_count="100", aws_instances_ami_ssm_parameter="/ec2-fleet/ami") == []


KEY = "aws_instances_key_name must be letters, digits, '.', '_' or '-'"
CASES = [
    ({"aws_instances_name": "-web"}, "aws_instances_name (got '-web') must be letters, digits, '.', '_' or '-'; "
     "aws_instances_role (got 'web') lower-case letters, digits, '_' or '-'; aws_instances_tags must contain "
     'Project and Environment (got {"Project": "ec2-fleet", "Environment": "lab"})'),
    ({"aws_instances_role": "Web"}, "aws_instances_role (got 'Web')"),
    ({"aws_instances_tags": {"Environment": "lab"}}, 'aws_instances_tags must contain Project and Environment (got '
     '{"Environment": "lab"})'),
    ({"aws_instances_count": -1}, "aws_instances_count must be a whole number 0-100 (got -1)"),
    ({"aws_instances_count": 101}, "aws_instances_count must be a whole number 0-100 (got 101)"),
    ({"aws_instances_count": "two"}, "aws_instances_count must be a whole number 0-100 (got two)"),
    ({"aws_instances_type": "t3-small"}, "aws_instances_type must look like t3.small or m7g.large (got 't3-small')"),
    ({"aws_instances_ami_id": "ami-1"}, "aws_instances_ami_id must be empty or an id like ami-0123456789abcdef0 (got "
     "'ami-1'); aws_instances_ami_ssm_parameter empty or a parameter path (got ''); aws_instances_ubuntu_release "
     "22.04 or 24.04 (got '24.04')"),
    ({"aws_instances_ami_ssm_parameter": "ami"}, "aws_instances_ami_ssm_parameter empty or a parameter path (got "
     "'ami')"),
    ({"aws_instances_ubuntu_release": "20.04"}, "aws_instances_ubuntu_release 22.04 or 24.04 (got '20.04')"),
    ({"aws_instances_root_volume_size": 7}, "aws_instances_root_volume_size must be 8-16384 GiB (got 7) and "
     "aws_instances_metadata_hop_limit 1-64 (got 1)"),
    ({"aws_instances_metadata_hop_limit": 65}, "aws_instances_metadata_hop_limit 1-64 (got 65)"),
    ({"aws_instances_key_name": "my key"}, f"{KEY} (got 'my key'), and aws_instances_public_key_file (got '') needs "
     "aws_instances_key_name and must be a readable file on the control node"),
    ({"aws_instances_public_key_file": "/etc/hostname"}, "aws_instances_public_key_file (got '/etc/hostname') needs "
     "aws_instances_key_name"),
    ({"aws_instances_key_name": "lab", "aws_instances_public_key_file": "/nonexistent.pub"}, "aws_instances_public_"
     "key_file (got '/nonexistent.pub') needs aws_instances_key_name and must be a readable file"),
]


@pytest.mark.parametrize(("changes", "expected"), CASES, ids=[f"{c}"[:70] for c, _ in CASES])
def test_each_rule_names_the_variable(changes: dict, expected: str) -> None:
    found = errors(**changes)
    assert len(found) == 1, found
    assert expected in found[0]


def test_teardown_needs_no_key_file() -> None:
    missing = {"aws_instances_key_name": "lab", "aws_instances_public_key_file": "/nonexistent.pub"}
    assert errors(aws_instances_state="absent", **missing) == []
