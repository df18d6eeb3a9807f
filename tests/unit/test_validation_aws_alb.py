"""The aws_alb role's input rules (plugins/filter/aws_alb_input_errors.py), one case per rule."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.aws_alb_input_errors import aws_alb_input_errors
from validation_support import good_inputs

ARN = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-aaaa-bbbb-cccc-1234567890ab"
GOOD = good_inputs(
    "aws_alb",
    aws_alb_name="ec2-fleet-lab",
    aws_alb_target_group_name="ec2-fleet-lab-web",
    aws_alb_canary_target_group_name="ec2-fleet-lab-canary",
    aws_alb_tags={"Project": "ec2-fleet", "Environment": "lab"},
    aws_alb_certificate_arn=ARN,
)


def errors(**changes: Any) -> list[str]:
    return aws_alb_input_errors(GOOD | changes)


def test_good_inputs_have_no_errors() -> None:
    assert errors() == []
    assert errors(aws_alb_certificate_arn="", aws_alb_certificate_domain="shop.example.com") == []
    assert errors(aws_alb_certificate_arn="", aws_alb_certificate_ssm_parameter="/ec2-fleet/lab/certificate") == []
    assert errors(aws_alb_certificate_arn="", aws_alb_allow_http_only=True, aws_alb_slow_start=30,
                  aws_alb_health_check_matcher="200-299,304", aws_alb_access_logs_bucket="logs.example",
                  aws_alb_access_logs_prefix="alb/lab") == []  # fmt: skip


NAMES = "must be 1-32 letters, digits or '-', not starting or ending with '-'"
CASES = [
    ({"aws_alb_name": "-lab"}, f"aws_alb_name (got '-lab') and aws_alb_target_group_name (got "
     f"'ec2-fleet-lab-web') {NAMES} (and the ALB name not with 'internal-'); aws_alb_tags must contain Project and "
     'Environment (got {"Project": "ec2-fleet", "Environment": "lab"})'),
    ({"aws_alb_name": "internal-lab"}, NAMES),
    ({"aws_alb_target_group_name": "t" * 33}, NAMES),
    ({"aws_alb_canary_target_group_name": "ec2-fleet-lab-web"}, "aws_alb_canary_target_group_name (got "
     "'ec2-fleet-lab-web') must be 1-32 letters, digits or '-', not starting or ending with '-', and not the main "
     "target group's name aws_alb_target_group_name ('ec2-fleet-lab-web')"),
    ({"aws_alb_canary_target_group_name": "c" * 33}, "aws_alb_canary_target_group_name (got 'ccc"),
    ({"aws_alb_tags": {"Project": "ec2-fleet"}}, 'aws_alb_tags must contain Project and Environment (got '
     '{"Project": "ec2-fleet"})'),
    ({"aws_alb_health_check_path": "health"}, "aws_alb_health_check_path must start with '/' and hold no spaces "
     "(got 'health')"),
    ({"aws_alb_health_check_path": "/he alth"}, "aws_alb_health_check_path must start with '/'"),
    ({"aws_alb_health_check_timeout": 10}, "aws_alb_health_check_interval must be 5-300 s (got 10) and "
     "aws_alb_health_check_timeout 2-120 s and less than the interval (got 10)"),
    ({"aws_alb_health_check_interval": 301}, "aws_alb_health_check_interval must be 5-300 s (got 301)"),
    ({"aws_alb_health_check_timeout": 1}, "less than the interval (got 1)"),
    ({"aws_alb_healthy_threshold": 1}, "aws_alb_healthy_threshold (got 1) and aws_alb_unhealthy_threshold (got 2) "
     "must be 2-10"),
    ({"aws_alb_unhealthy_threshold": 11}, "aws_alb_unhealthy_threshold (got 11) must be 2-10"),
    ({"aws_alb_health_check_matcher": "ok"}, "aws_alb_health_check_matcher must be HTTP codes like 200, 200-299 or "
     "200,204 (got 'ok')"),
    ({"aws_alb_deregistration_delay": 3601}, "aws_alb_deregistration_delay must be 0-3600 s (got 3601) and "
     "aws_alb_slow_start 0 or 30-900 s (got 0)"),
    ({"aws_alb_slow_start": 10}, "aws_alb_slow_start 0 or 30-900 s (got 10)"),
    ({"aws_alb_target_port": 0}, "aws_alb_target_port must be 1-65535 (got 0), aws_alb_idle_timeout 1-4000 s (got "
     "60), aws_alb_scheme internet-facing or internal, and aws_alb_certificate_arn empty or an ACM certificate ARN "
     f"(got '{ARN}')"),
    ({"aws_alb_idle_timeout": 4001}, "aws_alb_idle_timeout 1-4000 s (got 4001)"),
    ({"aws_alb_scheme": "public"}, "aws_alb_scheme internet-facing or internal"),
    ({"aws_alb_certificate_arn": "arn:aws:iam::123456789012:server-certificate/x"}, "aws_alb_certificate_arn empty "
     "or an ACM certificate ARN (got 'arn:aws:iam::123456789012:server-certificate/x')"),
    ({"aws_alb_certificate_ssm_parameter": "ec2-fleet/cert"}, "aws_alb_certificate_ssm_parameter must be empty or a "
     "parameter path (got 'ec2-fleet/cert'), aws_alb_certificate_domain empty or a lower-case domain name (got ''), "
     "aws_alb_certificate_wait_timeout and aws_alb_wait_timeout 0 or more seconds (got 900, 600), "
     "aws_alb_access_logs_bucket empty or an S3 bucket name (got '') and aws_alb_access_logs_prefix a prefix "
     "without leading or trailing '/' that goes with a bucket (got '')"),
    ({"aws_alb_certificate_domain": "Shop Example"}, "aws_alb_certificate_domain empty or a lower-case domain name "
     "(got 'Shop Example')"),
    ({"aws_alb_certificate_wait_timeout": -1}, "(got -1, 600)"),
    ({"aws_alb_wait_timeout": -1}, "(got 900, -1)"),
    ({"aws_alb_access_logs_bucket": "Logs"}, "aws_alb_access_logs_bucket empty or an S3 bucket name (got 'Logs')"),
    ({"aws_alb_access_logs_bucket": "logs", "aws_alb_access_logs_prefix": "/logs/"}, "(got '/logs/')"),
    ({"aws_alb_access_logs_prefix": "logs"}, "that goes with a bucket (got 'logs')"),
    ({"aws_alb_certificate_arn": ""}, "No certificate for the HTTPS listener of ec2-fleet-lab: set "
     "aws_alb_certificate_arn (an ACM certificate ARN), aws_alb_certificate_ssm_parameter (an SSM parameter holding "
     "one) or aws_alb_certificate_domain (provision requests a certificate from ACM, prints its DNS validation "
     "record and waits until it is issued); or set aws_alb_allow_http_only: true to serve plain HTTP on purpose"),
]


@pytest.mark.parametrize(("changes", "expected"), CASES, ids=[f"{c}"[:70] for c, _ in CASES])
def test_each_rule_names_the_variable(changes: dict, expected: str) -> None:
    found = errors(**changes)
    assert len(found) == 1, found
    assert expected in found[0]


def test_teardown_needs_no_certificate() -> None:
    assert errors(aws_alb_state="absent", aws_alb_certificate_arn="") == []


def test_numbers_given_as_text_are_read_as_numbers() -> None:
    assert errors(aws_alb_health_check_interval="30", aws_alb_health_check_timeout="29") == []
    assert len(errors(aws_alb_health_check_interval="30", aws_alb_health_check_timeout="30")) == 1
