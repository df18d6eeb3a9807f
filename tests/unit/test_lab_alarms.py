"""The lab's alarm evaluation (devkit lab/alarms.py) and its metrics' arithmetic (lab/metrics.py): statistics
and percentiles, metric math, M out of N, each TreatMissingData, CloudWatch's reason text; the alarms are
shaped by aws_monitoring's own plan."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.aws_monitoring import aws_monitoring_alarm_plan
from validation_support import role_defaults

from ec2_fleet_dev.lab import alarms
from ec2_fleet_dev.lab.metrics import MetricStore, Request, aggregate, parse

LB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/ec2-fleet-lab/50dc6c495c0c9188"
TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/ec2-fleet-lab-tg/73e2d6bc24d8a067"
LB_DIMS = (("LoadBalancer", "app/ec2-fleet-lab/50dc6c495c0c9188"),)
TG_DIMS = (("TargetGroup", "targetgroup/ec2-fleet-lab-tg/73e2d6bc24d8a067"),
           ("LoadBalancer", "app/ec2-fleet-lab/50dc6c495c0c9188"))  # as published (the store sorts them)
T0 = 1_796_513_400  # 2026-12-05 23:30:00 UTC, a multiple of 10 and 60


def plan(**overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    settings = {**role_defaults("aws_monitoring")["aws_monitoring_alarms"], **overrides}
    resources = {"prefix": "lab", "load_balancer_arn": LB, "target_group_arn": TG, "instance_ids": ["i-1"],
                 "cache_clusters": [], "rds_instance_id": "", "healthy_hosts_floor": 2}  # fmt: skip
    return {a["AlarmName"]: {**a, "StateValue": "INSUFFICIENT_DATA"} for a in aws_monitoring_alarm_plan(resources,
                                                                                                          settings)}


SHARE = {"threshold": 0.05, "period": 10, "evaluation_periods": 3, "datapoints_to_alarm": 2,
         "treat_missing_data": "notBreaching"}  # fmt: skip


def store_with(periods: dict[int, tuple[int, int]], period: int = 10) -> MetricStore:
    """periods: period index (0 = the newest complete one before T0) -> (requests, target 5xx), spread per second."""
    store = MetricStore()
    for k, (requests, errors) in periods.items():
        start = T0 - (k + 1) * period
        for i in range(requests):
            status = 500 if i < errors else 200
            r = Request("lab-alb-https", "tg-x", "i-1-8000", status, 12, 13, "--")
            for dims, metrics in aggregate([r], {"tg-x": TG}, {"lab-alb-https": LB}).items():
                for name, values in metrics.items():
                    store.add("AWS/ApplicationELB", name, tuple(sorted(dims)), start + i % period, values)
    return store


def test_parse_reads_haproxy_log_lines_and_skips_others() -> None:
    line = "<134>Dec  5 23:10:00 haproxy[1]: lab-alb-request lab-alb-https tg-web i-0abc-8000 500 7 9 --"
    assert parse(line) == Request("lab-alb-https", "tg-web", "i-0abc-8000", 500, 7, 9, "--")
    assert parse("lab-alb-request lab-alb-https tg-web <NOSRV> 503 -1 0 SC").server is None
    assert parse("Proxy lab-alb-https started.") is None
    assert parse("lab-alb-request a b c notanumber 1 2 --") is None


def test_aggregate_splits_target_and_lb_5xx_per_dimension_set() -> None:
    requests = [
        Request("lab-alb-https", "tg-x", "s1", 200, 10, 11, "--"),
        Request("lab-alb-https", "tg-x", "s1", 500, 30, 31, "--"),
        Request("lab-alb-https", "tg-x", None, 503, -1, 0, "SC"),  # no server: the load balancer's 5xx
        Request("lab-alb-http", "lab-alb-http", None, 301, -1, 0, "LR"),  # a redirect: counted, no target group
        Request("other", "tg-x", "s1", 200, 1, 1, "--"),  # no load balancer plays this frontend
    ]
    got = aggregate(requests, {"tg-x": TG}, {"lab-alb-https": LB, "lab-alb-http": LB})
    assert got[LB_DIMS]["RequestCount"] == Counter({4.0: 1})
    assert got[LB_DIMS]["HTTPCode_Target_5XX_Count"] == Counter({1.0: 1})
    assert got[LB_DIMS]["HTTPCode_ELB_5XX_Count"] == Counter({1.0: 1})
    assert got[LB_DIMS]["HTTPCode_Target_2XX_Count"] == Counter({1.0: 1})
    assert got[TG_DIMS]["RequestCount"] == Counter({3.0: 1})
    assert "HTTPCode_ELB_5XX_Count" not in got[TG_DIMS]  # as on AWS: per load balancer only
    assert got[TG_DIMS]["TargetResponseTime"] == Counter({0.01: 1, 0.03: 1})


@pytest.mark.parametrize(
    ("stat", "expected"),
    [("Sum", 113.0), ("Average", 11.3), ("Minimum", 1.0), ("Maximum", 100.0), ("SampleCount", 10.0),
     ("p50", 1.0), ("p90", 5.0), ("p99", 100.0), ("p100", 100.0)],
)  # fmt: skip
def test_statistics_and_nearest_rank_percentiles(stat: str, expected: float) -> None:
    values = [(1.0, 8), (5.0, 1), (100.0, 1)]  # 10 samples
    assert alarms.statistic(values, stat) == pytest.approx(expected)
    assert alarms.statistic([], stat) is None


@pytest.mark.parametrize(
    ("expression", "expected"),
    [("errors / requests", 0.25), ("a + b * 2", 7.0), ("(a + b) * 2", 8.0), ("-a + 10", 9.0),
     ("100 * errors / requests", 25.0), ("a - b - 1", -3.0), ("errors / zero", None), ("errors / nothing", None)],
)  # fmt: skip
def test_metric_math(expression: str, expected: float | None) -> None:
    values = {"errors": 5.0, "requests": 20.0, "a": 1.0, "b": 3.0, "zero": 0.0, "nothing": None}
    assert alarms.calculate(expression, values) == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize("expression", ["errors ** 2", "__import__('os')", "errors / (requests", "errors +",
                                        "unknown / 2", "errors requests"])  # fmt: skip
def test_metric_math_refuses_what_it_does_not_support(expression: str) -> None:
    with pytest.raises(ValueError, match="metric math"):
        alarms.calculate(expression, {"errors": 1.0, "requests": 2.0})


def test_target_5xx_share_alarm_of_the_monitoring_plan_fires_on_2_of_3_with_the_reason() -> None:
    alarm = plan(target_5xx_share=SHARE)["lab-target-5xx-share"]
    assert alarms.evaluable(alarm)
    # Newest first: 10 % errors, 0 %, 20 %: 2 of the last 3 above 0.05.
    store = store_with({0: (20, 2), 1: (20, 0), 2: (10, 2)})
    points = alarms.datapoints(alarm, store, now=T0 + 3, lag=3)
    assert points == [(T0 - 10, 0.1), (T0 - 20, 0.0), (T0 - 30, 0.2)]
    decision = alarms.decide(alarm, points, now=T0 + 3)
    assert decision.state == "ALARM"
    assert decision.reason == (
        "Threshold Crossed: 2 out of the last 3 datapoints [0.1 (05/12/26 23:29:50), 0.2 (05/12/26 23:29:30)] "
        "were greater than the threshold (0.05) (minimum 2 datapoints for OK -> ALARM transition)."
    )
    assert decision.reason_data["evaluatedDatapoints"][0] == {"timestamp": "2026-12-05T23:29:50.000+0000",
                                                              "value": 0.1}  # fmt: skip
    assert decision.reason_data["threshold"] == 0.05 and decision.reason_data["period"] == 10
    # One bad period of three is not enough (M = 2).
    one = alarms.decide(alarm, alarms.datapoints(alarm, store_with({0: (20, 2), 1: (20, 0), 2: (20, 0)}),
                                                 T0 + 3, 3), T0 + 3)  # fmt: skip
    assert one.state == "OK"
    assert one.reason.startswith("Threshold Crossed: 2 out of the last 3 datapoints [0.0 (05/12/26 23:29:40), 0.0")
    assert "were not greater than the threshold (0.05)" in one.reason


def test_periods_not_yet_published_are_not_evaluated() -> None:
    alarm = plan(target_5xx_share=SHARE)["lab-target-5xx-share"]
    # At T0 + 5 with a lag of 6 the period ending at T0 may still be unpublished: the newest is T0 - 20.
    assert [t for t, _ in alarms.datapoints(alarm, MetricStore(), now=T0 + 5, lag=6)] == [T0 - 20, T0 - 30, T0 - 40]


def test_p99_response_time_alarm_uses_the_percentile_of_every_sample() -> None:
    alarm = plan(target_response_time_p99={**SHARE, "threshold": 0.5, "datapoints_to_alarm": 1})[
        "lab-target-response-time-p99"]
    assert alarm["ExtendedStatistic"] == "p99"
    store = MetricStore()
    start = T0 - 10
    store.add("AWS/ApplicationELB", "TargetResponseTime", LB_DIMS, start, Counter({0.01: 98}))
    store.add("AWS/ApplicationELB", "TargetResponseTime", LB_DIMS, start + 1, Counter({0.9: 2}))
    points = alarms.datapoints(alarm, store, T0, 0)
    assert points[0] == (start, 0.9)  # 2 of 100 above 0.5: the p99 is 0.9, the average would be 0.0278
    assert alarms.decide(alarm, points, T0).state == "ALARM"
    store.add("AWS/ApplicationELB", "TargetResponseTime", LB_DIMS, start + 2, Counter({0.01: 200}))
    assert alarms.datapoints(alarm, store, T0, 0)[0] == (start, 0.01)


def point(marks: str) -> list[tuple[int, float | None]]:
    """AWS's notation, oldest first: X breaching (1.0), 0 not breaching (0.0), - missing; returned newest first."""
    values = {"X": 1.0, "0": 0.0, "-": None}
    return [(T0 - 10 * (k + 1), values[c]) for k, c in enumerate(reversed(marks.split()))]


