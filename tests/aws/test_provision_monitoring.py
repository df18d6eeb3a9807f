"""The monitoring provision.yml makes (roles/aws_monitoring): the encrypted alarm topic and its subscriptions,
every alarm on the real load balancer, target group, hosts and cache, the dashboard of the same, the journal's
log group; a changed threshold, check mode and the monitoring's own teardown. (Bad input: test_bad_inputs.py.)

One provisioned environment for every test_provision_* file (the session's `lab` fixture, tests/aws/conftest.py);
this file runs after the inspections and before the teardown, and leaves the monitoring as provision.yml made it.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from provision_helpers import PREFIX, TAGS, _live_instances, _tag_filters

from ec2_fleet_dev.moto_aws import Run, cache_role_ready

pytestmark = pytest.mark.usefixtures("lab")

TOPIC = f"{PREFIX}-alarms"
LOG_GROUP = "/ec2-fleet/lab/journal"
SUBSCRIPTIONS = [
    {"protocol": "email", "endpoint": "ops@example.com"},
    {"protocol": "https", "endpoint": "https://hooks.example.com/ec2-fleet"},
]
MONITORING = {"aws_monitoring_subscriptions": SUBSCRIPTIONS, "aws_monitoring_log_retention_days": 14}
# (alarm name without the prefix, metric, comparison, threshold): the defaults of roles/aws_monitoring;
# the healthy hosts' floor is the fleet's 2 hosts (PINNED_INPUTS) minus one.
LB_ALARMS = {
    "alb-5xx-share": ("HTTPCode_ELB_5XX_Count", "GreaterThanThreshold", 0.05),
    "target-5xx-share": ("HTTPCode_Target_5XX_Count", "GreaterThanThreshold", 0.05),
    "target-response-time-p99": ("TargetResponseTime", "GreaterThanThreshold", 2.0),
    # The weighted canary's: the same two on the canary target group only.
    "canary-target-5xx-share": ("HTTPCode_Target_5XX_Count", "GreaterThanThreshold", 0.05),
    "canary-target-response-time-p99": ("TargetResponseTime", "GreaterThanThreshold", 2.0),
    "unhealthy-hosts": ("UnHealthyHostCount", "GreaterThanThreshold", 0.0),
    "healthy-hosts": ("HealthyHostCount", "LessThanThreshold", 1.0),
}
CACHE_ALARMS = {
    "engine-cpu": "EngineCPUUtilization",
    "memory": "DatabaseMemoryUsagePercentage",
    "evictions": "Evictions",
    "connections": "CurrConnections",
    "replication-lag": "ReplicationLag",
}


def _provision(run: Callable[..., Run], lab: dict, *args: str, **extra: object) -> Run:
    return run("playbooks/provision.yml", {**lab["extra"], **MONITORING, **extra}, "--tags", "aws_monitoring", *args)


# The key policy CloudWatch needs to publish to a topic the key encrypts (SNS's guide: "compatibility between
# event sources from AWS services and encrypted topics"); AWS's managed alias/aws/sns cannot have it.
KEY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "Account", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "CloudWatchAlarms", "Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"},
         "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*"},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def topic_key(client: Callable) -> str:
    """A customer managed key for the topic, as an operator makes one (the role does not create it)."""
    key = client("kms").create_key(Description="ec2-fleet lab alarms", Policy=json.dumps(KEY_POLICY))
    return key["KeyMetadata"]["Arn"]


@pytest.fixture(scope="module")
def monitored(lab: dict, run: Callable[..., Run], topic_key: str) -> dict:
    """provision.yml --tags aws_monitoring with the operators' subscriptions, a 14-day retention and the
    topic's customer managed key, twice."""
    first = _provision(run, lab, aws_monitoring_topic_kms_key=topic_key)
    assert first.rc == 0, first.tail()
    second = _provision(run, lab, aws_monitoring_topic_kms_key=topic_key)
    return {"first": first, "second": second, "key": topic_key}


def _alarms(client: Callable) -> dict[str, dict]:
    found = client("cloudwatch").describe_alarms(AlarmNamePrefix=f"{PREFIX}-")["MetricAlarms"]
    return {a["AlarmName"].removeprefix(f"{PREFIX}-"): a for a in found}


