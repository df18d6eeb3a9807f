"""Metric alarms evaluated the way CloudWatch does, for the metrics the lab publishes (metrics.py).

moto stores alarms and metrics but evaluates nothing. Every EC2_FLEET_LAB_ALARM_SECONDS (default 5) the
controller calls `evaluate_all`: for every metric alarm in moto (describe_alarms, paginated) whose
metrics are all ones the lab publishes (namespace AWS/ApplicationELB, metrics.PUBLISHED), it computes the
last EvaluationPeriods datapoints of `Period` seconds (aligned on multiples of the period, as CloudWatch
aligns them; the newest period is the last one that ended at least `lag` seconds ago, so metrics.py has
published it), each period's statistic (Sum, Average, Minimum, Maximum, SampleCount or an
ExtendedStatistic pNN), metric math for the `Metrics` form (+ - * / and parentheses over ids and numbers,
parsed here, no eval), compares them with the threshold, applies DatapointsToAlarm of EvaluationPeriods
("M out of N") and TreatMissingData, and on a change of state calls set_alarm_state with a StateReason
and StateReasonData like CloudWatch's. Other alarms (other namespaces, metrics the lab does not publish,
anomaly detection) are left as moto has them.

moto does not notify either. On each change of state the lab does what CloudWatch does with the alarm's
actions: when ActionsEnabled, every SNS topic ARN of the new state's actions (AlarmActions, OKActions,
InsufficientDataActions) gets CloudWatch's notification (`notification`: the subject
`ALARM: "name" in US East (N. Virginia)` and the JSON message with NewStateValue, NewStateReason,
OldStateValue and the Trigger), published to moto's SNS, which delivers it to the topic's SQS and
HTTP(S) subscriptions. A topic that does not exist, or that AWS's managed key alias/aws/sns encrypts
(CloudWatch cannot use that key), gets nothing: the lab logs the dropped notification, as CloudWatch
records a failed action in the alarm's history and tells nobody. Actions of other kinds (Auto Scaling,
EC2, Systems Manager) are not run.

The datapoints come from the lab's own store of what metrics.py published (the same numbers), not from
moto: moto 5's get_metric_statistics starts its periods at the first datapoint instead of aligning them
and matches dimensions as a subset, its get_metric_data drops the namespace when dimensions are given,
and neither computes percentiles (ExtendedStatistics).

Missing data follows AWS's table ("Configuring how CloudWatch alarms treat missing data"): `breaching`
and `notBreaching` count a missing datapoint as such; `missing`: all missing is INSUFFICIENT_DATA, fewer
present datapoints than DatapointsToAlarm go to ALARM only if every present one breaches, else M
breaching ones are ALARM; `ignore` is `missing` except that it keeps the current state where `missing`
would go to INSUFFICIENT_DATA or to ALARM on fewer than M datapoints. (CloudWatch also looks further back
than N periods to find datapoints when some are missing; the lab does not.)
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ec2_fleet_dev.lab.metrics import NAMESPACE, PUBLISHED, MetricStore, dims_of

log = logging.getLogger(__name__)

OPERATORS = {
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}
STATISTICS = ("Sum", "Average", "Minimum", "Maximum", "SampleCount")


# --- statistics and math ---------------------------------------------------------------------------------


def statistic(values: list[tuple[float, int]], stat: str) -> float | None:
    """CloudWatch's statistic of (value, count) pairs; None when there are none (missing data).
    pNN: nearest rank (the smallest value with at least NN % of the samples at or below it)."""
    n = sum(c for _, c in values)
    if not n:
        return None
    if stat == "SampleCount":
        return float(n)
    if stat == "Sum":
        return math.fsum(v * c for v, c in values)
    if stat == "Average":
        return math.fsum(v * c for v, c in values) / n
    if stat == "Minimum":
        return min(v for v, _ in values)
    if stat == "Maximum":
        return max(v for v, _ in values)
    found = re.fullmatch(r"p(\d{1,2}(?:\.\d+)?|100)", stat)
    if not found:
        raise ValueError(f"statistic {stat!r} is not one of {', '.join(STATISTICS)} or pNN")
    rank = max(1, math.ceil(float(found.group(1)) / 100 * n))
    seen = 0
    for value, count in sorted(values):
        seen += count
        if seen >= rank:
            return value
    return max(v for v, _ in values)


_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?|\.\d+)|([A-Za-z_][A-Za-z0-9_]*)|(.))")


def tokens(expression: str) -> list[tuple[str, str]]:
    out = []
    for number, name, other in _TOKEN.findall(expression.strip()):
        if number:
            out.append(("num", number))
        elif name:
            out.append(("id", name))
        elif other in "+-*/()":
            out.append(("op", other))
        elif other.strip():
            raise ValueError(f"metric math: {other!r} is not supported in {expression!r} (+ - * / ( ) ids numbers)")
    return out


def calculate(expression: str, values: dict[str, float | None]) -> float | None:
    """An arithmetic expression over ids and numbers; None when an id it uses has no value or a divisor is 0
    (CloudWatch returns no datapoint for that timestamp)."""
    toks = tokens(expression)
    pos = 0

    def peek() -> tuple[str, str] | None:
        return toks[pos] if pos < len(toks) else None

    def take() -> tuple[str, str]:
        nonlocal pos
        if pos >= len(toks):
            raise ValueError(f"metric math: {expression!r} ends too early")
        pos += 1
        return toks[pos - 1]

    def atom() -> float | None:
        kind, text = take()
        if kind == "num":
            return float(text)
        if kind == "id":
            if text not in values:
                raise ValueError(f"metric math: {expression!r} uses {text!r}, which no metric of the alarm has")
            return values[text]
        if text == "-":
            v = atom()
            return None if v is None else -v
        if text == "(":
            v = sum_()
            if take() != ("op", ")"):
                raise ValueError(f"metric math: ')' missing in {expression!r}")
            return v
        raise ValueError(f"metric math: unexpected {text!r} in {expression!r}")

    def product() -> float | None:
        v = atom()
        while peek() in (("op", "*"), ("op", "/")):
            op = take()[1]
            w = atom()
            no_value = v is None or w is None or (op == "/" and w == 0)
            v = None if no_value else (v * w if op == "*" else v / w)  # type: ignore[operator]
        return v

    def sum_() -> float | None:
        v = product()
        while peek() in (("op", "+"), ("op", "-")):
            op = take()[1]
            w = product()
            v = None if v is None or w is None else (v + w if op == "+" else v - w)
        return v

    result = sum_()
    if pos != len(toks):
        raise ValueError(f"metric math: unexpected {toks[pos][1]!r} in {expression!r}")
    return result


# --- the datapoints of an alarm ------------------------------------------------------------------------


def evaluable(alarm: dict[str, Any]) -> bool:
    """True when every metric of the alarm is one the lab publishes (and it is not anomaly detection)."""
    if alarm.get("ThresholdMetricId") or alarm.get("ComparisonOperator") not in OPERATORS:
        return False
    if alarm.get("Metrics"):
        stats = [m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m]
        returned = [m for m in alarm["Metrics"] if m.get("ReturnData", True)]
        return bool(stats) and len(returned) == 1 and all(
            s["Metric"].get("Namespace") == NAMESPACE and s["Metric"].get("MetricName") in PUBLISHED for s in stats
        )
    return alarm.get("Namespace") == NAMESPACE and alarm.get("MetricName") in PUBLISHED


def period_of(alarm: dict[str, Any]) -> int:
    if alarm.get("Metrics"):
        return max(int(m["MetricStat"]["Period"]) for m in alarm["Metrics"] if "MetricStat" in m)
    return int(alarm["Period"])


def datapoints(alarm: dict[str, Any], store: MetricStore, now: float, lag: float) -> list[tuple[int, float | None]]:
    """The last EvaluationPeriods datapoints, newest first: (period start, value or None when missing)."""
    period = period_of(alarm)
    end = int((now - lag) // period * period)
    out = []
    for k in range(int(alarm["EvaluationPeriods"])):
        start = end - (k + 1) * period
        out.append((start, value_at(alarm, store, start, start + period)))
    return out


def value_at(alarm: dict[str, Any], store: MetricStore, start: int, end: int) -> float | None:
    if not alarm.get("Metrics"):
        stat = alarm.get("ExtendedStatistic") or alarm["Statistic"]
        got = store.values(NAMESPACE, alarm["MetricName"], dims_of(alarm.get("Dimensions")), start, end)
        return statistic(got, stat)
    values: dict[str, float | None] = {}
    for m in alarm["Metrics"]:
        if "MetricStat" in m:
            ms = m["MetricStat"]
            got = store.values(NAMESPACE, ms["Metric"]["MetricName"], dims_of(ms["Metric"].get("Dimensions")),
                               start, end)  # fmt: skip
            values[m["Id"]] = statistic(got, ms["Stat"])
    for m in alarm["Metrics"]:  # expressions, in order (one may use another)
        if "Expression" in m:
            values[m["Id"]] = calculate(m["Expression"], values)
    returned = next(m for m in alarm["Metrics"] if m.get("ReturnData", True))
    return values[returned["Id"]]


# --- the decision --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    state: str  # OK, ALARM, INSUFFICIENT_DATA; "" = keep the current state (TreatMissingData ignore)
    reason: str
    reason_data: dict[str, Any]


def _stamp(second: int) -> str:
    return datetime.fromtimestamp(second, timezone.utc).strftime("%d/%m/%y %H:%M:%S")


def _iso(second: float) -> str:
    return datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _fmt(value: float) -> str:
    return repr(float(value))


def decide(alarm: dict[str, Any], points: list[tuple[int, float | None]], now: float) -> Decision:
    """The state the datapoints (newest first) put the alarm in, with CloudWatch's reason."""
    n, m = int(alarm["EvaluationPeriods"]), int(alarm.get("DatapointsToAlarm") or alarm["EvaluationPeriods"])
    threshold = float(alarm["Threshold"])
    compare, words = OPERATORS[alarm["ComparisonOperator"]]
    treat = alarm.get("TreatMissingData") or "missing"
    present = [(t, v) for t, v in points if v is not None]
    breaching = [(t, v) for t, v in present if compare(v, threshold)]
    missing = len(points) - len(present)
    if treat == "breaching":
        count = len(breaching) + missing
        state = "ALARM" if count >= m else "OK"
    elif treat == "notBreaching":
        count = len(breaching)
        state = "ALARM" if count >= m else "OK"
    elif not present:
        state = "INSUFFICIENT_DATA" if treat == "missing" else ""
        count = 0
    elif len(present) < m:
        all_breach = len(breaching) == len(present)
        state = ("ALARM" if treat == "missing" else "") if all_breach else "OK"
        count = len(breaching)
    else:
        count = len(breaching)
        state = "ALARM" if count >= m else "OK"
    data: dict[str, Any] = {
        "version": "1.0",
        "queryDate": _iso(now),
        "startDate": _iso(points[-1][0]) if points else _iso(now),
        "period": period_of(alarm),
        "recentDatapoints": [v for _, v in reversed(present)],
        "threshold": threshold,
        "evaluatedDatapoints": [{"timestamp": _iso(t), **({"value": v} if v is not None else {})} for t, v in points],
    }
    if alarm.get("Metrics"):
        data["metricMath"] = True
    else:
        data["statistic"] = alarm.get("ExtendedStatistic") or alarm.get("Statistic")
    if state == "INSUFFICIENT_DATA" or (not state and not present):
        many = len(points) != 1
        reason = f"Insufficient Data: {len(points)} datapoint{'s were' if many else ' was'} unknown."
        return Decision(state, reason, data)
    if state == "ALARM" or (not state and breaching):
        shown = breaching if treat != "breaching" else points
        listed = ", ".join(f"{_fmt(v) if v is not None else 'missing'} ({_stamp(t)})" for t, v in shown)
        verb = "was" if count == 1 else "were"
        reason = (
            f"Threshold Crossed: {count} out of the last {n} datapoint{'s' if n != 1 else ''} [{listed}] {verb} "
            f"{words} the threshold ({_fmt(threshold)}) (minimum {m} datapoint{'s' if m != 1 else ''} "
            "for OK -> ALARM transition)."
        )
        return Decision(state, reason, data)
    fine = [(t, v) for t, v in present if not compare(v, threshold)]
    listed = ", ".join(f"{_fmt(v)} ({_stamp(t)})" for t, v in fine)
    verb = "was" if len(fine) == 1 else "were"
    reason = (
        f"Threshold Crossed: {len(fine)} out of the last {n} datapoint{'s' if n != 1 else ''} [{listed}] {verb} "
        f"not {words} the threshold ({_fmt(threshold)}) (minimum 1 datapoint for ALARM -> OK transition)."
    )
    if not fine:
        reason = f"Threshold Crossed: no datapoint of the last {n} was {words} the threshold ({_fmt(threshold)})."
    return Decision(state, reason, data)


