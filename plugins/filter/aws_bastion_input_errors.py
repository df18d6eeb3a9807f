# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""What is wrong with the aws_bastion role's inputs (what meta/argument_specs.yml cannot say)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.ec2_fleet.fleet.plugins.plugin_utils.input_checks import has_project_tags, matches, to_json

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
TYPE_RE = r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"
AMI_ID_RE = r"^(ami-[0-9a-f]{8,17})?$"
SSM_PARAMETER_RE = r"^/[A-Za-z0-9_.\-/]+$"


def aws_bastion_input_errors(inputs: Mapping[str, Any]) -> list[str]:
    """Every problem with the aws_bastion_* inputs (a map of each variable's name to its value):
    the bastion's AMI comes from aws_bastion_ami_id or, when that is empty, an SSM parameter."""
    v = inputs
    if (
        matches(NAME_RE, v["aws_bastion_name"])
        and has_project_tags(v["aws_bastion_tags"])
        and matches(TYPE_RE, v["aws_bastion_type"])
        and matches(AMI_ID_RE, v["aws_bastion_ami_id"])
        and (bool(v["aws_bastion_ami_id"]) or matches(SSM_PARAMETER_RE, v["aws_bastion_ami_ssm_parameter"]))
    ):
        return []
    return [
        f"aws_bastion_name (got '{v['aws_bastion_name']}') must be letters, digits, '.', '_' or '-'; "
        f"aws_bastion_tags must contain Project and Environment (got {to_json(v['aws_bastion_tags'])}); "
        f"aws_bastion_type must look like t3.micro (got '{v['aws_bastion_type']}'); aws_bastion_ami_id must be empty "
        f"or an AMI id (got '{v['aws_bastion_ami_id']}'), and then aws_bastion_ami_ssm_parameter a parameter path "
        f"(got '{v['aws_bastion_ami_ssm_parameter']}')"
    ]


class FilterModule:
    """Filters: aws_bastion_input_errors."""

    def filters(self) -> dict:
        return {"aws_bastion_input_errors": aws_bastion_input_errors}
