"""The aws_asg role's input rules (plugins/filter/aws_asg_input_errors.py), one case per rule: the bad inputs of
issue 14 (min > max, max above the plan without the override, a target outside 1-100, no image, a negative
warmup or grace period, no target group) and the others."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.aws_asg_input_errors import aws_asg_input_errors
from validation_support import good_inputs

TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/ec2-fleet-lab-web/0123456789abcdef"
GOOD = good_inputs(
    "aws_asg",
    aws_asg_name="ec2-fleet-lab-web",
    aws_asg_tags={"Project": "ec2-fleet", "Environment": "lab"},
    aws_asg_image_id="ami-0123456789abcdef0",
    aws_asg_security_group_ids=["sg-0123456789abcdef0"],
    aws_asg_instance_profile="ec2-fleet-lab-host",
    aws_asg_user_data="#!/bin/sh\nexec /usr/local/lib/ec2-fleet/ec2-fleet-boot --app orders-api --ssm-path /x\n",
    aws_asg_subnet_ids=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    aws_asg_target_group_arns=[TG],
)


def errors(**changes: Any) -> list[str]:
    return aws_asg_input_errors(GOOD | changes)


def test_good_inputs_have_no_errors() -> None:
    assert errors() == []
    assert errors(aws_asg_min_size="2", aws_asg_desired_capacity=3, aws_asg_max_size=5) == []
    assert errors(aws_asg_max_size=8, aws_asg_allow_above_plan="yes") == []
    assert errors(aws_asg_health_check_grace_period=0, aws_asg_instance_warmup=0, aws_asg_cpu_target=100) == []


def test_absent_needs_only_the_name_and_tags() -> None:
    assert aws_asg_input_errors(GOOD | {"aws_asg_state": "absent", "aws_asg_image_id": "", "aws_asg_subnet_ids": [],
                                        "aws_asg_target_group_arns": [], "aws_asg_min_size": 9}) == []  # fmt: skip


CASES = [
    ({"aws_asg_min_size": 3, "aws_asg_max_size": 2, "aws_asg_desired_capacity": 2},
     "aws_asg_min_size must be at least 1 and at most aws_asg_max_size (got min 3, max 2)"),
    ({"aws_asg_min_size": 0}, "aws_asg_min_size must be at least 1 and at most aws_asg_max_size (got min 0, max 5)"),
    ({"aws_asg_desired_capacity": 6, "aws_asg_max_size": 5},
     "aws_asg_desired_capacity must be between aws_asg_min_size and aws_asg_max_size (got 6, min 1, max 5)"),
    ({"aws_asg_max_size": 6}, "aws_asg_max_size 6 is above the plan's 5 instances (aws_asg_plan_max_size): set "
     "aws_asg_allow_above_plan to true to allow it"),
    ({"aws_asg_max_size": "five"}, "aws_asg_min_size, aws_asg_max_size, aws_asg_desired_capacity and "
     "aws_asg_plan_max_size must be whole numbers 0-1000 (got 1, ?, 1, 5)"),
    ({"aws_asg_cpu_target": 0}, "aws_asg_cpu_target must be a percentage 1-100 (got 0)"),
    ({"aws_asg_memory_target": 101}, "aws_asg_memory_target must be a percentage 1-100 (got 101)"),
    ({"aws_asg_image_id": ""}, "aws_asg_image_id must be an image id like ami-0123456789abcdef0: the release's image, "
     "baked by playbooks/bake.yml (got '')"),
    ({"aws_asg_instance_warmup": -1}, "aws_asg_instance_warmup must be 0-3600 seconds (got -1)"),
    ({"aws_asg_health_check_grace_period": -30}, "aws_asg_health_check_grace_period must be 0-7200 seconds (got -30)"),
    ({"aws_asg_target_group_arns": []}, "aws_asg_target_group_arns must name the load balancer's target group"),
    ({"aws_asg_target_group_arns": ["my-target-group"]}, "aws_asg_target_group_arns must name the load balancer's"),
    ({"aws_asg_subnet_ids": ["subnet-0123456789abcdef0"]}, "aws_asg_subnet_ids must be at least two subnet ids"),
    ({"aws_asg_subnet_ids": ["subnet-0123456789abcdef0"] * 2}, "aws_asg_subnet_ids must be at least two subnet ids"),
    ({"aws_asg_name": "ab"}, "aws_asg_name (got 'ab') must be 3-125 letters"),
    ({"aws_asg_tags": {"Project": "ec2-fleet"}}, 'aws_asg_tags must contain Project and Environment (got '
     '{"Project": "ec2-fleet"})'),
    ({"aws_asg_role": "Web"}, "aws_asg_role (got 'Web')"),
    ({"aws_asg_state": "running"}, "aws_asg_state must be present or absent (got 'running')"),
    ({"aws_asg_group_version": "newest"}, "aws_asg_group_version must be latest (the group runs a new template "
                                          "version at once) or current (it stays on its version, for an instance "
                                          "refresh) (got 'newest')"),
    ({"aws_asg_instance_type": "t3"}, "aws_asg_instance_type must look like t3.small or m7g.large (got 't3')"),
    ({"aws_asg_security_group_ids": []}, "aws_asg_security_group_ids must be one or more ids like sg-"),
    ({"aws_asg_instance_profile": ""}, "aws_asg_instance_profile must be an instance profile's name"),
    ({"aws_asg_root_volume_size": 4}, "aws_asg_root_volume_size must be 8-16384 GiB (got 4)"),
    ({"aws_asg_metadata_hop_limit": 0}, "aws_asg_metadata_hop_limit 1-64 (got 0)"),
    ({"aws_asg_user_data": "echo hi"}, "aws_asg_user_data must be a script (starting with #!) of at most 16 KiB"),
    ({"aws_asg_user_data": "#!/bin/sh\n" + "x" * 16384}, "aws_asg_user_data must be a script"),
    ({"aws_asg_launch_hook_timeout": 10}, "aws_asg_launch_hook_timeout must be 30-7200 seconds, a lifecycle hook's "
     "heartbeat timeout (got 10)"),
    ({"aws_asg_terminate_hook_timeout": 9000}, "aws_asg_terminate_hook_timeout must be 0 (no terminate hook) or "
     "30-7200 seconds (got 9000)"),
    ({"aws_asg_terminate_hook_timeout": 10}, "aws_asg_terminate_hook_timeout must be 0 (no terminate hook) or "
     "30-7200 seconds (got 10)"),
    ({"aws_asg_memory_metric_name": ""}, "aws_asg_memory_metric_namespace and aws_asg_memory_metric_name must name a "
     "CloudWatch metric (got 'CWAgent', '')"),
    ({"aws_asg_wait_timeout": 10}, "aws_asg_wait_timeout must be 60-7200 seconds (got 10)"),
]


@pytest.mark.parametrize(("change", "message"), CASES, ids=[next(iter(c)) for c, _ in CASES])
def test_each_bad_input_is_named(change: dict[str, Any], message: str) -> None:
    found = errors(**change)
    assert len(found) == 1, found
    assert message in found[0], found


def test_every_problem_is_reported_at_once() -> None:
    found = errors(aws_asg_min_size=4, aws_asg_max_size=2, aws_asg_cpu_target=0, aws_asg_target_group_arns=[],
                   aws_asg_instance_warmup=-1)
    assert len(found) == 4, found
