#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An SNS topic encrypted at rest, with its tags and exactly the given subscriptions.

community.aws.sns_topic (10.0) cannot set the topic's KMS key (KmsMasterKeyId); this module does, and keeps
the subscriptions and tags too, so the topic is made in one call with its encryption from the start.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: monitoring_topic
short_description: An SNS topic with a KMS key, tags and exactly the given subscriptions
description:
  - Creates the standard SNS topic O(name) encrypted with O(kms_master_key_id), or sets the key of an existing
    one; sets O(tags) (tags not listed are removed); subscribes every endpoint of O(subscriptions) and
    unsubscribes the others. A subscription still waiting for its confirmation cannot be removed through the
    API (AWS deletes it after 3 days); it is reported in C(pending) and warned about.
  - With O(state=absent), deletes the topic (and so its subscriptions). Check mode and diff mode are supported.
options:
  name:
    description: Name of the topic.
    type: str
    required: true
  kms_master_key_id:
    description:
      - KMS key that encrypts the messages at rest (a customer managed key's ARN, id or alias). Empty leaves the
        topic unencrypted.
      - For CloudWatch alarms the key's policy must let C(cloudwatch.amazonaws.com) use it; AWS's managed key
        C(alias/aws/sns) cannot, so CloudWatch drops every notification to a topic it encrypts.
    type: str
    default: ""
  subscriptions:
    description: The subscriptions, each a dict of C(protocol) and C(endpoint).
    type: list
    elements: dict
    default: []
  tags:
    description: Tags of the topic; tags not listed are removed.
    type: dict
    default: {}
  state:
    description: present creates or updates, absent deletes.
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
- name: Keep the environment's alarm topic
  ec2_fleet.fleet.monitoring_topic:
    name: ec2-fleet-lab-alarms
    kms_master_key_id: alias/ec2-fleet-alarms  # a customer managed key that lets CloudWatch use it
    subscriptions:
      - {protocol: email, endpoint: ops@example.com}
    tags: {Project: ec2-fleet, Environment: lab}
"""

RETURN = r"""
topic_arn:
  description: ARN of the topic (empty when it does not exist, or would only be created in check mode).
  returned: always
  type: str
subscriptions:
  description: The topic's subscriptions after the run, each with protocol and endpoint.
  returned: always
  type: list
  elements: dict
pending:
  description: Unwanted subscriptions left because they wait for confirmation (the API cannot remove them).
  returned: always
  type: list
  elements: dict
"""

from typing import Any  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.ec2_fleet.fleet.plugins.module_utils.fleet_aws import aws_errors, warn  # noqa: E402

PENDING = "PendingConfirmation"


def _find(module: AnsibleAWSModule, client, name: str) -> str:
    try:
        for page in client.get_paginator("list_topics").paginate():
            for topic in page.get("Topics", []):
                if topic["TopicArn"].rsplit(":", 1)[-1] == name:
                    return topic["TopicArn"]
    except aws_errors() as e:
        module.fail_json_aws(e, msg="Unable to list the SNS topics")
    return ""


def _state(module: AnsibleAWSModule, client, arn: str) -> dict[str, Any]:
    try:
        attributes = client.get_topic_attributes(TopicArn=arn)["Attributes"]
        tags = client.list_tags_for_resource(ResourceArn=arn).get("Tags", [])
        pages = client.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=arn)
        subscriptions = [s for page in pages for s in page.get("Subscriptions", [])]
    except aws_errors() as e:
        module.fail_json_aws(e, msg=f"Unable to read the topic {arn}")
    return {
        "kms_master_key_id": attributes.get("KmsMasterKeyId", ""),
        "tags": {t["Key"]: t["Value"] for t in tags},
        "subscriptions": subscriptions,
    }


def _view(state: dict[str, Any]) -> dict[str, Any]:
    subs = sorted((s["Protocol"], s["Endpoint"]) for s in state["subscriptions"])
    return {
        "kms_master_key_id": state["kms_master_key_id"],
        "tags": state["tags"],
        "subscriptions": [{"protocol": p, "endpoint": e} for p, e in subs],
    }


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "kms_master_key_id": {"type": "str", "default": "", "no_log": False},
            "subscriptions": {"type": "list", "elements": "dict", "default": []},
            "tags": {"type": "dict", "default": {}},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        supports_check_mode=True,
    )
    p = module.params
    name, key = p["name"], p["kms_master_key_id"] or ""
    tags = {str(k): str(v) for k, v in p["tags"].items()}
    wanted_subs = {(str(s.get("protocol")), str(s.get("endpoint"))) for s in p["subscriptions"]}
    client = module.client("sns")
    arn = _find(module, client, name)
    current = _state(module, client, arn) if arn else None
    before = _view(current) if current else {}
    if p["state"] == "absent":
        if arn and not module.check_mode:
            try:
                client.delete_topic(TopicArn=arn)
            except aws_errors() as e:
                module.fail_json_aws(e, msg=f"Unable to delete the topic {arn}")
        module.exit_json(
            changed=bool(arn), topic_arn="", subscriptions=[], pending=[], diff={"before": before, "after": {}}
        )
    after = {
        "kms_master_key_id": key,
        "tags": tags,
        "subscriptions": [{"protocol": pr, "endpoint": ep} for pr, ep in sorted(wanted_subs)],
    }
    have = {(s["Protocol"], s["Endpoint"]): s["SubscriptionArn"] for s in (current or {}).get("subscriptions", [])}
    extra = {sub: sub_arn for sub, sub_arn in have.items() if sub not in wanted_subs}
    pending = [{"protocol": pr, "endpoint": ep} for (pr, ep), sub_arn in sorted(extra.items()) if sub_arn == PENDING]
    if pending:
        after["subscriptions"] = sorted(after["subscriptions"] + pending, key=lambda s: (s["protocol"], s["endpoint"]))
        warn(
            module, f"subscriptions waiting for confirmation cannot be removed (AWS drops them after 3 days): {pending}"
        )
    changed = before != after
    if changed and not module.check_mode:
        try:
            if not arn:
                attributes = {"KmsMasterKeyId": key} if key else {}
                arn = client.create_topic(
                    Name=name, Attributes=attributes, Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
                )["TopicArn"]
            else:
                if current["kms_master_key_id"] != key:
                    client.set_topic_attributes(TopicArn=arn, AttributeName="KmsMasterKeyId", AttributeValue=key)
                stale = sorted(set(current["tags"]) - set(tags))
                if stale:
                    client.untag_resource(ResourceArn=arn, TagKeys=stale)
                if any(current["tags"].get(k) != v for k, v in tags.items()):
                    client.tag_resource(ResourceArn=arn, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
            for protocol, endpoint in sorted(wanted_subs - set(have)):
                client.subscribe(TopicArn=arn, Protocol=protocol, Endpoint=endpoint)
            for sub_arn in extra.values():
                if sub_arn != PENDING:
                    client.unsubscribe(SubscriptionArn=sub_arn)
        except aws_errors() as e:
            module.fail_json_aws(e, msg=f"Unable to create or update the topic {name}")
    module.exit_json(
        changed=changed,
        topic_arn=arn,
        subscriptions=after["subscriptions"],
        pending=pending,
        diff={"before": before, "after": after},
    )


if __name__ == "__main__":
    main()