def _resources(client: Callable) -> dict:
    elb = client("elbv2")
    lb = elb.describe_load_balancers(Names=[PREFIX])["LoadBalancers"][0]["LoadBalancerArn"]
    tg = elb.describe_target_groups(Names=[f"{PREFIX}-tg"])["TargetGroups"][0]["TargetGroupArn"]
    canary = elb.describe_target_groups(Names=[f"{PREFIX}-canary"])["TargetGroups"][0]["TargetGroupArn"]
    instances = sorted(i["InstanceId"] for i in _live_instances(client("ec2"), _tag_filters(Role="web")))
    clusters = []
    if cache_role_ready():
        group = client("elasticache").describe_replication_groups(ReplicationGroupId=PREFIX)["ReplicationGroups"][0]
        clusters = sorted(group["MemberClusters"])
    return {
        "lb": lb.split(":loadbalancer/", 1)[1],
        "tg": tg.split(":", 5)[5],
        "canary_tg": canary.split(":", 5)[5],
        "instances": instances,
        "clusters": clusters,
    }


def _topic_arn(client: Callable) -> str:
    arns = [t["TopicArn"] for t in client("sns").list_topics()["Topics"] if t["TopicArn"].endswith(f":{TOPIC}")]
    assert len(arns) == 1, arns
    return arns[0]


def _dims(alarm: dict) -> dict[str, str]:
    if alarm.get("Metrics"):
        stats = [m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m]
        return {d["Name"]: d["Value"] for d in stats[0]["Dimensions"]}
    return {d["Name"]: d["Value"] for d in alarm["Dimensions"]}


def test_the_topic_is_encrypted_tagged_and_has_the_operators_subscriptions(monitored: dict, client: Callable) -> None:
    sns = client("sns")
    arn = _topic_arn(client)
    assert sns.get_topic_attributes(TopicArn=arn)["Attributes"]["KmsMasterKeyId"] == monitored["key"]
    assert {t["Key"]: t["Value"] for t in sns.list_tags_for_resource(ResourceArn=arn)["Tags"]}.items() >= TAGS.items()
    subs = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    assert sorted((s["Protocol"], s["Endpoint"]) for s in subs) == sorted(
        (s["protocol"], s["endpoint"]) for s in SUBSCRIPTIONS
    )


def test_every_alarm_watches_the_real_resources_and_notifies_the_topic(monitored: dict, client: Callable) -> None:
    alarms, res, topic = _alarms(client), _resources(client), _topic_arn(client)
    expected = set(LB_ALARMS) | {f"cpu-{i}" for i in res["instances"]}
    expected |= {f"cache-{short}-{c}" for c in res["clusters"] for short in CACHE_ALARMS}
    assert set(alarms) == expected
    assert len(res["instances"]) == 2
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [topic] and alarm["OKActions"] == [topic], name
        tags = client("cloudwatch").list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]
        assert {t["Key"]: t["Value"] for t in tags}.items() >= TAGS.items(), name
    for name, (metric, comparison, threshold) in LB_ALARMS.items():
        alarm = alarms[name]
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == (comparison, threshold), name
        dims = _dims(alarm)
        assert dims["LoadBalancer"] == res["lb"], name
        if name in ("unhealthy-hosts", "healthy-hosts", "target-5xx-share"):
            assert dims["TargetGroup"] == res["tg"], name
        if name.startswith("canary-"):
            assert dims["TargetGroup"] == res["canary_tg"], name
        if name.endswith("-share"):
            # A share of requests: errors / RequestCount (metric math), not a count.
            by_id = {m["Id"]: m for m in alarm["Metrics"]}
            assert by_id["share"]["Expression"] == "errors / requests" and by_id["share"]["ReturnData"]
            assert by_id["errors"]["MetricStat"]["Metric"]["MetricName"] == metric
            assert by_id["requests"]["MetricStat"]["Metric"]["MetricName"] == "RequestCount"
            assert by_id["errors"]["MetricStat"]["Stat"] == "Sum"
        else:
            assert alarm["MetricName"] == metric and alarm["Namespace"] == "AWS/ApplicationELB", name
    assert alarms["target-response-time-p99"]["ExtendedStatistic"] == "p99"
    assert alarms["canary-target-response-time-p99"]["ExtendedStatistic"] == "p99"
    assert alarms["unhealthy-hosts"]["EvaluationPeriods"] == 3
    assert alarms["healthy-hosts"]["TreatMissingData"] == "breaching"
    for instance in res["instances"]:
        alarm = alarms[f"cpu-{instance}"]
        assert (alarm["Namespace"], alarm["MetricName"], _dims(alarm)) == (
            "AWS/EC2",
            "CPUUtilization",
            {"InstanceId": instance},
        )
        assert (alarm["Threshold"], alarm["Period"]) == (80.0, 300)
    for cluster in res["clusters"]:
        for short, metric in CACHE_ALARMS.items():
            alarm = alarms[f"cache-{short}-{cluster}"]
            assert alarm["MetricName"] == metric and _dims(alarm)["CacheClusterId"] == cluster


