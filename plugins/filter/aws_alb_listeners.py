"""The listeners the aws_alb role hands amazon.aws.elb_application_lb, weighted forwards left alone.

elb_application_lb compares a listener's default actions without their ForwardConfig (it keeps only
Type, TargetGroupArn, RedirectConfig, FixedResponseConfig and AuthenticateOidcConfig of what it reads):
a forward by weight would differ on every run and be rewritten, resetting the weights. A listener that
already forwards to the same target groups by weight is therefore given its default action as that
module reads it, {"Type": "forward"}, and the weights are left to ec2_fleet.fleet.alb_listener_weights.
"""

from __future__ import annotations

from typing import Any


def _groups(action: dict[str, Any]) -> set[str]:
    """Target group ARNs of a weighted forward, as the API (CamelCase) or an info module (snake_case) gives it."""
    config = action.get("ForwardConfig") or action.get("forward_config") or {}
    groups = config.get("TargetGroups") or config.get("target_groups") or []
    return {g.get("TargetGroupArn") or g.get("target_group_arn") for g in groups}


def _is_forward(action: dict[str, Any]) -> bool:
    return (action.get("Type") or action.get("type")) == "forward"


def aws_alb_listeners_keep_weights(wanted: list[dict[str, Any]], current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The wanted listeners, each weighted forward that the current listener on its port already has
    (same target groups) replaced by {"Type": "forward"}, what elb_application_lb compares it with."""
    by_port = {int(li.get("Port", li.get("port", 0))): li for li in current}
    result = []
    for listener in wanted:
        found = by_port.get(int(listener["Port"]))
        actions = listener.get("DefaultActions") or []
        found_actions = (found or {}).get("DefaultActions") or (found or {}).get("default_actions") or []
        if (
            found is not None
            and len(actions) == 1
            and len(found_actions) == 1
            and _is_forward(actions[0])
            and _is_forward(found_actions[0])
            and _groups(actions[0])
            and _groups(actions[0]) == _groups(found_actions[0])
        ):
            listener = {**listener, "DefaultActions": [{"Type": "forward"}]}
        result.append(listener)
    return result


class FilterModule:
    """Filters: aws_alb_listeners_keep_weights."""

    def filters(self) -> dict:
        return {"aws_alb_listeners_keep_weights": aws_alb_listeners_keep_weights}
