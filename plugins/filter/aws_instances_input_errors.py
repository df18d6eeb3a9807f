# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""What is wrong with the aws_instances role's inputs (what meta/argument_specs.yml cannot say)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ansible_collections.ec2_fleet.fleet.plugins.plugin_utils.input_checks import (
    has_project_tags,
    int_between,
    matches,
    to_json,
)

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
ROLE_RE = r"^[a-z][a-z0-9_-]{0,31}$"
TYPE_RE = r"^[a-z][a-z0-9-]*\.[a-z0-9][a-z0-9-]*$"
AMI_ID_RE = r"^(ami-[0-9a-f]{8,17})?$"
SSM_PARAMETER_RE = r"^(/[A-Za-z0-9_.\-/]+)?$"
KEY_NAME_RE = r"^[A-Za-z0-9._-]{0,255}$"
UBUNTU_RELEASES = ("22.04", "24.04")


def aws_instances_input_errors(inputs: Mapping[str, Any]) -> list[str]:
    """Every problem with the aws_instances_* inputs (a map of each variable's name to its value).

    The public key file is read on the control node only by an import (aws_instances_state
    present): teardown needs no key file.
    """
    v = inputs
    e = []
    if not (
        matches(NAME_RE, v["aws_instances_name"])
        and matches(ROLE_RE, v["aws_instances_role"])
        and has_project_tags(v["aws_instances_tags"])
    ):
        e.append(
            f"aws_instances_name (got '{v['aws_instances_name']}') must be letters, digits, '.', '_' or '-'; "
            f"aws_instances_role (got '{v['aws_instances_role']}') lower-case letters, digits, '_' or '-'; "
            f"aws_instances_tags must contain Project and Environment (got {to_json(v['aws_instances_tags'])})"
        )
    count = v["aws_instances_count"]
    if not (matches(r"^[0-9]+$", str(count)) and int_between(count, 0, 100)):
        e.append(f"aws_instances_count must be a whole number 0-100 (got {count})")
    if not matches(TYPE_RE, v["aws_instances_type"]):
        e.append(f"aws_instances_type must look like t3.small or m7g.large (got '{v['aws_instances_type']}')")
    if not (
        matches(AMI_ID_RE, v["aws_instances_ami_id"])
        and matches(SSM_PARAMETER_RE, v["aws_instances_ami_ssm_parameter"])
        and str(v["aws_instances_ubuntu_release"]) in UBUNTU_RELEASES
    ):
        e.append(
            "aws_instances_ami_id must be empty or an id like ami-0123456789abcdef0 "
            f"(got '{v['aws_instances_ami_id']}'); aws_instances_ami_ssm_parameter empty or a parameter path "
            f"(got '{v['aws_instances_ami_ssm_parameter']}'); "
            f"aws_instances_ubuntu_release 22.04 or 24.04 (got '{v['aws_instances_ubuntu_release']}')"
        )
    if not (
        int_between(v["aws_instances_root_volume_size"], 8, 16384)
        and int_between(v["aws_instances_metadata_hop_limit"], 1, 64)
    ):
        e.append(
            f"aws_instances_root_volume_size must be 8-16384 GiB (got {v['aws_instances_root_volume_size']}) and "
            f"aws_instances_metadata_hop_limit 1-64 (got {v['aws_instances_metadata_hop_limit']})"
        )
    key_name, key_file = v["aws_instances_key_name"], v["aws_instances_public_key_file"]
    if not (
        matches(KEY_NAME_RE, key_name)
        and (not key_file or bool(key_name))
        and (v["aws_instances_state"] == "absent" or not key_file or os.path.isfile(key_file))
    ):
        e.append(
            f"aws_instances_key_name must be letters, digits, '.', '_' or '-' (got '{key_name}'), and "
            f"aws_instances_public_key_file (got '{key_file}') needs aws_instances_key_name and must be "
            "a readable file on the control node"
        )
    return e


class FilterModule:
    """Filters: aws_instances_input_errors."""

    def filters(self) -> dict:
        return {"aws_instances_input_errors": aws_instances_input_errors}