def test_the_dashboard_shows_the_same_resources(monitored: dict, client: Callable) -> None:
    body = json.loads(client("cloudwatch").get_dashboard(DashboardName=PREFIX)["DashboardBody"])
    res = _resources(client)
    titles = {w["properties"]["title"] for w in body["widgets"]}
    assert titles == {f"{PREFIX}-{name}" for name in _alarms(client)}
    text = json.dumps(body)
    for value in [res["lb"], res["tg"], *res["instances"], *res["clusters"]]:
        assert value in text, value
    assert {w["properties"]["region"] for w in body["widgets"]} == {"us-east-1"}


def test_the_log_group_keeps_the_journal_for_the_retention_set(monitored: dict, client: Callable) -> None:
    logs = client("logs")
    groups = logs.describe_log_groups(logGroupNamePrefix=LOG_GROUP)["logGroups"]
    assert [(g["logGroupName"], g.get("retentionInDays")) for g in groups] == [(LOG_GROUP, 14)]
    tags = logs.list_tags_for_resource(resourceArn=groups[0]["logGroupArn"])["tags"]
    assert tags.items() >= TAGS.items()


def test_a_second_run_changes_nothing(monitored: dict) -> None:
    second = monitored["second"]
    assert second.rc == 0, second.tail()
    assert second.recap()["localhost"]["changed"] == 0, second.tail(8000)


def test_a_changed_threshold_updates_only_that_alarm(lab: dict, client: Callable, run: Callable[..., Run]) -> None:
    before = _alarms(client)
    changed = _provision(run, lab, aws_monitoring_alarm_overrides={"target_5xx_share": {"threshold": 0.02}})
    assert changed.rc == 0, changed.tail()
    after = _alarms(client)
    assert after["target-5xx-share"]["Threshold"] == 0.02
    assert {k: v["Threshold"] for k, v in after.items() if k != "target-5xx-share"} == {
        k: v["Threshold"] for k, v in before.items() if k != "target-5xx-share"
    }
    back = _provision(run, lab)
    assert back.rc == 0 and _alarms(client)["target-5xx-share"]["Threshold"] == 0.05, back.tail()


def _monitoring_state(client: Callable) -> dict:
    sns, logs = client("sns"), client("logs")
    return {
        "alarms": sorted(_alarms(client)),
        "dashboards": [d["DashboardName"] for d in client("cloudwatch").list_dashboards()["DashboardEntries"]],
        "topics": [t["TopicArn"] for t in sns.list_topics()["Topics"]],
        "subscriptions": len(sns.list_subscriptions()["Subscriptions"]),
        "log_groups": [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]],
    }


def test_teardown_check_mode_and_reprovision_of_the_monitoring(
    lab: dict, client: Callable, run: Callable[..., Run]
) -> None:
    """teardown.yml --tags aws_monitoring removes it all, a second time changes nothing; provision.yml --check
    on an account without the monitoring reports changes and creates nothing; provision puts it all back."""
    gone = run("playbooks/teardown.yml", {"teardown_confirm": "lab"}, "--tags", "aws_monitoring")
    assert gone.rc == 0 and gone.recap()["localhost"]["changed"] == 4, gone.tail()
    empty = {"alarms": [], "dashboards": [], "topics": [], "subscriptions": 0, "log_groups": []}
    assert _monitoring_state(client) == empty
    again = run("playbooks/teardown.yml", {"teardown_confirm": "lab"}, "--tags", "aws_monitoring")
    assert again.rc == 0 and again.recap()["localhost"]["changed"] == 0, again.tail()
    checked = _provision(run, lab, "--check")
    assert checked.rc == 0, checked.tail()
    assert checked.recap()["localhost"]["changed"] == 4, checked.tail()
    assert _monitoring_state(client) == empty
    back = _provision(run, lab)
    assert back.rc == 0, back.tail()
    assert len(_monitoring_state(client)["alarms"]) == len(LB_ALARMS) + 2 + 5 * len(_resources(client)["clusters"])
