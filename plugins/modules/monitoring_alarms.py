#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep one environment's set of CloudWatch metric alarms: put the given ones, delete the others of its prefix.

amazon.aws.cloudwatch_metric_alarm (10.1) takes no tags, and one task per alarm would make a run of a dozen
alarms a dozen round trips of a module each; this module compares each alarm with what DescribeAlarms returns
and puts (with tags) only those that differ.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: monitoring_alarms
short_description: Keep the set of CloudWatch metric alarms whose names start with a prefix
description:
  - Puts every alarm of O(alarms) that does not exist or differs from CloudWatch's copy, with O(tags).
  - Deletes the alarms whose names start with O(prefix) that O(alarms) does not list and that carry every tag
    of O(tags) (an alarm of another project or environment under the same prefix is left alone).
  - With O(state=absent), deletes every such alarm. Check mode and diff mode are supported.
options:
  prefix:
    description: Common start of the alarms' names, for example C(ec2-fleet-lab-).
    type: str
    required: true
  alarms:
    description:
      - The alarms, each a dict of PutMetricAlarm's parameters (C(AlarmName), C(ComparisonOperator),
        C(Threshold), C(EvaluationPeriods), C(Metrics) or C(Namespace)/C(MetricName)/C(Dimensions)/C(Period)
        with C(Statistic) or C(ExtendedStatistic), ...). Every name must start with O(prefix).
    type: list
    elements: dict
    default: []
  tags:
    description: Tags of every alarm; tags not listed are removed from the alarms this module puts.
    type: dict
    default: {}
  state:
    description: present keeps exactly O(alarms); absent deletes every alarm of the prefix.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author: ec2-fleet contributors
"""

EXAMPLES = r"""
- name: Keep the environment's alarms
  ec2_fleet.fleet.monitoring_alarms:
    prefix: ec2-fleet-lab-
    tags: {Project: ec2-fleet, Environment: lab}
    alarms:
      - AlarmName: ec2-fleet-lab-unhealthy-hosts
        Namespace: AWS/ApplicationELB
        MetricName: UnHealthyHostCount
        Dimensions:
          - {Name: TargetGroup, Value: targetgroup/ec2-fleet-lab-tg/0123456789abcdef}
          - {Name: LoadBalancer, Value: app/ec2-fleet-lab/0123456789abcdef}
        Statistic: Maximum
        Period: 60
        EvaluationPeriods: 3
        DatapointsToAlarm: 3
        Threshold: 0
        ComparisonOperator: GreaterThanThreshold
        TreatMissingData: notBreaching
        AlarmActions: [arn:aws:sns:eu-west-1:123456789012:ec2-fleet-lab-alarms]
        OKActions: [arn:aws:sns:eu-west-1:123456789012:ec2-fleet-lab-alarms]
"""

RETURN = r"""
alarms:
  description: Names of the alarms of the prefix after the run.
  returned: always
  type: list
  elements: str
created:
  description: Names of the alarms put for the first time.
  returned: always
  type: list
  elements: str
updated:
  description: Names of the existing alarms put again because they differed.
  returned: always
  type: list
  elements: str
deleted:
  description: Names of the alarms deleted.
  returned: always
  type: list
  elements: str
