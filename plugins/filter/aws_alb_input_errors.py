# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""What is wrong with the aws_alb role's inputs (what meta/argument_specs.yml cannot say)."""

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

NAME_RE = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?$"
HEALTH_PATH_RE = r"^/[^\s]{0,1023}$"
MATCHER_RE = r"^[1-5][0-9][0-9](-[1-5][0-9][0-9])?(,[1-5][0-9][0-9](-[1-5][0-9][0-9])?)*$"
CERTIFICATE_ARN_RE = r"^(arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+)?$"
SSM_PARAMETER_RE = r"^(/[A-Za-z0-9_.\-/]+)?$"
DOMAIN_RE = r"^(([a-z0-9*]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63})?$"
BUCKET_RE = r"^([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])?$"
PREFIX_RE = r"^([^/\s][^\s]*[^/\s]|[^/\s])?$"


def _health_check_errors(v: Mapping[str, Any]) -> list[str]:
    """The health check's path, timings, thresholds and matcher."""
    e = []
    if not matches(HEALTH_PATH_RE, v["aws_alb_health_check_path"]):
        e.append(
            "aws_alb_health_check_path must start with '/' and hold no spaces "
            f"(got '{v['aws_alb_health_check_path']}')"
        )
    interval, timeout = v["aws_alb_health_check_interval"], v["aws_alb_health_check_timeout"]
    if not (
        int_between(interval, 5, 300)
        and int_between(timeout, 2, 120)
        and (as_int(timeout) or 0) < (as_int(interval) or 0)
    ):
        e.append(
            f"aws_alb_health_check_interval must be 5-300 s (got {interval}) and "
            f"aws_alb_health_check_timeout 2-120 s and less than the interval (got {timeout})"
        )
    if not all(int_between(v[key], 2, 10) for key in ("aws_alb_healthy_threshold", "aws_alb_unhealthy_threshold")):
        e.append(
            f"aws_alb_healthy_threshold (got {v['aws_alb_healthy_threshold']}) and aws_alb_unhealthy_threshold "
            f"(got {v['aws_alb_unhealthy_threshold']}) must be 2-10"
        )
    if not matches(MATCHER_RE, v["aws_alb_health_check_matcher"]):
        e.append(
            "aws_alb_health_check_matcher must be HTTP codes like 200, 200-299 or 200,204 "
            f"(got '{v['aws_alb_health_check_matcher']}')"
        )
    return e


def aws_alb_input_errors(inputs: Mapping[str, Any]) -> list[str]:
    """Every problem with the aws_alb_* inputs (a map of each variable's name to its value).

    A load balancer to create (aws_alb_state present) needs a certificate for its HTTPS listener,
    or plain HTTP chosen on purpose; teardown needs none.
    """
    v = inputs
    e = []
    if not (
        matches(NAME_RE, v["aws_alb_name"])
        and not matches(r"^internal-", v["aws_alb_name"])
        and matches(NAME_RE, v["aws_alb_target_group_name"])
        and has_project_tags(v["aws_alb_tags"])
    ):
        e.append(
            f"aws_alb_name (got '{v['aws_alb_name']}') and aws_alb_target_group_name "
            f"(got '{v['aws_alb_target_group_name']}') must be 1-32 letters, digits or '-', not starting or ending "
            "with '-' (and the ALB name not with 'internal-'); aws_alb_tags must contain Project and Environment "
            f"(got {to_json(v['aws_alb_tags'])})"
        )
    canary = v["aws_alb_canary_target_group_name"]
    if not matches(NAME_RE, canary) or canary == v["aws_alb_target_group_name"]:
        e.append(
            f"aws_alb_canary_target_group_name (got '{canary}') must be 1-32 letters, digits or '-', not starting "
            f"or ending with '-', and not the main target group's name aws_alb_target_group_name "
            f"('{v['aws_alb_target_group_name']}')"
        )
    e += _health_check_errors(v)
    slow_start = as_int(v["aws_alb_slow_start"])
    slow_start_ok = slow_start == 0 or int_between(slow_start, 30, 900)
    if not (int_between(v["aws_alb_deregistration_delay"], 0, 3600) and slow_start_ok):
        e.append(
            f"aws_alb_deregistration_delay must be 0-3600 s (got {v['aws_alb_deregistration_delay']}) and "
            f"aws_alb_slow_start 0 or 30-900 s (got {v['aws_alb_slow_start']})"
        )
    if not (
        int_between(v["aws_alb_target_port"], 1, 65535)
        and int_between(v["aws_alb_idle_timeout"], 1, 4000)
        and v["aws_alb_scheme"] in ("internet-facing", "internal")
        and matches(CERTIFICATE_ARN_RE, v["aws_alb_certificate_arn"])
    ):
        e.append(
            f"aws_alb_target_port must be 1-65535 (got {v['aws_alb_target_port']}), aws_alb_idle_timeout 1-4000 s "
            f"(got {v['aws_alb_idle_timeout']}), aws_alb_scheme internet-facing or internal, and "
            f"aws_alb_certificate_arn empty or an ACM certificate ARN (got '{v['aws_alb_certificate_arn']}')"
        )
    bucket, prefix = v["aws_alb_access_logs_bucket"], v["aws_alb_access_logs_prefix"]
    if not (
        matches(SSM_PARAMETER_RE, v["aws_alb_certificate_ssm_parameter"])
        and matches(DOMAIN_RE, v["aws_alb_certificate_domain"])
        and int_between(v["aws_alb_certificate_wait_timeout"], 0)
        and int_between(v["aws_alb_wait_timeout"], 0)
        and matches(BUCKET_RE, bucket)
        and matches(PREFIX_RE, prefix)
        and (not prefix or bool(bucket))
    ):
        e.append(
            "aws_alb_certificate_ssm_parameter must be empty or a parameter path "
            f"(got '{v['aws_alb_certificate_ssm_parameter']}'), aws_alb_certificate_domain empty or a lower-case "
            f"domain name (got '{v['aws_alb_certificate_domain']}'), aws_alb_certificate_wait_timeout and "
            f"aws_alb_wait_timeout 0 or more seconds (got {v['aws_alb_certificate_wait_timeout']}, "
            f"{v['aws_alb_wait_timeout']}), aws_alb_access_logs_bucket empty or an S3 bucket name (got '{bucket}') "
            "and aws_alb_access_logs_prefix a prefix without leading or trailing '/' that goes with a bucket "
            f"(got '{prefix}')"
        )
    # Port 443 is open in the load balancer's security group: without a certificate nothing would
    # listen there and the fleet would serve plain HTTP.
    if v["aws_alb_state"] == "present" and not (
        v["aws_alb_certificate_arn"]
        or v["aws_alb_certificate_ssm_parameter"]
        or v["aws_alb_certificate_domain"]
        or as_bool(v["aws_alb_allow_http_only"])
    ):
        e.append(
            f"No certificate for the HTTPS listener of {v['aws_alb_name']}: set aws_alb_certificate_arn (an ACM "
            "certificate ARN), aws_alb_certificate_ssm_parameter (an SSM parameter holding one) or "
            "aws_alb_certificate_domain (provision requests a certificate from ACM, prints its DNS validation "
            "record and waits until it is issued); or set aws_alb_allow_http_only: true to serve plain HTTP on purpose"
        )
    return e


class FilterModule:
    """Filters: aws_alb_input_errors."""

    def filters(self) -> dict:
        return {"aws_alb_input_errors": aws_alb_input_errors}
