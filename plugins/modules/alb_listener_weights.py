#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Set the weights of the target groups an Application Load Balancer's listeners forward to.

The weighted canary (rolling_strategy: canary) moves traffic between the main and the canary target group
by these weights. amazon.aws.elb_application_lb does not compare a forward's ForwardConfig (it drops it
from the listener it reads), so it can neither report these weights nor leave them alone: this module does.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: alb_listener_weights
short_description: Set the target group weights of an Application Load Balancer's listeners
description:
  - On every listener of the load balancer whose default action forwards to the target groups given
    (all of them, or a subset of them), sets the default action to a forward with those groups and weights.
    Listeners that forward elsewhere or redirect are left alone.
  - Reports a change only when a weight differs; supports check mode and diff.
  - Fails when no listener forwards to the target groups given.
options:
  load_balancer:
    description: Name or ARN of the load balancer.
    type: str
    required: true
  weights:
    description:
      - Target group ARN to weight, 0-999 each, at least one above 0 (the ELBv2 API's range).
      - Groups the listener forwards to that are not given here keep their weight.
    type: dict
    required: true
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author: ec2-fleet contributors
"""

EXAMPLES = r"""
- name: Send 5 % of the requests to the canary target group
  ec2_fleet.fleet.alb_listener_weights:
    load_balancer: "{{ aws_alb_name }}"
    weights:
      "{{ main_arn }}": 95
      "{{ canary_arn }}": 5
"""

RETURN = r"""
load_balancer_arn:
  description: ARN of the load balancer.
  returned: always
  type: str
listeners:
  description: >-
    The listeners that forward to the groups given, each with its ARN, port, and the weights (target group
    ARN to weight) before and after.
  returned: always
  type: list
  elements: dict
  sample: [{"listener_arn": "arn:...", "port": 80, "before": {"arn:...tg": 100, "arn:...canary": 0},
            "after": {"arn:...tg": 95, "arn:...canary": 5}}]
before:
  description: The weights (target group ARN to weight) of the first such listener before the change.
  returned: always
  type: dict
after:
  description: The weights of the first such listener after the change (in check mode, what they would be).
  returned: always
  type: dict
"""

from typing import Any  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.ec2_fleet.fleet.plugins.module_utils.fleet_aws import aws_errors  # noqa: E402

MAX_WEIGHT = 999


def weight_errors(weights: dict[str, Any]) -> list[str]:
    """What is wrong with the weights given, in words that name the option."""
    errors = []
    if not weights:
        return ["weights must map at least one target group ARN to a weight"]
    for arn, weight in weights.items():
        if ":targetgroup/" not in str(arn):
            errors.append(f"weights: {arn!r} is not a target group ARN")
        if isinstance(weight, bool) or not str(weight).isdigit() or int(weight) > MAX_WEIGHT:
            errors.append(f"weights: the weight of {arn} must be a whole number from 0 to {MAX_WEIGHT}, got {weight!r}")
    if not errors and all(int(w) == 0 for w in weights.values()):
        errors.append("weights: at least one weight must be above 0 (all 0 would send the requests nowhere)")
    return errors


def _forwarded(action: dict[str, Any]) -> dict[str, int]:
    """Target group ARN to weight of a forward action (a plain forward counts as weight 1, as AWS does)."""
    if action.get("Type") != "forward":
        return {}
    groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or []
    if groups:
        return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}
    return {action["TargetGroupArn"]: 1} if action.get("TargetGroupArn") else {}


def _find_load_balancer(module: AnsibleAWSModule, client: Any, name_or_arn: str) -> str:
    key = {"LoadBalancerArns": [name_or_arn]} if name_or_arn.startswith("arn:") else {"Names": [name_or_arn]}
    try:
        return client.describe_load_balancers(**key)["LoadBalancers"][0]["LoadBalancerArn"]
    except client.exceptions.LoadBalancerNotFoundException:
        module.fail_json(msg=f"load_balancer: no load balancer {name_or_arn}")
    except aws_errors() as e:
        module.fail_json_aws(e, msg=f"Unable to find the load balancer {name_or_arn}")
    raise AssertionError  # fail_json does not return


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "load_balancer": {"type": "str", "required": True},
            "weights": {"type": "dict", "required": True},
        },
        supports_check_mode=True,
    )
    wanted = module.params["weights"]
    errors = weight_errors(wanted)
    if errors:
        module.fail_json(msg="; ".join(errors))
    wanted = {arn: int(weight) for arn, weight in wanted.items()}
    client = module.client("elbv2")
    lb_arn = _find_load_balancer(module, client, module.params["load_balancer"])
    try:
        listeners = client.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]
    except aws_errors() as e:
        module.fail_json_aws(e, msg=f"Unable to read the listeners of {lb_arn}")

    results, changed = [], False
    for listener in sorted(listeners, key=lambda li: li["Port"]):
        actions = listener.get("DefaultActions") or []
        forwards = [a for a in actions if a.get("Type") == "forward"]
        if len(forwards) != 1:
            continue
        before = _forwarded(forwards[0])
        if not set(wanted) & set(before):
            continue
        after = {**before, **wanted}
        results.append({"listener_arn": listener["ListenerArn"], "port": listener["Port"], "before": before,
                        "after": after})  # fmt: skip
        if after == before and "ForwardConfig" in forwards[0]:
            continue
        changed = True
        if module.check_mode:
            continue
        forward = {
            "Type": "forward",
            "ForwardConfig": {
                **{k: v for k, v in (forwards[0].get("ForwardConfig") or {}).items() if k != "TargetGroups"},
                "TargetGroups": [{"TargetGroupArn": arn, "Weight": weight} for arn, weight in after.items()],
            },
        }
        if "Order" in forwards[0]:
            forward["Order"] = forwards[0]["Order"]
        new_actions = [forward if a is forwards[0] else a for a in actions]
        try:
            client.modify_listener(ListenerArn=listener["ListenerArn"], DefaultActions=new_actions)
        except aws_errors() as e:
            module.fail_json_aws(e, msg=f"Unable to set the weights of listener {listener['ListenerArn']}")
    if not results:
        module.fail_json(
            msg=f"load_balancer: no listener of {module.params['load_balancer']} forwards to {sorted(wanted)}"
        )
    first = results[0]
    module.exit_json(
        changed=changed,
        load_balancer_arn=lb_arn,
        listeners=results,
        before=first["before"],
        after=first["after"],
        diff={
            "before": {str(r["port"]): r["before"] for r in results},
            "after": {str(r["port"]): r["after"] for r in results},
        },
    )


if __name__ == "__main__":
    main()
