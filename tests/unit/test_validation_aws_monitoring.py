"""The aws_monitoring role's rules (plugins/filter/aws_monitoring.py): its input checks, one case per rule, and
the alarms and dashboard it plans from the resources it found."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.aws_monitoring import (
    ALARM_UNITS,
    arn_suffix,
    aws_monitoring_alarm_plan,
    aws_monitoring_dashboard,
    aws_monitoring_input_errors,
    merged_alarms,
)
from validation_support import good_inputs, role_defaults

GOOD = good_inputs(
    "aws_monitoring",
    aws_monitoring_name_prefix="ec2-fleet-lab",
    aws_monitoring_topic_name="ec2-fleet-lab-alarms",
    aws_monitoring_dashboard_name="ec2-fleet-lab",
    aws_monitoring_log_group_name="/ec2-fleet/lab/journal",
    aws_monitoring_subscriptions=[{"protocol": "email", "endpoint": "ops@example.com"}],
)
DEFAULTS = role_defaults("aws_monitoring")["aws_monitoring_alarms"]
LB = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/ec2-fleet-lab/50dc6c495c0c9188"
TG = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/ec2-fleet-lab-tg/73e2d6bc24d8a067"


def errors(**changes: Any) -> list[str]:
    return aws_monitoring_input_errors(GOOD | changes)


def test_good_inputs_have_no_errors() -> None:
    assert errors() == []
    assert errors(aws_monitoring_log_retention_days=0, aws_monitoring_subscriptions=[]) == []
    assert errors(aws_monitoring_topic_kms_key="") == []
    assert errors(aws_monitoring_topic_kms_key="alias/ec2-fleet-alarms") == []
    assert errors(aws_monitoring_alarm_overrides={"host_cpu": {"threshold": 95, "period": 60}}) == []
    assert errors(aws_monitoring_alarm_overrides={"alb_5xx_share": {"threshold": "0.5", "period": 10}}) == []


def test_every_alarm_has_a_default() -> None:
    assert set(DEFAULTS) == set(ALARM_UNITS)


OVERRIDE = "aws_monitoring_alarm_overrides"
CASES = [
    ({OVERRIDE: {"alb_5xx_share": {"threshold": 5}}}, f"{OVERRIDE}.alb_5xx_share.threshold must be a share of "
     "requests from 0 to 1 (0.05 = 5 %); got 5"),
    ({OVERRIDE: {"target_5xx_share": {"threshold": -0.1}}}, "target_5xx_share.threshold must be a share"),
    ({OVERRIDE: {"cache_memory": {"threshold": 101}}}, "cache_memory.threshold must be a percentage from 0 to 100"),
    ({OVERRIDE: {"target_response_time_p99": {"threshold": "fast"}}}, "threshold must be seconds, 0 or more"),
    ({OVERRIDE: {"host_cpu": {"evaluation_periods": 0}}}, "host_cpu.evaluation_periods must be 1 or more; got 0"),
    ({OVERRIDE: {"host_cpu": {"datapoints_to_alarm": 4}}}, "host_cpu.datapoints_to_alarm must be 1 to "
     "evaluation_periods (3); got 4"),
    ({OVERRIDE: {"host_cpu": {"datapoints_to_alarm": 0}}}, "datapoints_to_alarm must be 1 to evaluation_periods"),
    ({OVERRIDE: {"host_cpu": {"period": 45}}}, "host_cpu.period must be 10, 30 or a multiple of 60 seconds; got 45"),
    ({OVERRIDE: {"host_cpu": {"period": 20}}}, "period must be 10, 30 or a multiple of 60"),
    ({OVERRIDE: {"host_cpu": {"treat_missing_data": "zero"}}}, "host_cpu.treat_missing_data must be one of "
     "breaching, notBreaching, ignore, missing; got 'zero'"),
    ({OVERRIDE: {"host_cpu": {"color": "red"}}}, "host_cpu.color is unknown"),
    ({OVERRIDE: {"disk": {"threshold": 1}}}, f"{OVERRIDE}.disk is no alarm of this role"),
    ({"aws_monitoring_alarms": {**DEFAULTS, "host_cpu": {"threshold": 1}}}, "aws_monitoring_alarms.host_cpu misses "
     "period, evaluation_periods, datapoints_to_alarm, treat_missing_data"),
    ({"aws_monitoring_subscriptions": [{"protocol": "pigeon", "endpoint": "x"}]}, "aws_monitoring_subscriptions[0]."
     "protocol must be one of email, email-json, https, http, sms, sqs, lambda, firehose, application; got 'pigeon'"),
    ({"aws_monitoring_subscriptions": [{"protocol": "email", "endpoint": ""}]}, "aws_monitoring_subscriptions[0] "
     "must be a dict with a protocol and a non-empty endpoint"),
    ({"aws_monitoring_log_retention_days": 10}, "aws_monitoring_log_retention_days must be one of CloudWatch Logs' "
     "values 0, 1, 3, 5, 7, 14, 30"),
    ({"aws_monitoring_topic_kms_key": "alias/aws/sns"}, "aws_monitoring_topic_kms_key must not be AWS's managed "
     "key for SNS (alias/aws/sns): CloudWatch alarms cannot publish to a topic it encrypts"),
    ({"aws_monitoring_topic_kms_key": "arn:aws:kms:eu-west-1:123456789012:alias/aws/sns"},
     "aws_monitoring_topic_kms_key must not be AWS's managed key"),
    ({"aws_monitoring_healthy_hosts_floor": 0}, "aws_monitoring_healthy_hosts_floor must be 1 or more hosts; got 0"),
    ({"aws_monitoring_name_prefix": "-bad prefix"}, "aws_monitoring_name_prefix must be"),
    ({"aws_monitoring_topic_name": "alarms.fifo"}, "aws_monitoring_topic_name must be"),
    ({"aws_monitoring_dashboard_name": "my dashboard"}, "aws_monitoring_dashboard_name must be"),
    ({"aws_monitoring_log_group_name": "journal?"}, "aws_monitoring_log_group_name must be"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "message"), CASES, ids=[str(c) for c, _ in CASES])
def test_bad_input_is_named_with_what_is_allowed(changes: dict, message: str) -> None:
    found = errors(**changes)
    assert any(message in e for e in found), found


def test_absent_checks_only_the_names() -> None:
    assert errors(aws_monitoring_state="absent", aws_monitoring_log_retention_days=10) == []
    assert errors(aws_monitoring_state="absent", aws_monitoring_topic_name="a b") != []


def test_arn_suffixes_are_the_cloudwatch_dimensions() -> None:
    assert arn_suffix(LB, "app") == "app/ec2-fleet-lab/50dc6c495c0c9188"
    assert arn_suffix(TG, "targetgroup") == "targetgroup/ec2-fleet-lab-tg/73e2d6bc24d8a067"
    assert arn_suffix("", "app") == ""


def _plan(**resources: Any) -> dict[str, dict]:
    base = {
        "prefix": "p",
        "load_balancer_arn": LB,
        "target_group_arn": TG,
        "instance_ids": ["i-1", "i-2"],
        "cache_clusters": ["c-001", "c-002"],
        "rds_instance_id": "",
        "healthy_hosts_floor": "2",
    }
    settings = merged_alarms(DEFAULTS, {"host_cpu": {"threshold": 90}})
    return {a["AlarmName"]: a for a in aws_monitoring_alarm_plan(base | resources, settings)}


def test_the_plan_watches_every_resource_found() -> None:
    plan = _plan()
    assert len(plan) == 5 + 2 + 2 * 5
    share = plan["p-alb-5xx-share"]
    assert [m["Id"] for m in share["Metrics"]] == ["share", "errors", "requests"]
    assert share["Metrics"][1]["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "LoadBalancer", "Value": "app/ec2-fleet-lab/50dc6c495c0c9188"}
    ]
    assert "Period" not in share and share["Threshold"] == 0.05
    assert plan["p-target-response-time-p99"]["ExtendedStatistic"] == "p99"
    healthy = plan["p-healthy-hosts"]
    assert (healthy["ComparisonOperator"], healthy["Threshold"]) == ("LessThanThreshold", 2.0)
    assert plan["p-cpu-i-2"]["Threshold"] == 90.0
    assert plan["p-cache-replication-lag-c-002"]["Dimensions"][0] == {"Name": "CacheClusterId", "Value": "c-002"}


def test_the_plan_leaves_out_what_is_not_there() -> None:
    plan = _plan(load_balancer_arn="", target_group_arn="", instance_ids=[], cache_clusters=[], rds_instance_id="db1")
    assert sorted(plan) == ["p-rds-connections", "p-rds-cpu"]
    assert plan["p-rds-cpu"]["Dimensions"] == [{"Name": "DBInstanceIdentifier", "Value": "db1"}]


def test_the_dashboard_has_one_widget_per_alarm_with_its_metrics() -> None:
    alarms = list(_plan().values())
    body = aws_monitoring_dashboard(alarms, "eu-west-1")
    assert [w["properties"]["title"] for w in body["widgets"]] == [a["AlarmName"] for a in alarms]
    share = body["widgets"][0]["properties"]
    assert share["metrics"][0] == [{"expression": "errors / requests", "label": "HTTPCode_ELB_5XX_Count / RequestCount",
                                    "id": "share"}]  # fmt: skip
    assert share["metrics"][1][:4] == ["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "LoadBalancer",
                                       "app/ec2-fleet-lab/50dc6c495c0c9188"]  # fmt: skip
    assert share["annotations"]["horizontal"][0]["value"] == 0.05


CANARY_TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/ec2-fleet-lab-canary/0a1b2c3d4e5f6a7b"


def test_the_canary_alarms_are_the_main_ones_on_the_canary_group_only() -> None:
    plan = _plan(canary_target_group_arn=CANARY_TG)
    assert len(plan) == 5 + 2 + 2 + 2 * 5
    canary_dims = [{"Name": "TargetGroup", "Value": "targetgroup/ec2-fleet-lab-canary/0a1b2c3d4e5f6a7b"},
                   {"Name": "LoadBalancer", "Value": "app/ec2-fleet-lab/50dc6c495c0c9188"}]  # fmt: skip
    share, main_share = plan["p-canary-target-5xx-share"], plan["p-target-5xx-share"]
    assert [m.get("Expression") for m in share["Metrics"]] == [m.get("Expression") for m in main_share["Metrics"]]
    for metric, main_metric in zip(share["Metrics"][1:], main_share["Metrics"][1:], strict=True):
        assert metric["MetricStat"]["Metric"]["Dimensions"] == canary_dims
        assert metric["MetricStat"]["Metric"]["MetricName"] == main_metric["MetricStat"]["Metric"]["MetricName"]
        assert metric["MetricStat"]["Stat"] == main_metric["MetricStat"]["Stat"]
    p99 = plan["p-canary-target-response-time-p99"]
    assert (p99["MetricName"], p99["ExtendedStatistic"]) == ("TargetResponseTime", "p99")
    assert p99["Dimensions"] == canary_dims
    # Their own settings, overridable apart from the main ones.
    settings = merged_alarms(DEFAULTS, {"canary_target_5xx_share": {"threshold": 0.01, "period": 10}})
    base = {"prefix": "p", "load_balancer_arn": LB, "target_group_arn": TG, "canary_target_group_arn": CANARY_TG,
            "healthy_hosts_floor": 1}  # fmt: skip
    tuned = {a["AlarmName"]: a for a in aws_monitoring_alarm_plan(base, settings)}
    assert tuned["p-canary-target-5xx-share"]["Threshold"] == 0.01
    assert tuned["p-canary-target-5xx-share"]["Metrics"][1]["MetricStat"]["Period"] == 10
    assert tuned["p-target-5xx-share"]["Threshold"] == 0.05


def test_no_canary_group_no_canary_alarms() -> None:
    assert not [name for name in _plan(canary_target_group_arn="") if "canary" in name]
    assert not [name for name in _plan(load_balancer_arn="", canary_target_group_arn=CANARY_TG) if "canary" in name]


def test_canary_alarm_overrides_are_checked_like_the_others() -> None:
    found = errors(aws_monitoring_alarm_overrides={"canary_target_5xx_share": {"threshold": 5}})
    assert len(found) == 1 and "aws_monitoring_alarm_overrides.canary_target_5xx_share.threshold" in found[0], found
