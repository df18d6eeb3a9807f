#!/usr/bin/python
# Copyright: ec2-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Watch CloudWatch alarms for a while, as CodeDeploy's alarm monitoring does: the rolling role's gate.

One DescribeAlarms call on the names per poll (at most 100 names: one page), until one of them is in
ALARM or the time is up. It never fails on an alarm: it returns the alarm and the role decides.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: rolling_alarm_watch
short_description: Watch CloudWatch alarms for a number of seconds and return the first one in ALARM
description:
  - Reads the state of the named CloudWatch alarms (metric and composite alarms) every O(poll_seconds)
    for O(seconds) seconds and returns as soon as one of them is in the C(ALARM) state, with its metric and
    its StateReason (which carries the value that breached). O(seconds=0) reads them once.
  - Never fails because an alarm is in C(ALARM); it returns RV(alarm) and the caller decides (the rolling
    role stops the run and takes the batch back). It fails only when AWS cannot be read.
  - Names that do not exist in the account and region are returned in RV(missing); the rolling role refuses
    a run that names one before it takes its lock.
  - Changes nothing; runs the same in check mode. In the collection's action group C(ec2_fleet.fleet.aws), so
    C(module_defaults) C(group/ec2_fleet.fleet.aws) gives it the connection.
options:
  names:
    description: Names of the alarms to watch (at most 100, as one DescribeAlarms call takes).
    type: list
    elements: str
    required: true
  seconds:
    description: How long to watch, in seconds; V(0) reads the alarms once.
    type: int
    default: 0
  poll_seconds:
    description: Seconds between two reads (at least 1).
    type: int
    default: 5
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author: ec2-fleet contributors
"""

EXAMPLES = r"""
- name: Check the deploy alarms once
  ec2_fleet.fleet.rolling_alarm_watch:
    names: [ec2-fleet-staging-target-5xx-share, ec2-fleet-staging-target-response-time-p99]
  register: alarms

- name: Watch them for the bake time of a batch, every 5 seconds
  ec2_fleet.fleet.rolling_alarm_watch:
    names: [ec2-fleet-staging-target-5xx-share]
    seconds: 120
    poll_seconds: 5
  register: watch

- name: Stop when one fired
  ansible.builtin.fail:
    msg: "{{ watch.alarm.name }} ({{ watch.alarm.metric }}): {{ watch.alarm.reason }}"
  when: watch.alarm | length > 0
"""

RETURN = r"""
alarm:
  description: The first alarm seen in C(ALARM) (in the order of O(names)); an empty dict when none was.
  returned: always
  type: dict
  contains:
    name:
      description: The alarm's name.
      type: str
    state:
      description: Its state, V(ALARM).
      type: str
    metric:
      description: >-
        What it watches: C(NAMESPACE/MetricName) (with its statistic), C(metric math: EXPRESSION) for an alarm
        on a metric math expression, or C(composite: RULE).
      type: str
    reason:
      description: Its StateReason, as CloudWatch wrote it (with the datapoint that breached the threshold).
      type: str
    state_updated:
      description: When CloudWatch set that state (ISO 8601, UTC).
      type: str
    seen_at:
      description: When this module saw it in C(ALARM) (ISO 8601, UTC).
      type: str
  sample:
    name: ec2-fleet-staging-target-5xx-share
    state: ALARM
    metric: "metric math: errors / requests"
    reason: "Threshold Crossed: 1 out of the last 1 datapoints [0.1 (05/12/26 23:10:00)] was greater than 0.05"
    state_updated: "2026-12-05T23:10:04Z"
    seen_at: "2026-12-05T23:10:06Z"
states:
  description: Each alarm found and its state at the last read.
  returned: always
  type: dict
  sample: {ec2-fleet-staging-target-5xx-share: OK, ec2-fleet-staging-alb-5xx-share: INSUFFICIENT_DATA}
missing:
  description: The names of O(names) that no alarm of the account and region has.
  returned: always
  type: list
  elements: str
checks:
  description: How many times the alarms were read.
  returned: always
  type: int
watched_s:
  description: Seconds spent watching.
  returned: always
  type: float
"""

import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import Any  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.ec2_fleet.fleet.plugins.module_utils.fleet_aws import aws_errors  # noqa: E402

MAX_NAMES = 100


def _utc(value: Any = None) -> str:
    moment = value if isinstance(value, datetime) else datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe_metric(alarm: dict[str, Any]) -> str:
    """What an alarm watches, in one phrase: NAMESPACE/MetricName (statistic), metric math, or a composite rule."""
    if "AlarmRule" in alarm:
        return f"composite: {alarm['AlarmRule']}"
    metrics = alarm.get("Metrics") or []
    if metrics:
        returned = [m for m in metrics if m.get("ReturnData", True)] or metrics
        first = returned[0]
        if "Expression" in first:
            return f"metric math: {first['Expression']}"
        stat = first.get("MetricStat", {})
        metric = stat.get("Metric", {})
        return f"{metric.get('Namespace', '?')}/{metric.get('MetricName', '?')} ({stat.get('Stat', '?')})"
    statistic = alarm.get("ExtendedStatistic") or alarm.get("Statistic") or "?"
    return f"{alarm.get('Namespace', '?')}/{alarm.get('MetricName', '?')} ({statistic})"


def _read(module: AnsibleAWSModule, client, names: list[str]) -> dict[str, dict[str, Any]]:
    try:
        response = client.describe_alarms(AlarmNames=names, AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    except aws_errors() as e:
        module.fail_json_aws(e, msg=f"Unable to read the alarms {', '.join(names)}")
    found = response.get("MetricAlarms", []) + response.get("CompositeAlarms", [])
    return {a["AlarmName"]: a for a in found}


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "names": {"type": "list", "elements": "str", "required": True},
            "seconds": {"type": "int", "default": 0},
            "poll_seconds": {"type": "int", "default": 5},
        },
        supports_check_mode=True,
    )
    names = list(dict.fromkeys(module.params["names"]))
    seconds, poll = module.params["seconds"], module.params["poll_seconds"]
    if not names or len(names) > MAX_NAMES:
        module.fail_json(msg=f"names: give 1 to {MAX_NAMES} alarm names (got {len(names)})")
    if seconds < 0 or poll < 1:
        module.fail_json(msg=f"seconds must be 0 or more and poll_seconds 1 or more (got {seconds}, {poll})")
    client = module.client("cloudwatch")
    start = time.monotonic()
    deadline = start + seconds
    checks = 0
    alarm: dict[str, Any] = {}
    # Bounded: one read per poll_seconds until the deadline, then a last read at the deadline.
    while True:
        found = _read(module, client, names)
        checks += 1
        firing = [found[n] for n in names if n in found and found[n].get("StateValue") == "ALARM"]
        if firing:
            first = firing[0]
            alarm = {
                "name": first["AlarmName"],
                "state": first["StateValue"],
                "metric": describe_metric(first),
                "reason": first.get("StateReason", ""),
                "state_updated": _utc(first.get("StateUpdatedTimestamp")) if first.get("StateUpdatedTimestamp") else "",
                "seen_at": _utc(),
            }
            break
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(poll, left))
    module.exit_json(
        changed=False,
        alarm=alarm,
        states={n: found[n].get("StateValue", "") for n in names if n in found},
        missing=[n for n in names if n not in found],
        checks=checks,
        watched_s=round(time.monotonic() - start, 1),
    )


if __name__ == "__main__":
    main()
