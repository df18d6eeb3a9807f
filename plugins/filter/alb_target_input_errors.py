# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""What is wrong with the alb_target role's inputs (what meta/argument_specs.yml cannot say)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.ec2_fleet.fleet.plugins.plugin_utils.input_checks import int_between, matches

GROUP_NAME_RE = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?)?$"
GROUP_ARN_RE = r"^(arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:[0-9]{12}:targetgroup/[A-Za-z0-9-]+/[0-9a-f]+)?$"
INSTANCE_ID_RE = r"^i-[0-9a-f]{8,17}$"


def alb_target_input_errors(inputs: Mapping[str, Any]) -> list[str]:
    """Every problem with the alb_target_* inputs (a map of each variable's name to its value)."""
    v = inputs
    e = []
    name, arn, instance_id = v["alb_target_group_name"], v["alb_target_group_arn"], v["alb_target_instance_id"]
    if not (
        bool(name) != bool(arn)
        and matches(GROUP_NAME_RE, name)
        and matches(GROUP_ARN_RE, arn)
        and matches(INSTANCE_ID_RE, instance_id)
    ):
        e.append(
            f"Give exactly one of alb_target_group_name (got '{name}') and alb_target_group_arn (got '{arn}'), "
            "and alb_target_instance_id must be an instance id like i-0123456789abcdef0 "
            f"(got '{instance_id}'; the aws_ec2 inventory sets instance_id)"
        )
    margins = ("alb_target_wait_margin", "alb_target_register_margin", "alb_target_lb_active_timeout")
    if not (
        int_between(v["alb_target_port"], 0, 65535)
        and all(int_between(v[key], 0) for key in margins)
        and int_between(v["alb_target_poll_interval"], 1)
    ):
        e.append(
            f"alb_target_port must be 0-65535 (got {v['alb_target_port']}), alb_target_wait_margin, "
            "alb_target_register_margin and alb_target_lb_active_timeout 0 or more seconds (got "
            f"{v['alb_target_wait_margin']}, {v['alb_target_register_margin']}, {v['alb_target_lb_active_timeout']}) "
            f"and alb_target_poll_interval 1 or more (got {v['alb_target_poll_interval']})"
        )
    return e


class FilterModule:
    """Filters: alb_target_input_errors."""

    def filters(self) -> dict:
        return {"alb_target_input_errors": alb_target_input_errors}