# AWS's table (DatapointsToAlarm 3, EvaluationPeriods 5), "Configuring how CloudWatch alarms treat missing data".
@pytest.mark.parametrize(
    ("marks", "missing", "ignore", "breaching", "not_breaching"),
    [
        ("0 - X - X", "OK", "OK", "ALARM", "OK"),
        ("- - - - 0", "OK", "OK", "ALARM", "OK"),
        ("- - - - -", "INSUFFICIENT_DATA", "", "ALARM", "OK"),
        ("0 X X - X", "ALARM", "ALARM", "ALARM", "ALARM"),
        ("- - X - -", "ALARM", "", "ALARM", "OK"),
    ],
)  # fmt: skip
def test_treat_missing_data_as_aws_documents_it(marks: str, missing: str, ignore: str, breaching: str,
                                                 not_breaching: str) -> None:
    base = {"AlarmName": "x", "Namespace": "AWS/ApplicationELB", "MetricName": "RequestCount", "Statistic": "Sum",
            "Period": 10, "EvaluationPeriods": 5, "DatapointsToAlarm": 3, "Threshold": 0.5,
            "ComparisonOperator": "GreaterThanThreshold"}  # fmt: skip
    got = {treat: alarms.decide({**base, "TreatMissingData": treat}, point(marks), T0).state
           for treat in ("missing", "ignore", "breaching", "notBreaching")}  # fmt: skip
    assert got == {"missing": missing, "ignore": ignore, "breaching": breaching, "notBreaching": not_breaching}


