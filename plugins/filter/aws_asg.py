# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""The aws_asg role's shapes of AWS's inputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def aws_asg_group_tags(tags: Mapping[str, Any]) -> list[dict[str, Any]]:
    """{Key: Value} -> amazon.aws.autoscaling_group's tags: [{Key: Value, propagate_at_launch: true}], sorted."""
    return [{key: str(value), "propagate_at_launch": True} for key, value in sorted(tags.items())]


def aws_asg_verify(info: Mapping[str, Any], expected: str) -> dict[str, Any]:
    """ec2_fleet.fleet.asg_fleet_info's result judged as verify.yml does: every instance in service on the expected
    release, healthy in the group and in every target group; as many in service as desired; a scale-out launching
    the expected release; no instance refresh going on. Returns {rows: the instances, each with its problems,
    problems: the group's, in_service: the count}. An instance on its way in or out (Pending, Terminating, ...) is
    shown, not judged: the count in service says whether the group is short."""
    group = info.get("group") or {}
    if not info.get("exists"):
        return {"rows": [], "problems": ["the Auto Scaling group does not exist"], "in_service": 0}
    rows = []
    for instance in info.get("instances", []):
        problems = []
        if instance["lifecycle_state"] == "InService":
            if instance["release"] != expected:
                problems.append(f"release {instance['release'] or '(image untagged or gone)'} != {expected}")
            if instance["health_status"] != "Healthy":
                problems.append(f"group health {instance['health_status']}")
            states = sorted({state for state in instance["target_health"].values() if state != "healthy"})
            if states:
                problems.append("target " + ", ".join(states))
        rows.append({**instance, "problems": problems})
    in_service = sum(1 for row in rows if row["lifecycle_state"] == "InService")
    problems = []
    if in_service < group["desired_capacity"]:
        problems.append(f"{in_service} instance(s) in service of the {group['desired_capacity']} desired")
    if group["release"] != expected:
        problems.append(
            f"a scale-out would launch release {group['release'] or '(image untagged or gone)'} "
            f"(launch template version {group['launch_template_version']}), not {expected}"
        )
    refresh = info.get("refresh") or {}
    if refresh:
        problems.append(
            f"instance refresh {refresh['instance_refresh_id']} {refresh['status']} "
            f"({refresh['percentage_complete']} %)"
        )
    return {"rows": rows, "problems": problems, "in_service": in_service}


class FilterModule:
    """Filters: aws_asg_group_tags, aws_asg_verify."""

    def filters(self) -> dict:
        return {"aws_asg_group_tags": aws_asg_group_tags, "aws_asg_verify": aws_asg_verify}