"""

import json  # noqa: E402
from typing import Any  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.ec2_fleet.fleet.plugins.module_utils.fleet_aws import aws_errors  # noqa: E402

# What PutMetricAlarm takes and DescribeAlarms gives back, compared key by key.
COMPARED = (
    "AlarmDescription",
    "ActionsEnabled",
    "OKActions",
    "AlarmActions",
    "InsufficientDataActions",
    "MetricName",
    "Namespace",
    "Statistic",
    "ExtendedStatistic",
    "Dimensions",
    "Period",
    "Unit",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "EvaluateLowSampleCountPercentile",
    "Metrics",
)
DEFAULTS = {"ActionsEnabled": True, "TreatMissingData": "missing"}


def _normal(alarm: dict[str, Any]) -> dict[str, Any]:
    """The compared keys of an alarm, empty lists and unset values dropped, numbers as CloudWatch keeps them."""
    out = {**DEFAULTS, **{k: alarm[k] for k in COMPARED if alarm.get(k) not in (None, [], "")}}
    if "Threshold" in out:
        out["Threshold"] = float(out["Threshold"])
    for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        if key in out:
            out[key] = int(out[key])
    if "Dimensions" in out:
        out["Dimensions"] = sorted(out["Dimensions"], key=lambda d: (d["Name"], d["Value"]))
    if "Metrics" in out:
        out["Metrics"] = json.loads(json.dumps(out["Metrics"], sort_keys=True))
    return out


def _existing(module: AnsibleAWSModule, client, prefix: str) -> dict[str, dict[str, Any]]:
    try:
        pages = client.get_paginator("describe_alarms").paginate(AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm"])
        return {a["AlarmName"]: a for page in pages for a in page.get("MetricAlarms", [])}
    except aws_errors() as e:
        module.fail_json_aws(e, msg=f"Unable to list the alarms named {prefix}*")


def _tags(module: AnsibleAWSModule, client, arn: str) -> dict[str, str]:
    try:
        return {t["Key"]: t["Value"] for t in client.list_tags_for_resource(ResourceARN=arn).get("Tags", [])}
    except aws_errors() as e:
        module.fail_json_aws(e, msg=f"Unable to read the tags of {arn}")


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "prefix": {"type": "str", "required": True},
            "alarms": {"type": "list", "elements": "dict", "default": []},
            "tags": {"type": "dict", "default": {}},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        supports_check_mode=True,
    )
    prefix, state = module.params["prefix"], module.params["state"]
    tags = {str(k): str(v) for k, v in module.params["tags"].items()}
    wanted = {a["AlarmName"]: a for a in module.params["alarms"]} if state == "present" else {}
    outside = sorted(name for name in wanted if not name.startswith(prefix))
    if outside:
        module.fail_json(msg=f"alarm names must start with the prefix {prefix}: {outside}")
    client = module.client("cloudwatch")
    existing = _existing(module, client, prefix)
    created, updated, deleted = [], [], []
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for name, alarm in sorted(wanted.items()):
        current = existing.get(name)
        current_tags = _tags(module, client, current["AlarmArn"]) if current else {}
        if current and _normal(current) == _normal(alarm) and current_tags == tags:
            continue
        (updated if current else created).append(name)
        before[name] = {**_normal(current), "Tags": current_tags} if current else None
        after[name] = {**_normal(alarm), "Tags": tags}
        if module.check_mode:
            continue
        try:
            client.put_metric_alarm(**alarm, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
            stale = sorted(set(current_tags) - set(tags))
            if current and stale:
                client.untag_resource(ResourceARN=current["AlarmArn"], TagKeys=stale)
        except aws_errors() as e:
            module.fail_json_aws(e, msg=f"Unable to put the alarm {name}")
    for name in sorted(set(existing) - set(wanted)):
        # Only the alarms that carry every tag of this environment: a namesake of someone else stays.
        if _tags(module, client, existing[name]["AlarmArn"]).items() >= tags.items():
            deleted.append(name)
            before[name], after[name] = _normal(existing[name]), None
    if deleted and not module.check_mode:
        try:
            for start in range(0, len(deleted), 100):
                client.delete_alarms(AlarmNames=deleted[start : start + 100])
        except aws_errors() as e:
            module.fail_json_aws(e, msg=f"Unable to delete the alarms {deleted}")
    names = sorted((set(existing) | set(wanted)) - set(deleted))
    module.exit_json(
        changed=bool(created or updated or deleted),
        alarms=names,
        created=created,
        updated=updated,
        deleted=deleted,
        diff={"before": before, "after": after},
    )


if __name__ == "__main__":
    main()