# --- notifications --------------------------------------------------------------------------------------

# The names CloudWatch writes in a notification's subject and Region field.
REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)", "us-east-2": "US East (Ohio)", "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)", "eu-west-1": "EU (Ireland)", "eu-west-2": "EU (London)",
    "eu-west-3": "EU (Paris)", "eu-central-1": "EU (Frankfurt)", "eu-north-1": "EU (Stockholm)",
    "ap-southeast-1": "Asia Pacific (Singapore)", "ap-southeast-2": "Asia Pacific (Sydney)",
    "ap-northeast-1": "Asia Pacific (Tokyo)", "ap-south-1": "Asia Pacific (Mumbai)",
    "ca-central-1": "Canada (Central)", "sa-east-1": "South America (Sao Paulo)",
}  # fmt: skip
ACTIONS_OF_STATE = {"ALARM": "AlarmActions", "OK": "OKActions", "INSUFFICIENT_DATA": "InsufficientDataActions"}
SNS_MANAGED_KEY = "alias/aws/sns"


def _trigger(alarm: dict[str, Any]) -> dict[str, Any]:
    trigger: dict[str, Any] = {
        "Period": alarm.get("Period"), "EvaluationPeriods": alarm["EvaluationPeriods"],
        "DatapointsToAlarm": alarm.get("DatapointsToAlarm") or alarm["EvaluationPeriods"],
        "ComparisonOperator": alarm["ComparisonOperator"], "Threshold": float(alarm["Threshold"]),
        "TreatMissingData": alarm.get("TreatMissingData") or "missing", "EvaluateLowSampleCountPercentile": "",
    }  # fmt: skip
    if alarm.get("Metrics"):
        trigger["Metrics"] = alarm["Metrics"]
        return trigger
    trigger.update({
        "MetricName": alarm.get("MetricName"), "Namespace": alarm.get("Namespace"),
        "Unit": alarm.get("Unit"),
        "Dimensions": [{"value": d["Value"], "name": d["Name"]} for d in alarm.get("Dimensions", [])],
    })  # fmt: skip
    if alarm.get("ExtendedStatistic"):
        trigger.update(StatisticType="ExtendedStatistic", ExtendedStatistic=alarm["ExtendedStatistic"])
    else:
        trigger.update(StatisticType="Statistic", Statistic=str(alarm.get("Statistic", "")).upper())
    return trigger


