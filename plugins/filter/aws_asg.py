# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""The aws_asg role's shapes of AWS's inputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def aws_asg_group_tags(tags: Mapping[str, Any]) -> list[dict[str, Any]]:
    """{Key: Value} -> amazon.aws.autoscaling_group's tags: [{Key: Value, propagate_at_launch: true}], sorted."""
    return [{key: str(value), "propagate_at_launch": True} for key, value in sorted(tags.items())]


class FilterModule:
    """Filters: aws_asg_group_tags."""

    def filters(self) -> dict:
        return {"aws_asg_group_tags": aws_asg_group_tags}