def test_insufficient_data_reason_and_comparison_words() -> None:
    base = {"AlarmName": "x", "Namespace": "AWS/ApplicationELB", "MetricName": "HealthyHostCount",
            "Statistic": "Minimum", "Period": 10, "EvaluationPeriods": 1, "DatapointsToAlarm": 1, "Threshold": 2,
            "ComparisonOperator": "LessThanThreshold", "TreatMissingData": "missing"}  # fmt: skip
    assert alarms.decide(base, [(T0 - 10, None)], T0).reason == "Insufficient Data: 1 datapoint was unknown."
    low = alarms.decide(base, [(T0 - 10, 1.0)], T0)
    assert low.state == "ALARM"
    assert low.reason == ("Threshold Crossed: 1 out of the last 1 datapoint [1.0 (05/12/26 23:29:50)] was less than "
                          "the threshold (2.0) (minimum 1 datapoint for OK -> ALARM transition).")  # fmt: skip
    assert alarms.decide({**base, "ComparisonOperator": "LessThanOrEqualToThreshold"}, [(T0 - 10, 2.0)],
                         T0).state == "ALARM"  # fmt: skip
    assert alarms.decide({**base, "ComparisonOperator": "GreaterThanOrEqualToThreshold"}, [(T0 - 10, 2.0)],
                         T0).state == "ALARM"  # fmt: skip