def notification(alarm: dict[str, Any], decision: Decision, region: str, now: float) -> tuple[str, str]:
    """CloudWatch's SNS notification of the alarm's move to decision.state: (subject, JSON message)."""
    where = REGION_NAMES.get(region, region)
    arn = alarm.get("AlarmArn", "")
    updated = alarm.get("AlarmConfigurationUpdatedTimestamp")
    message = {
        "AlarmName": alarm["AlarmName"], "AlarmDescription": alarm.get("AlarmDescription"),
        "AWSAccountId": arn.split(":")[4] if arn.count(":") >= 5 else "",
        "AlarmConfigurationUpdatedTimestamp": updated.isoformat() if hasattr(updated, "isoformat") else updated,
        "NewStateValue": decision.state, "NewStateReason": decision.reason[:1023],
        "StateChangeTime": _iso(now), "Region": where, "AlarmArn": arn,
        "OldStateValue": alarm.get("StateValue"),
        "OKActions": alarm.get("OKActions", []), "AlarmActions": alarm.get("AlarmActions", []),
        "InsufficientDataActions": alarm.get("InsufficientDataActions", []),
        "Trigger": _trigger(alarm),
    }  # fmt: skip
    subject = f'{decision.state}: "{alarm["AlarmName"]}" in {where}'
    if len(subject) > 100:  # SNS subjects are at most 100 characters; CloudWatch shortens the name
        subject = subject[:96] + "..."
    return subject, json.dumps(message)


