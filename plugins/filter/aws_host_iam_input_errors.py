# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""What is wrong with the aws_host_iam role's inputs (what meta/argument_specs.yml cannot say)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.ec2_fleet.fleet.plugins.plugin_utils.input_checks import (
    as_bool,
    has_project_tags,
    matches,
    to_json,
)

NAME_RE = r"^[A-Za-z0-9+=,.@_-]{1,64}$"
PARAMETER_PATH_RE = r"^(/[A-Za-z0-9_.-]+)+$"
POLICY_ARN_RE = r"^arn:aws[a-z-]*:iam::(aws|[0-9]{12}):policy/.+$"
# CloudWatch Logs' log group names and CloudWatch's namespaces (no "AWS/": AWS's own).
LOG_GROUP_RE = r"^[A-Za-z0-9_./#-]{1,512}$"
NAMESPACE_RE = r"^(?!AWS/)[A-Za-z0-9 _./#:-]{1,255}$"


def aws_host_iam_input_errors(inputs: Mapping[str, Any]) -> list[str]:
    """Every problem with the aws_host_iam_* inputs (a map of each variable's name to its value).

    The parameter path and the managed policies matter only for a role the run creates
    (aws_host_iam_create); an existing one is only checked to exist.
    """
    v = inputs
    e = []
    if not (matches(NAME_RE, v["aws_host_iam_name"]) and has_project_tags(v["aws_host_iam_tags"])):
        e.append(
            f"aws_host_iam_name must be 1-64 letters, digits or +=,.@_- (got '{v['aws_host_iam_name']}') and "
            f"aws_host_iam_tags must contain Project and Environment (got {to_json(v['aws_host_iam_tags'])})"
        )
    policies = v["aws_host_iam_managed_policies"]
    if as_bool(v["aws_host_iam_create"]) and not (
        matches(PARAMETER_PATH_RE, v["aws_host_iam_ssm_parameter_path"])
        and all(matches(POLICY_ARN_RE, arn) for arn in policies)
    ):
        e.append(
            "aws_host_iam_ssm_parameter_path must be a parameter path like /ec2-fleet/staging (got "
            f"'{v['aws_host_iam_ssm_parameter_path']}') and aws_host_iam_managed_policies a list of policy ARNs "
            f"(got {to_json(policies)})"
        )
    group, namespace = v.get("aws_host_iam_log_group_name", ""), v.get("aws_host_iam_metrics_namespace", "")
    if group and not matches(LOG_GROUP_RE, group):
        e.append(
            "aws_host_iam_log_group_name must be empty (no log shipping) or a log group name of 1-512 letters, digits "
            f"or _-./# (got '{group}')"
        )
    if namespace and not matches(NAMESPACE_RE, namespace):
        e.append(
            "aws_host_iam_metrics_namespace must be empty (no metrics) or a CloudWatch namespace of 1-255 letters, "
            f"digits, spaces or _-./#: that does not start with AWS/ (got '{namespace}')"
        )
    return e


class FilterModule:
    """Filters: aws_host_iam_input_errors."""

    def filters(self) -> dict:
        return {"aws_host_iam_input_errors": aws_host_iam_input_errors}
