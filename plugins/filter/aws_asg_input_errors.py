# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""What is wrong with the aws_asg role's inputs (what meta/argument_specs.yml cannot say)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.ec2_fleet.fleet.plugins.plugin_utils.input_checks import (
    as_bool,
    as_int,
    has_project_tags,
    int_between,
    matches,
    to_json,
)

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{2,124}$"  # a launch template name: 3-125 characters
ROLE_RE = r"^[a-z][a-z0-9_-]{0,31}$"
TYPE_RE = r"^[a-z][a-z0-9-]*\.[a-z0-9][a-z0-9-]*$"
AMI_ID_RE = r"^ami-[0-9a-f]{8,17}$"
SUBNET_RE = r"^subnet-[0-9a-f]{8,17}$"
SG_RE = r"^sg-[0-9a-f]{8,17}$"
TG_ARN_RE = r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:[0-9]{12}:targetgroup/[A-Za-z0-9-]+/[0-9a-f]+$"
PROFILE_RE = r"^[A-Za-z0-9+=,.@_-]{1,128}$"
METRIC_RE = r"^[A-Za-z0-9/_.:#-]{1,255}$"


def _ids(values: Any, pattern: str) -> bool:
    return isinstance(values, list) and all(matches(pattern, v) for v in values)


def aws_asg_input_errors(inputs: Mapping[str, Any]) -> list[str]:
    """Every problem with the aws_asg_* inputs (a map of each variable's name to its value).

    The group's sizes are checked together: min <= desired <= max, max within the plan's ceiling unless
    aws_asg_allow_above_plan. What needs AWS (the image exists, the subnets span two zones) is the role's.
    """
    v = inputs
    e = []
    if v["aws_asg_state"] not in ("present", "absent"):
        e.append(f"aws_asg_state must be present or absent (got '{v['aws_asg_state']}')")
    if not (matches(NAME_RE, v["aws_asg_name"]) and has_project_tags(v["aws_asg_tags"])
            and matches(ROLE_RE, v["aws_asg_role"])):
        e.append(
            f"aws_asg_name (got '{v['aws_asg_name']}') must be 3-125 letters, digits, '.', '_' or '-'; aws_asg_tags "
            f"must contain Project and Environment (got {to_json(v['aws_asg_tags'])}); aws_asg_role (got "
            f"'{v['aws_asg_role']}') lower-case letters, digits, '_' or '-'"
        )
    if v["aws_asg_state"] == "absent":
        return e
    if v["aws_asg_group_version"] not in ("latest", "current"):
        e.append(f"aws_asg_group_version must be latest (the group runs a new template version at once) or current "
                 f"(it stays on its version, for an instance refresh) (got '{v['aws_asg_group_version']}')")
    if not matches(AMI_ID_RE, v["aws_asg_image_id"]):
        e.append(f"aws_asg_image_id must be an image id like ami-0123456789abcdef0: the release's image, baked by "
                 f"playbooks/bake.yml (got '{v['aws_asg_image_id']}')")
    if not matches(TYPE_RE, v["aws_asg_instance_type"]):
        e.append(f"aws_asg_instance_type must look like t3.small or m7g.large (got '{v['aws_asg_instance_type']}')")
    if not (_ids(v["aws_asg_security_group_ids"], SG_RE) and v["aws_asg_security_group_ids"]):
        e.append(f"aws_asg_security_group_ids must be one or more ids like sg-0123456789abcdef0 "
                 f"(got {to_json(v['aws_asg_security_group_ids'])})")
    if not matches(PROFILE_RE, v["aws_asg_instance_profile"]):
        e.append(f"aws_asg_instance_profile must be an instance profile's name: the instances read SSM with it "
                 f"(got '{v['aws_asg_instance_profile']}')")
    if not (int_between(v["aws_asg_root_volume_size"], 8, 16384)
            and int_between(v["aws_asg_metadata_hop_limit"], 1, 64)):
        e.append(f"aws_asg_root_volume_size must be 8-16384 GiB (got {v['aws_asg_root_volume_size']}) and "
                 f"aws_asg_metadata_hop_limit 1-64 (got {v['aws_asg_metadata_hop_limit']})")
    user_data = v["aws_asg_user_data"]
    if not (isinstance(user_data, str) and user_data.startswith("#!") and len(user_data.encode()) <= 16384):
        e.append("aws_asg_user_data must be a script (starting with #!) of at most 16 KiB: what boots the instance")
    subnets = v["aws_asg_subnet_ids"]
    if not (_ids(subnets, SUBNET_RE) and len(set(subnets)) >= 2):
        e.append(f"aws_asg_subnet_ids must be at least two subnet ids (private subnets of two Availability Zones, so "
                 f"that one zone's outage leaves the group serving; got {to_json(subnets)})")
    groups = v["aws_asg_target_group_arns"]
    if not (_ids(groups, TG_ARN_RE) and groups):
        e.append(f"aws_asg_target_group_arns must name the load balancer's target group (one or more target group "
                 f"ARNs): an asg fleet is served through it (got {to_json(groups)})")
    sizes = {k: as_int(v[f"aws_asg_{k}"]) for k in ("min_size", "max_size", "desired_capacity", "plan_max_size")}
    if not all(int_between(v[f"aws_asg_{k}"], 0, 1000) for k in sizes):
        e.append("aws_asg_min_size, aws_asg_max_size, aws_asg_desired_capacity and aws_asg_plan_max_size must be whole "
                 f"numbers 0-1000 (got {sizes['min_size']}, {sizes['max_size']}, {sizes['desired_capacity']}, "
                 f"{sizes['plan_max_size']})".replace("None", "?"))
    else:
        low, high, desired, plan = (sizes[k] for k in ("min_size", "max_size", "desired_capacity", "plan_max_size"))
        if not (1 <= low <= high):
            e.append(f"aws_asg_min_size must be at least 1 and at most aws_asg_max_size (got min {low}, max {high})")
        elif not (low <= desired <= high):
            e.append(f"aws_asg_desired_capacity must be between aws_asg_min_size and aws_asg_max_size (got {desired}, "
                     f"min {low}, max {high})")
        if high > plan and not as_bool(v["aws_asg_allow_above_plan"]):
            e.append(f"aws_asg_max_size {high} is above the plan's {plan} instances (aws_asg_plan_max_size): set "
                     "aws_asg_allow_above_plan to true to allow it")
    for name in ("aws_asg_cpu_target", "aws_asg_memory_target"):
        if not int_between(v[name], 1, 100):
            e.append(f"{name} must be a percentage 1-100 (got {v[name]})")
    for name, high in (("aws_asg_health_check_grace_period", 7200), ("aws_asg_instance_warmup", 3600)):
        if not int_between(v[name], 0, high):
            e.append(f"{name} must be 0-{high} seconds (got {v[name]})")
    if not int_between(v["aws_asg_launch_hook_timeout"], 30, 7200):
        e.append("aws_asg_launch_hook_timeout must be 30-7200 seconds, a lifecycle hook's heartbeat timeout (got "
                 f"{v['aws_asg_launch_hook_timeout']})")
    terminate = v["aws_asg_terminate_hook_timeout"]
    if not (int_between(terminate, 30, 7200) or int_between(terminate, 0, 0)):
        e.append(f"aws_asg_terminate_hook_timeout must be 0 (no terminate hook) or 30-7200 seconds (got {terminate})")
    metric = (v["aws_asg_memory_metric_namespace"], v["aws_asg_memory_metric_name"])
    if not all(matches(METRIC_RE, part) for part in metric):
        e.append("aws_asg_memory_metric_namespace and aws_asg_memory_metric_name must name a CloudWatch metric (got "
                 f"'{v['aws_asg_memory_metric_namespace']}', '{v['aws_asg_memory_metric_name']}')")
    if not int_between(v["aws_asg_wait_timeout"], 60, 7200):
        e.append(f"aws_asg_wait_timeout must be 60-7200 seconds (got {v['aws_asg_wait_timeout']})")
    return e


class FilterModule:
    """Filters: aws_asg_input_errors."""

    def filters(self) -> dict:
        return {"aws_asg_input_errors": aws_asg_input_errors}