def notify(sns: Any, alarm: dict[str, Any], decision: Decision, region: str, now: float) -> list[str]:
    """Publish the notification to every SNS topic of the new state's actions; returns the topics reached."""
    if sns is None or not alarm.get("ActionsEnabled", True):
        return []
    reached = []
    for arn in alarm.get(ACTIONS_OF_STATE.get(decision.state, ""), []):
        if not arn.startswith("arn:aws:sns:"):
            continue  # Auto Scaling, EC2 and Systems Manager actions: not run by the lab
        try:
            key = sns.get_topic_attributes(TopicArn=arn)["Attributes"].get("KmsMasterKeyId", "")
        except Exception as exc:  # any failure of the action is logged, as CloudWatch does
            log.warning("Alarm %s: action %s failed (notification dropped): %s", alarm["AlarmName"], arn, exc)
            continue
        if key == SNS_MANAGED_KEY or key.endswith(":alias/aws/sns"):
            log.warning("Alarm %s: action %s failed (notification dropped): the topic is encrypted with %s, "
                        "which CloudWatch cannot use", alarm["AlarmName"], arn, SNS_MANAGED_KEY)  # fmt: skip
            continue
        subject, message = notification(alarm, decision, region, now)
        try:
            sns.publish(TopicArn=arn, Subject=subject, Message=message)
        except Exception as exc:  # moto posts to HTTP(S) subscribers within the publish call
            log.warning("Alarm %s: action %s failed: %s", alarm["AlarmName"], arn, exc)
            continue
        reached.append(arn)
    return reached


