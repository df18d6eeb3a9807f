#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Set attributes of an ELBv2 target group or load balancer.

community.aws.elb_target_group has no slow start, and amazon.aws.elb_application_lb fails against moto
when it compares idle_timeout (moto lists only the attributes that were set): this module sets both.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: aws_alb_attributes
short_description: Set attributes of an ELBv2 target group or load balancer
description:
  - Sets the given attributes (for example C(slow_start.duration_seconds) of a target group or
    C(idle_timeout.timeout_seconds) of a load balancer) and reports a change only when a value differs.
    Attributes not given are left alone.
options:
  arn:
    description: ARN of the target group or of the load balancer.
    type: str
    required: true
  attributes:
    description: Attribute keys and values, as the ELBv2 API names them.
    type: dict
    required: true
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author: ec2-fleet contributors
"""

EXAMPLES = r"""
- name: Ramp new targets up over 60 seconds
  ec2_fleet.fleet.aws_alb_attributes:
    arn: "{{ tg.target_group_arn }}"
    attributes:
      slow_start.duration_seconds: 60
"""

RETURN = r"""
attributes:
  description: Every attribute of the resource after the change.
  returned: always
  type: dict
"""


from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.ec2_fleet.fleet.plugins.module_utils.fleet_aws import aws_errors  # noqa: E402


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "arn": {"type": "str", "required": True},
            "attributes": {"type": "dict", "required": True},
        },
        supports_check_mode=True,
    )
    client = module.client("elbv2")
    arn = module.params["arn"]
    if ":targetgroup/" in arn:
        describe, modify, key = (
            client.describe_target_group_attributes,
            client.modify_target_group_attributes,
            "TargetGroupArn",
        )
    elif ":loadbalancer/" in arn:
        describe, modify, key = (
            client.describe_load_balancer_attributes,
            client.modify_load_balancer_attributes,
            "LoadBalancerArn",
        )
    else:
        module.fail_json(msg=f"arn must be a target group or load balancer ARN, got {arn}")
    try:
        found = describe(**{key: arn})["Attributes"]
    except aws_errors() as e:
        module.fail_json_aws(e, msg=f"Unable to read the attributes of {arn}")
    current = {a["Key"]: a["Value"] for a in found}
    wanted = {name: _text(value) for name, value in module.params["attributes"].items()}
    changes = {name: value for name, value in wanted.items() if current.get(name) != value}
    if changes and not module.check_mode:
        try:
            modify(**{key: arn, "Attributes": [{"Key": k, "Value": v} for k, v in changes.items()]})
        except aws_errors() as e:
            module.fail_json_aws(e, msg=f"Unable to set {sorted(changes)} on {arn}")
    after = {**current, **changes}
    module.exit_json(changed=bool(changes), attributes=after, diff={"before": current, "after": after})


if __name__ == "__main__":
    main()