def test_only_alarms_on_published_metrics_are_evaluated() -> None:
    alarms_by_name = plan()
    assert alarms.evaluable(alarms_by_name["lab-alb-5xx-share"])
    assert alarms.evaluable(alarms_by_name["lab-unhealthy-hosts"])
    assert alarms.evaluable(alarms_by_name["lab-healthy-hosts"])
    assert not alarms.evaluable(alarms_by_name["lab-cpu-i-1"])  # AWS/EC2: left as moto has it
    assert not alarms.evaluable({**alarms_by_name["lab-unhealthy-hosts"], "MetricName": "ActiveConnectionCount"})


class FakeCloudWatch:
    """Only for evaluate_all's bookkeeping (which alarm it sets, once); the lab test drives real moto."""

    def __init__(self, alarm: dict[str, Any]) -> None:
        self.alarm, self.calls = alarm, []

    def describe_alarms(self, **_: Any) -> dict[str, Any]:
        return {"MetricAlarms": [self.alarm]}

    def set_alarm_state(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        self.alarm["StateValue"] = kwargs["StateValue"]


def test_evaluate_all_sets_a_state_only_when_it_changes() -> None:
    alarm = plan(target_5xx_share=SHARE)["lab-target-5xx-share"]
    cw = FakeCloudWatch(alarm)
    store = store_with({0: (20, 4), 1: (20, 4)})
    assert alarms.evaluate_all(cw, store, lag=0, now=T0) == {"lab-target-5xx-share": "ALARM"}
    assert alarms.evaluate_all(cw, store, lag=0, now=T0) == {}
    assert len(cw.calls) == 1 and cw.calls[0]["StateReason"].startswith("Threshold Crossed: 2 out of the last 3")


def test_metrics_dimension_values_are_the_monitoring_plans() -> None:
    from ansible_collections.ec2_fleet.fleet.plugins.filter.aws_monitoring import arn_suffix as plan_suffix

    from ec2_fleet_dev.lab.metrics import arn_suffix

    assert arn_suffix(LB, "app") == plan_suffix(LB, "app") == "app/ec2-fleet-lab/50dc6c495c0c9188"
    assert arn_suffix(TG, "targetgroup") == plan_suffix(TG, "targetgroup") == TG_DIMS[0][1]


@pytest.mark.parametrize("field", ["metrics_seconds", "alarm_seconds"])
@pytest.mark.parametrize("value", [0.5, 61.0])
def test_lab_settings_of_the_loops_are_bounded(field: str, value: float) -> None:
    from ec2_fleet_dev.lab.config import LabConfig

    with pytest.raises(ValueError, match=f"EC2_FLEET_LAB_{field.upper()} must be 1-60 seconds"):
        LabConfig(**{field: value}).validate()


# --- notifications (the alarm's actions), against moto's SNS and SQS in-process ----------------------------


@pytest.fixture
def topic() -> Any:
    """An SNS topic with an SQS queue subscribed to it (what an operator's https or email subscription gets)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        sns, sqs = boto3.client("sns", region_name="eu-west-1"), boto3.client("sqs", region_name="eu-west-1")
        arn = sns.create_topic(Name="lab-alarms")["TopicArn"]
        queue = sqs.create_queue(QueueName="ops")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)

        def received() -> list[dict[str, Any]]:
            out = []
            for _ in range(10):  # bounded: 10 messages a read
                messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
                out += [json.loads(m["Body"]) for m in messages]
                if not messages:
                    return out
            return out

        yield {"sns": sns, "arn": arn, "received": received, "cloudwatch": boto3.client("cloudwatch", "eu-west-1")}


def firing(topic_arn: str) -> tuple[dict[str, Any], alarms.Decision]:
    alarm = {**plan(target_5xx_share=SHARE)["lab-target-5xx-share"], "StateValue": "OK",
             "AlarmActions": [topic_arn], "OKActions": [topic_arn],
             "AlarmArn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:lab-target-5xx-share"}  # fmt: skip
    store = store_with({0: (20, 2), 1: (20, 0), 2: (10, 2)})
    return alarm, alarms.decide(alarm, alarms.datapoints(alarm, store, now=T0 + 3, lag=3), now=T0 + 3)


def test_a_change_to_alarm_notifies_the_topic_as_cloudwatch_does(topic: dict[str, Any]) -> None:
    alarm, decision = firing(topic["arn"])
    assert alarms.notify(topic["sns"], alarm, decision, "eu-west-1", T0 + 3) == [topic["arn"]]
    [envelope] = topic["received"]()
    assert envelope["Subject"] == 'ALARM: "lab-target-5xx-share" in EU (Ireland)'
    message = json.loads(envelope["Message"])
    assert message["NewStateValue"] == "ALARM" and message["OldStateValue"] == "OK"
    assert message["NewStateReason"] == decision.reason
    assert message["AWSAccountId"] == "123456789012" and message["Region"] == "EU (Ireland)"
    assert message["StateChangeTime"] == "2026-12-05T23:30:03.000+0000"
    trigger = message["Trigger"]
    assert trigger["Threshold"] == 0.05 and trigger["EvaluationPeriods"] == 3 and trigger["DatapointsToAlarm"] == 2
    assert trigger["TreatMissingData"] == "notBreaching"
    assert [m["Id"] for m in trigger["Metrics"]] == [m["Id"] for m in alarm["Metrics"]]  # metric math: its queries


def test_the_p99_alarm_notification_names_its_metric_statistic_and_dimensions(topic: dict[str, Any]) -> None:
    alarm = {**plan()["lab-target-response-time-p99"], "StateValue": "OK", "AlarmActions": [topic["arn"]]}
    decision = alarms.Decision("ALARM", "Threshold Crossed: ...", {})
    alarms.notify(topic["sns"], alarm, decision, "us-east-1", T0)
    trigger = json.loads(topic["received"]()[0]["Message"])["Trigger"]
    assert trigger["MetricName"] == "TargetResponseTime" and trigger["Namespace"] == "AWS/ApplicationELB"
    assert trigger["StatisticType"] == "ExtendedStatistic" and trigger["ExtendedStatistic"] == "p99"
    assert trigger["Dimensions"] == [{"value": LB_DIMS[0][1], "name": "LoadBalancer"}]


def test_no_notification_without_enabled_actions_or_through_the_sns_managed_key(topic: dict[str, Any]) -> None:
    alarm, decision = firing(topic["arn"])
    assert alarms.notify(topic["sns"], {**alarm, "ActionsEnabled": False}, decision, "eu-west-1", T0) == []
    assert alarms.notify(topic["sns"], {**alarm, "AlarmActions": []}, decision, "eu-west-1", T0) == []
    # The topic's OKActions are not the ALARM state's.
    assert alarms.notify(topic["sns"], {**alarm, "AlarmActions": [], "OKActions": [topic["arn"]]}, decision,
                         "eu-west-1", T0) == []  # fmt: skip
    # A topic that no longer exists, and one AWS's managed key encrypts (CloudWatch cannot use it): dropped.
    gone = topic["arn"].replace("lab-alarms", "deleted")
    assert alarms.notify(topic["sns"], {**alarm, "AlarmActions": [gone]}, decision, "eu-west-1", T0) == []
    topic["sns"].set_topic_attributes(TopicArn=topic["arn"], AttributeName="KmsMasterKeyId",
                                      AttributeValue="alias/aws/sns")  # fmt: skip
    assert alarms.notify(topic["sns"], alarm, decision, "eu-west-1", T0) == []
    assert topic["received"]() == []


def test_evaluate_all_notifies_each_change_once(topic: dict[str, Any]) -> None:
    cw = topic["cloudwatch"]
    alarm = plan(target_5xx_share=SHARE)["lab-target-5xx-share"]
    cw.put_metric_alarm(**{k: v for k, v in alarm.items() if k != "StateValue"},
                        AlarmActions=[topic["arn"]], OKActions=[topic["arn"]])  # fmt: skip
    store = store_with({0: (20, 4), 1: (20, 4)})
    assert alarms.evaluate_all(cw, store, lag=0, now=T0, sns=topic["sns"], region="eu-west-1") == {
        "lab-target-5xx-share": "ALARM"}  # fmt: skip
    assert alarms.evaluate_all(cw, store, lag=0, now=T0, sns=topic["sns"], region="eu-west-1") == {}
    got: list[dict[str, Any]] = []
    for _ in range(50):  # the notification is sent from its own thread: up to 5 s
        got += topic["received"]()
        if got:
            break
        time.sleep(0.1)
    assert [json.loads(m["Message"])["NewStateValue"] for m in got] == ["ALARM"]
    time.sleep(0.3)
    assert topic["received"]() == []