# --- the loop ------------------------------------------------------------------------------------------


def alarms_of(cloudwatch: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    token = None
    for _ in range(1000):  # bounded: 100 alarms a page
        kwargs: dict[str, Any] = {"AlarmTypes": ["MetricAlarm"], "MaxRecords": 100}
        if token:
            kwargs["NextToken"] = token
        page = cloudwatch.describe_alarms(**kwargs)
        out += page.get("MetricAlarms", [])
        token = page.get("NextToken")
        if not token:
            break
    return out


def evaluate_all(
    cloudwatch: Any, store: MetricStore, lag: float, now: float | None = None, sns: Any = None, region: str = ""
) -> dict[str, str]:
    """One pass over moto's alarms; returns {alarm name: new state} of the alarms it changed.

    With an SNS client, each change notifies the topics of the new state's actions (notify)."""
    now = time.time() if now is None else now
    changed = {}
    for alarm in alarms_of(cloudwatch):
        if not evaluable(alarm):
            continue
        try:
            decision = decide(alarm, datapoints(alarm, store, now, lag), now)
        except (ValueError, KeyError) as exc:
            log.warning("Alarm %s not evaluated: %s", alarm["AlarmName"], exc)
            continue
        if decision.state and decision.state != alarm.get("StateValue"):
            cloudwatch.set_alarm_state(
                AlarmName=alarm["AlarmName"], StateValue=decision.state, StateReason=decision.reason[:1023],
                StateReasonData=json.dumps(decision.reason_data),
            )  # fmt: skip
            changed[alarm["AlarmName"]] = decision.state
            if sns is not None:
                # As SNS delivers apart from the alarm's evaluation: a slow HTTP(S) subscriber (moto posts to it
                # within the publish call) never holds up the next pass.
                threading.Thread(target=notify, args=(sns, alarm, decision, region, now), daemon=True,
                                 name=f"notify-{alarm['AlarmName']}"[:60]).start()  # fmt: skip
            log.info("Alarm %s: %s -> %s: %s", alarm["AlarmName"], alarm.get("StateValue"), decision.state,
                     decision.reason)  # fmt: skip
    return changed
