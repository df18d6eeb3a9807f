# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""The aws_monitoring role's rules: what is wrong with its inputs, and the alarms and dashboard it wants.

aws_monitoring_input_errors: every problem with the aws_monitoring_* inputs, each message naming the variable
and what is allowed, so that validate.yml refuses bad input before any AWS call.
aws_monitoring_alarm_plan: the metric alarms (in the shape of CloudWatch's PutMetricAlarm) for the resources
the role looked up. aws_monitoring_dashboard: the dashboard body (one widget per alarm, the same metrics).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.ec2_fleet.fleet.plugins.plugin_utils.input_checks import as_int, matches

# Thresholds: a share of requests is 0-1 (0.05 = 5 %), a percentage 0-100, seconds and counts 0 or more.
ALARM_UNITS = {
    "alb_5xx_share": "share",
    "target_5xx_share": "share",
    "target_response_time_p99": "seconds",
    "canary_target_5xx_share": "share",
    "canary_target_response_time_p99": "seconds",
    "unhealthy_hosts": "count",
    "healthy_hosts": "count",
    "host_cpu": "percent",
    "cache_engine_cpu": "percent",
    "cache_memory": "percent",
    "cache_evictions": "count",
    "cache_connections": "count",
    "cache_replication_lag": "seconds",
    "rds_cpu": "percent",
    "rds_connections": "count",
}
ALARM_LIST = ", ".join(ALARM_UNITS)
ALARM_KEYS = ("threshold", "period", "evaluation_periods", "datapoints_to_alarm", "treat_missing_data")
MISSING_DATA = ("breaching", "notBreaching", "ignore", "missing")
PROTOCOLS = ("email", "email-json", "https", "http", "sms", "sqs", "lambda", "firehose", "application")
# CloudWatch Logs' PutRetentionPolicy accepts only these; 0 here means "never expire" (no policy).
RETENTION_DAYS = (
    0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$"
LOG_GROUP_RE = r"^[A-Za-z0-9_/.#-]{1,512}$"


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def merged_alarms(alarms: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The alarm settings with the overrides laid over them, one alarm's keys at a time."""
    merged = {name: dict(settings or {}) for name, settings in (alarms or {}).items()}
    for name, settings in (overrides or {}).items():
        merged.setdefault(name, {}).update(settings if isinstance(settings, Mapping) else {"threshold": settings})
    return merged


def _alarm_errors(name: str, settings: Any, variable: str) -> list[str]:
    where = f"{variable}.{name}"
    if name not in ALARM_UNITS:
        return [f"{where} is no alarm of this role; the alarms are {', '.join(ALARM_UNITS)}"]
    if not isinstance(settings, Mapping):
        return [f"{where} must be a dict of {', '.join(ALARM_KEYS)}"]
    e = [f"{where}.{k} is unknown; allowed: {', '.join(ALARM_KEYS)}" for k in settings if k not in ALARM_KEYS]
    missing = [k for k in ALARM_KEYS if k not in settings]
    if missing:
        return [*e, f"{where} misses {', '.join(missing)}"]
    unit, threshold = ALARM_UNITS[name], _number(settings["threshold"])
    limits = {"share": (0, 1), "percent": (0, 100), "seconds": (0, None), "count": (0, None)}[unit]
    if threshold is None or threshold < limits[0] or (limits[1] is not None and threshold > limits[1]):
        allowed = {
            "share": "a share of requests from 0 to 1 (0.05 = 5 %)",
            "percent": "a percentage from 0 to 100",
            "seconds": "seconds, 0 or more",
            "count": "a count, 0 or more",
        }[unit]
        e.append(f"{where}.threshold must be {allowed}; got {settings['threshold']!r}")
    period = as_int(settings["period"])
    if period is None or not (period in (10, 30) or (period >= 60 and period % 60 == 0)):
        e.append(f"{where}.period must be 10, 30 or a multiple of 60 seconds; got {settings['period']!r}")
    evaluations, datapoints = as_int(settings["evaluation_periods"]), as_int(settings["datapoints_to_alarm"])
    if evaluations is None or evaluations < 1:
        e.append(f"{where}.evaluation_periods must be 1 or more; got {settings['evaluation_periods']!r}")
    elif datapoints is None or not 1 <= datapoints <= evaluations:
        e.append(
            f"{where}.datapoints_to_alarm must be 1 to evaluation_periods ({evaluations}); "
            f"got {settings['datapoints_to_alarm']!r}"
        )
    if settings["treat_missing_data"] not in MISSING_DATA:
        e.append(
            f"{where}.treat_missing_data must be one of {', '.join(MISSING_DATA)}; "
            f"got {settings['treat_missing_data']!r}"
        )
    return e


def aws_monitoring_input_errors(inputs: Mapping[str, Any]) -> list[str]:
    """Every problem with the aws_monitoring_* inputs (a map of each variable's name to its value)."""
    v = inputs
    e: list[str] = []

    def got(name: str) -> str:
        return f"got {v[name]!r}"

    if not matches(NAME_RE, v["aws_monitoring_name_prefix"]):
        e.append(
            "aws_monitoring_name_prefix must be letters, digits, '-', '_' or '.'; " + got("aws_monitoring_name_prefix")
        )
    if not matches(r"^[A-Za-z0-9_-]{1,256}$", v["aws_monitoring_topic_name"]):
        e.append(
            "aws_monitoring_topic_name must be 1-256 letters, digits, '-' or '_'; " + got("aws_monitoring_topic_name")
        )
    if not matches(r"^[A-Za-z0-9_-]{1,255}$", v["aws_monitoring_dashboard_name"]):
        e.append(
            "aws_monitoring_dashboard_name must be 1-255 letters, digits, '-' or '_'; "
            + got("aws_monitoring_dashboard_name")
        )
    if not matches(LOG_GROUP_RE, v["aws_monitoring_log_group_name"]):
        e.append(
            "aws_monitoring_log_group_name must be 1-512 letters, digits and _ / . # -; "
            f"got {v['aws_monitoring_log_group_name']!r}"
        )
    if v["aws_monitoring_state"] == "absent":
        return e
    key = str(v.get("aws_monitoring_topic_kms_key") or "")
    if key == "alias/aws/sns" or key.endswith(":alias/aws/sns"):
        e.append(
            "aws_monitoring_topic_kms_key must not be AWS's managed key for SNS (alias/aws/sns): CloudWatch alarms "
            "cannot publish to a topic it encrypts (its key policy cannot let cloudwatch.amazonaws.com use it), so "
            "every notification would be dropped; give a customer managed key whose key policy allows "
            "cloudwatch.amazonaws.com kms:Decrypt and kms:GenerateDataKey*, or '' (not encrypted); " + f"got {key!r}"
        )
    subscriptions = v["aws_monitoring_subscriptions"]
    if not isinstance(subscriptions, list):
        e.append("aws_monitoring_subscriptions must be a list of {protocol, endpoint}")
        subscriptions = []
    for i, sub in enumerate(subscriptions):
        if not isinstance(sub, Mapping) or not str(sub.get("endpoint") or ""):
            e.append(f"aws_monitoring_subscriptions[{i}] must be a dict with a protocol and a non-empty endpoint")
        elif sub.get("protocol") not in PROTOCOLS:
            e.append(
                f"aws_monitoring_subscriptions[{i}].protocol must be one of {', '.join(PROTOCOLS)}; "
                f"got {sub.get('protocol')!r}"
            )
    retention = as_int(v["aws_monitoring_log_retention_days"])
    if retention not in RETENTION_DAYS:
        e.append(
            "aws_monitoring_log_retention_days must be one of CloudWatch Logs' values "
            f"{', '.join(map(str, RETENTION_DAYS))} (0: never expire); got {v['aws_monitoring_log_retention_days']!r}"
        )
    floor = as_int(v["aws_monitoring_healthy_hosts_floor"])
    if floor is None or floor < 1:
        e.append(
            "aws_monitoring_healthy_hosts_floor must be 1 or more hosts; " + got("aws_monitoring_healthy_hosts_floor")
        )
    for variable in ("aws_monitoring_alarms", "aws_monitoring_alarm_overrides"):
        if not isinstance(v[variable], Mapping):
            e.append(f"{variable} must be a dict of alarm name to settings")
    if e and any("aws_monitoring_alarm" in m for m in e):
        return e
    overrides = v["aws_monitoring_alarm_overrides"]
    for name in overrides:
        if name not in ALARM_UNITS:
            e.append(f"aws_monitoring_alarm_overrides.{name} is no alarm of this role; the alarms are {ALARM_LIST}")
    merged = merged_alarms(v["aws_monitoring_alarms"], overrides)
    for name, settings in merged.items():
        if name in ALARM_UNITS:
            variable = "aws_monitoring_alarm_overrides" if name in overrides else "aws_monitoring_alarms"
            e += _alarm_errors(name, settings, variable)
        elif name not in overrides:
            e.append(f"aws_monitoring_alarms.{name} is no alarm of this role; the alarms are {', '.join(ALARM_UNITS)}")
    return e


# --- the alarms ---------------------------------------------------------------------------------------


def arn_suffix(arn: str, marker: str) -> str:
    """The dimension value CloudWatch uses: app/NAME/ID of a load balancer, targetgroup/NAME/ID of a target group."""
    found = re.search(rf"(?:^|:|/)({marker}/[^/]+/[^/]+)$", arn or "")
    return found.group(1) if found else ""


def _dims(**dims: str) -> list[dict[str, str]]:
    return [{"Name": k, "Value": str(v)} for k, v in dims.items()]


def _alarm(name: str, description: str, settings: Mapping[str, Any], comparison: str, **metric: Any) -> dict[str, Any]:
    alarm = {
        "AlarmName": name,
        "AlarmDescription": description,
        "ComparisonOperator": comparison,
        "Threshold": float(settings["threshold"]),
        "EvaluationPeriods": int(settings["evaluation_periods"]),
        "DatapointsToAlarm": int(settings["datapoints_to_alarm"]),
        "TreatMissingData": settings["treat_missing_data"],
    }
    if "Metrics" not in metric:
        metric["Period"] = int(settings["period"])
    alarm.update(metric)
    return alarm


def _share(name: str, description: str, settings: Mapping[str, Any], errors: str, dims: list[dict]) -> dict:
    period = int(settings["period"])

    def stat(metric_id: str, metric_name: str) -> dict[str, Any]:
        return {
            "Id": metric_id,
            "MetricStat": {
                "Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": metric_name, "Dimensions": dims},
                "Period": period,
                "Stat": "Sum",
            },
            "ReturnData": False,
        }

    metrics = [
        # No request in a period: no share (missing data), not a division by zero.
        {"Id": "share", "Expression": "errors / requests", "Label": f"{errors} / RequestCount", "ReturnData": True},
        stat("errors", errors),
        stat("requests", "RequestCount"),
    ]
    return _alarm(name, description, settings, "GreaterThanThreshold", Metrics=metrics)


def _plain(name, description, settings, comparison, namespace, metric_name, dims, statistic="Average") -> dict:
    stat = {"ExtendedStatistic": statistic} if re.match(r"^p\d", statistic) else {"Statistic": statistic}
    return _alarm(
        name, description, settings, comparison, Namespace=namespace, MetricName=metric_name, Dimensions=dims, **stat
    )


def aws_monitoring_alarm_plan(resources: Mapping[str, Any], settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The metric alarms for the resources found: resources has prefix, load_balancer_arn, target_group_arn,
    canary_target_group_arn (optional: the weighted canary's group, whose alarms gate each step), instance_ids,
    cache_clusters (the replication group's member clusters), rds_instance_id, healthy_hosts_floor;
    settings is aws_monitoring_alarms merged with the overrides. Actions are added by the role."""
    p = resources["prefix"]
    lb = arn_suffix(resources["load_balancer_arn"], "app")
    tg = arn_suffix(resources["target_group_arn"], "targetgroup")
    lb_dims, tg_dims = _dims(LoadBalancer=lb), _dims(TargetGroup=tg, LoadBalancer=lb)
    s = settings
    elb = "AWS/ApplicationELB"
    alarms: list[dict[str, Any]] = []
    if lb:
        alarms += [
            _share(f"{p}-alb-5xx-share", "Share of requests the load balancer answered 5xx (0-1)",
                   s["alb_5xx_share"], "HTTPCode_ELB_5XX_Count", lb_dims),
            _share(f"{p}-target-5xx-share", "Share of requests the targets answered 5xx (0-1)",
                   s["target_5xx_share"], "HTTPCode_Target_5XX_Count", tg_dims if tg else lb_dims),
            _plain(f"{p}-target-response-time-p99", "p99 target response time, seconds",
                   s["target_response_time_p99"], "GreaterThanThreshold", elb, "TargetResponseTime", lb_dims, "p99"),
        ]  # fmt: skip
    canary = arn_suffix(resources.get("canary_target_group_arn") or "", "targetgroup")
    if lb and canary:
        # The main alarms' metric math and statistics, on the canary target group only: what the canary hosts
        # answered, not diluted by the main group's requests.
        canary_dims = _dims(TargetGroup=canary, LoadBalancer=lb)
        alarms += [
            _share(f"{p}-canary-target-5xx-share", "Share of requests the canary targets answered 5xx (0-1)",
                   s["canary_target_5xx_share"], "HTTPCode_Target_5XX_Count", canary_dims),
            _plain(f"{p}-canary-target-response-time-p99", "p99 response time of the canary targets, seconds",
                   s["canary_target_response_time_p99"], "GreaterThanThreshold", elb, "TargetResponseTime",
                   canary_dims, "p99"),
        ]  # fmt: skip
    if lb and tg:
        floor = dict(s["healthy_hosts"], threshold=resources["healthy_hosts_floor"])
        alarms += [
            _plain(f"{p}-unhealthy-hosts", "Unhealthy targets in the target group", s["unhealthy_hosts"],
                   "GreaterThanThreshold", elb, "UnHealthyHostCount", tg_dims, "Maximum"),
            _plain(f"{p}-healthy-hosts", "Healthy targets below the fleet's floor", floor, "LessThanThreshold",
                   elb, "HealthyHostCount", tg_dims, "Minimum"),
        ]  # fmt: skip
    for instance in resources.get("instance_ids") or []:
        alarms.append(
            _plain(f"{p}-cpu-{instance}", f"CPU of host {instance}, percent", s["host_cpu"], "GreaterThanThreshold",
                   "AWS/EC2", "CPUUtilization", _dims(InstanceId=instance))
        )  # fmt: skip
    cache = [
        ("cache_engine_cpu", "engine-cpu", "EngineCPUUtilization", "Average", "Redis engine CPU, percent"),
        ("cache_memory", "memory", "DatabaseMemoryUsagePercentage", "Average", "Redis memory used, percent"),
        ("cache_evictions", "evictions", "Evictions", "Sum", "Keys evicted for lack of memory"),
        ("cache_connections", "connections", "CurrConnections", "Maximum", "Client connections"),
        ("cache_replication_lag", "replication-lag", "ReplicationLag", "Maximum", "Replica lag, seconds"),
    ]
    for cluster in resources.get("cache_clusters") or []:
        dims = _dims(CacheClusterId=cluster, CacheNodeId="0001")
        for key, short, metric, stat, what in cache:
            alarms.append(
                _plain(f"{p}-cache-{short}-{cluster}", f"{what} ({cluster})", s[key], "GreaterThanThreshold",
                       "AWS/ElastiCache", metric, dims, stat)
            )  # fmt: skip
    rds = resources.get("rds_instance_id") or ""
    if rds:
        dims = _dims(DBInstanceIdentifier=rds)
        alarms += [
            _plain(f"{p}-rds-cpu", f"CPU of the database {rds}, percent", s["rds_cpu"], "GreaterThanThreshold",
                   "AWS/RDS", "CPUUtilization", dims),
            _plain(f"{p}-rds-connections", f"Connections to the database {rds}", s["rds_connections"],
                   "GreaterThanThreshold", "AWS/RDS", "DatabaseConnections", dims, "Maximum"),
        ]  # fmt: skip
    return alarms


def aws_monitoring_dashboard(alarms: list[Mapping[str, Any]], region: str) -> dict[str, Any]:
    """A dashboard body: one metric widget per alarm, the alarm's own metrics and its threshold as a line."""
    widgets = []
    for i, alarm in enumerate(alarms):
        if alarm.get("Metrics"):
            metrics: list[list[Any]] = []
            for m in alarm["Metrics"]:
                if "Expression" in m:
                    metrics.append([{"expression": m["Expression"], "label": m.get("Label", m["Id"]), "id": m["Id"]}])
                else:
                    stat = m["MetricStat"]
                    metric = stat["Metric"]
                    dims = [x for d in metric["Dimensions"] for x in (d["Name"], d["Value"])]
                    options = {"id": m["Id"], "stat": stat["Stat"], "period": stat["Period"], "visible": False}
                    metrics.append([metric["Namespace"], metric["MetricName"], *dims, options])
            period = alarm["Metrics"][1]["MetricStat"]["Period"]
        else:
            dims = [x for d in alarm["Dimensions"] for x in (d["Name"], d["Value"])]
            stat = alarm.get("ExtendedStatistic") or alarm.get("Statistic")
            metrics = [[alarm["Namespace"], alarm["MetricName"], *dims, {"stat": stat, "period": alarm["Period"]}]]
            period = alarm["Period"]
        widgets.append(
            {
                "type": "metric",
                "x": (i % 2) * 12,
                "y": (i // 2) * 6,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": alarm["AlarmName"],
                    "region": region,
                    "view": "timeSeries",
                    "stacked": False,
                    "period": period,
                    "metrics": metrics,
                    "annotations": {
                        "horizontal": [{"label": alarm["ComparisonOperator"], "value": alarm["Threshold"]}]
                    },
                },
            }
        )
    return {"widgets": widgets}


class FilterModule:
    """Filters: aws_monitoring_input_errors, aws_monitoring_alarms_merged, aws_monitoring_alarm_plan,
    aws_monitoring_dashboard."""

    def filters(self) -> dict:
        return {
            "aws_monitoring_input_errors": aws_monitoring_input_errors,
            "aws_monitoring_alarms_merged": merged_alarms,
            "aws_monitoring_alarm_plan": aws_monitoring_alarm_plan,
            "aws_monitoring_dashboard": aws_monitoring_dashboard,
        }
