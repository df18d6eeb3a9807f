#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Create, update or delete one CloudWatch dashboard, comparing its JSON body (no module of amazon.aws or
community.aws manages dashboards)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: monitoring_dashboard
short_description: Create, update or delete a CloudWatch dashboard
description:
  - Puts the dashboard when it does not exist or when its body differs from O(body) as JSON (key order and
    whitespace do not count), deletes it with O(state=absent). Check mode and diff mode are supported.
  - CloudWatch dashboards carry no tags; the name is the dashboard's identity.
options:
  name:
    description: Name of the dashboard (1-255 letters, digits, C(-) and C(_)).
    type: str
    required: true
  body:
    description: The dashboard body (its C(widgets)), as a dict or a JSON string. Required with O(state=present).
    type: raw
  state:
    description: present puts the dashboard, absent deletes it.
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
- name: Put the environment's dashboard
  ec2_fleet.fleet.monitoring_dashboard:
    name: ec2-fleet-lab
    body:
      widgets:
        - type: metric
          properties:
            title: Requests
            region: eu-west-1
            metrics: [[AWS/ApplicationELB, RequestCount, LoadBalancer, app/ec2-fleet-lab/0123456789abcdef]]

- name: Delete it
  ec2_fleet.fleet.monitoring_dashboard:
    name: ec2-fleet-lab
    state: absent
"""

RETURN = r"""
dashboard_arn:
  description: ARN of the dashboard (empty when it does not exist, or would only be created in check mode).
  returned: always
  type: str
body:
  description: The dashboard body after the run (empty dict when there is none).
  returned: always
  type: dict
"""

import json  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.ec2_fleet.fleet.plugins.module_utils.fleet_aws import aws_errors  # noqa: E402


def _current(module: AnsibleAWSModule, client, name: str) -> tuple[str, dict]:
    try:
        found = client.get_dashboard(DashboardName=name)
    except aws_errors() as e:
        if getattr(e, "response", {}).get("Error", {}).get("Code") in ("ResourceNotFound", "ResourceNotFoundException"):
            return "", {}
        module.fail_json_aws(e, msg=f"Unable to read the dashboard {name}")
    return found.get("DashboardArn", ""), json.loads(found.get("DashboardBody") or "{}")


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "body": {"type": "raw"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        required_if=[("state", "present", ("body",))],
        supports_check_mode=True,
    )
    name, state = module.params["name"], module.params["state"]
    client = module.client("cloudwatch")
    arn, before = _current(module, client, name)
    if state == "absent":
        changed = bool(arn)
        if changed and not module.check_mode:
            try:
                client.delete_dashboards(DashboardNames=[name])
            except aws_errors() as e:
                module.fail_json_aws(e, msg=f"Unable to delete the dashboard {name}")
        module.exit_json(changed=changed, dashboard_arn="", body={}, diff={"before": before, "after": {}})
    body = module.params["body"]
    try:
        wanted = json.loads(body) if isinstance(body, str) else json.loads(json.dumps(body))
    except ValueError as e:
        module.fail_json(msg=f"body must be a dict or a JSON document: {e}")
    changed = not arn or wanted != before
    if changed and not module.check_mode:
        try:
            answer = client.put_dashboard(DashboardName=name, DashboardBody=json.dumps(wanted, sort_keys=True))
        except aws_errors() as e:
            module.fail_json_aws(e, msg=f"Unable to put the dashboard {name}")
        problems = [m.get("Message", "") for m in answer.get("DashboardValidationMessages") or []]
        if problems:
            module.fail_json(msg=f"CloudWatch refused parts of the dashboard {name}: {'; '.join(problems)}")
        arn, _ = _current(module, client, name)
    module.exit_json(changed=changed, dashboard_arn=arn, body=wanted, diff={"before": before, "after": wanted})


if __name__ == "__main__":
    main()
