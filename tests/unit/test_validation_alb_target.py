"""The alb_target role's input rules (plugins/filter/alb_target_input_errors.py), one case per rule."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.alb_target_input_errors import alb_target_input_errors
from validation_support import good_inputs

ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/ec2-fleet-lab-web/0123456789abcdef"
GOOD = good_inputs(
    "alb_target", alb_target_group_name="ec2-fleet-lab-web", alb_target_instance_id="i-0123456789abcdef0"
)


def errors(**changes: Any) -> list[str]:
    return alb_target_input_errors(GOOD | changes)


def test_good_inputs_have_no_errors() -> None:
    assert errors() == []
    assert errors(alb_target_group_name="", alb_target_group_arn=ARN, alb_target_port="8000") == []


GROUP = "Give exactly one of alb_target_group_name"
CASES = [
    ({"alb_target_group_arn": ARN}, f"{GROUP} (got 'ec2-fleet-lab-web') and alb_target_group_arn (got '{ARN}'), and "
     "alb_target_instance_id must be an instance id like i-0123456789abcdef0 (got 'i-0123456789abcdef0'; the "
     "aws_ec2 inventory sets instance_id)"),
    ({"alb_target_group_name": ""}, f"{GROUP} (got '') and alb_target_group_arn (got '')"),
    ({"alb_target_group_name": "-web"}, f"{GROUP} (got '-web')"),
    ({"alb_target_group_name": "", "alb_target_group_arn": "arn:aws:ec2:x"}, "alb_target_group_arn (got "
     "'arn:aws:ec2:x')"),
    ({"alb_target_instance_id": ""}, "alb_target_instance_id must be an instance id like i-0123456789abcdef0 (got "
     "''; the aws_ec2 inventory sets instance_id)"),
    ({"alb_target_port": 65536}, "alb_target_port must be 0-65535 (got 65536), alb_target_wait_margin, "
     "alb_target_register_margin and alb_target_lb_active_timeout 0 or more seconds (got 30, 120, 600) and "
     "alb_target_poll_interval 1 or more (got 1)"),
    ({"alb_target_wait_margin": -1}, "(got -1, 120, 600)"),
    ({"alb_target_register_margin": -1}, "(got 30, -1, 600)"),
    ({"alb_target_lb_active_timeout": -1}, "(got 30, 120, -1)"),
    ({"alb_target_poll_interval": 0}, "alb_target_poll_interval 1 or more (got 0)"),
]


@pytest.mark.parametrize(("changes", "expected"), CASES, ids=[f"{c}"[:70] for c, _ in CASES])
def test_each_rule_names_the_variable(changes: dict, expected: str) -> None:
    found = errors(**changes)
    assert len(found) == 1, found
    assert expected in found[0]
