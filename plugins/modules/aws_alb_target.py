#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Register a target in an ELBv2 target group and wait until it is healthy, or deregister it and wait until
it has drained, in one module run.

community.aws.elb_target registers or deregisters but does not wait, and a wait written as
elb_target_group_info with until/retries starts a module (Python, boto3) on the control node for every poll.
This module polls describe_target_health inside one run, so a poll costs one API call.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: aws_alb_target
short_description: Register a target and wait until it is healthy, or deregister it and wait until it has drained
description:
  - C(state=registered) waits until the target group's load balancers are C(active) (a target registered
    while its load balancer provisions stays C(initial)), registers the target unless it is already
    registered, and waits until the load balancer calls it C(healthy). A target that is C(draining) is
    registered again (it is on its way out).
  - C(state=drained) deregisters the target unless it is already gone or C(unused), and waits until it has drained.
  - The waits are derived from the target group's own settings; the module fails, naming the target's last
    state and reason, when a wait runs out.
  - In check mode nothing is registered or deregistered and nothing is waited for; the result says whether
    a change would be made.
options:
  target_group_arn:
    description: ARN of the target group. One of I(target_group_arn) and I(target_group_name) is required.
    type: str
  target_group_name:
    description: Name of the target group.
    type: str
  target_id:
    description: The target, an EC2 instance id for a target group of type instance.
    type: str
    required: true
  target_port:
    description: The target's port; 0 means the target group's port.
    type: int
    default: 0
  state:
    description: C(registered) or C(drained).
    type: str
    choices: [registered, drained]
    default: registered
  wait:
    description: Wait until the target is healthy (registered) or has drained (drained).
    type: bool
    default: true
  poll_interval:
    description: Seconds between two reads of the target's health while waiting.
    type: float
    default: 1.0
  register_margin:
    description:
      - Seconds added to the registration wait of interval x (healthy threshold + 1) + check timeout. On AWS a
        new target stays C(initial) for tens of seconds before its first check while the registration reaches
        every load balancer node.
    type: int
    default: 120
  drain_margin:
    description: Seconds added to the drain wait of the target group's deregistration delay.
    type: int
    default: 30
  lb_active_timeout:
    description: Seconds to wait for the target group's load balancers to be C(active) before registering.
    type: int
    default: 600
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author: ec2-fleet contributors
"""

EXAMPLES = r"""
- name: Take the host out of the target group and wait until its requests have drained
  ec2_fleet.fleet.aws_alb_target:
    target_group_name: web-tg
    target_id: "{{ instance_id }}"
    state: drained
  delegate_to: localhost

- name: Put it back and wait until the load balancer calls it healthy
  ec2_fleet.fleet.aws_alb_target:
    target_group_name: web-tg
    target_id: "{{ instance_id }}"
    state: registered
  delegate_to: localhost
"""

RETURN = r"""
target_group_arn:
  description: The target group's ARN.
  returned: always
  type: str
state_before:
  description: The target's state before the run (C(unregistered) when it was not in the target group).
  returned: always
  type: str
state:
  description: The target's state at the end (C(unregistered) when it is gone from the target group).
  returned: always
  type: str
reason:
  description: The load balancer's reason code for the last state, if it gave one.
  returned: always
  type: str
waited_s:
  description: Seconds spent waiting (for the load balancers and for the target).
  returned: always
  type: float
timeout_s:
  description: The longest the target's wait could take, derived from the target group's settings.
  returned: always
  type: int
polls:
  description: Reads of the target's health while waiting.
  returned: always
  type: int
"""

import time  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry  # noqa: E402
from ansible_collections.ec2_fleet.fleet.plugins.module_utils.fleet_aws import aws_errors  # noqa: E402

GONE = ("unregistered", "unused")
REGISTERED = ("initial", "healthy", "unhealthy", "unavailable")


class Target:
    def __init__(self, module: AnsibleAWSModule) -> None:
        self.module = module
        self.client = module.client("elbv2", retry_decorator=AWSRetry.jittered_backoff(retries=10))
        p = module.params
        self.id = p["target_id"]
        self.port = p["target_port"]
        self.group = self._group(p["target_group_arn"], p["target_group_name"])
        self.arn = self.group["TargetGroupArn"]
        self.name = self.group["TargetGroupName"]
        self.polls = 0

    def fail(self, msg: str, exc: Exception | None = None, **extra: object) -> None:
        if exc is not None:
            self.module.fail_json_aws(exc, msg=msg, **extra)
        self.module.fail_json(msg=msg, **extra)

    def _group(self, arn: str | None, name: str | None) -> dict:
        try:
            found = self.client.describe_target_groups(
                aws_retry=True, **({"TargetGroupArns": [arn]} if arn else {"Names": [name]})
            )["TargetGroups"]
        except aws_errors() as e:
            self.fail(f"Unable to read the target group {arn or name}", e)
        if not found:
            self.fail(f"No target group {arn or name}")
        return found[0]

    def deregistration_delay(self) -> int:
        try:
            attributes = self.client.describe_target_group_attributes(aws_retry=True, TargetGroupArn=self.arn)
        except aws_errors() as e:
            self.fail(f"Unable to read the attributes of {self.name}", e)
        values = {a["Key"]: a["Value"] for a in attributes["Attributes"]}
        return int(values.get("deregistration_delay.timeout_seconds", 300))

    def _spec(self) -> dict:
        return {"Id": self.id, **({"Port": self.port} if self.port else {})}

    def health(self) -> tuple[str, str]:
        """The target's state and reason; unregistered when the target group does not list it."""
        self.polls += 1
        try:
            found = self.client.describe_target_health(aws_retry=True, TargetGroupArn=self.arn)
        except aws_errors() as e:
            self.fail(f"Unable to read the targets' health in {self.name}", e)
        for item in found["TargetHealthDescriptions"]:
            target = item["Target"]
            if target["Id"] == self.id and (not self.port or target.get("Port") == self.port):
                health = item.get("TargetHealth", {})
                return health.get("State", "unknown"), health.get("Reason", "")
        return "unregistered", ""

    def register(self) -> None:
        try:
            self.client.register_targets(aws_retry=True, TargetGroupArn=self.arn, Targets=[self._spec()])
        except aws_errors() as e:
            self.fail(f"Unable to register {self.id} in {self.name}", e)

    def deregister(self) -> None:
        try:
            self.client.deregister_targets(aws_retry=True, TargetGroupArn=self.arn, Targets=[self._spec()])
        except aws_errors() as e:
            self.fail(f"Unable to deregister {self.id} from {self.name}", e)

    def wait_for_load_balancers(self, timeout: int, interval: float) -> None:
        arns = self.group.get("LoadBalancerArns") or []
        if not arns:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                lbs = self.client.describe_load_balancers(aws_retry=True, LoadBalancerArns=arns)["LoadBalancers"]
            except aws_errors() as e:
                self.fail(f"Unable to read the load balancers of {self.name}", e)
            states = [lb["State"]["Code"] for lb in lbs]
            if all(state == "active" for state in states):
                return
            if time.monotonic() >= deadline:
                self.fail(
                    f"The load balancer of {self.name} is {', '.join(states)} after lb_active_timeout={timeout} s;"
                    " a target registered now would stay initial."
                )
            time.sleep(interval)

    def wait_for(self, done: tuple[str, ...], timeout: int, interval: float) -> tuple[str, str]:
        """Poll until the state is in done or timeout seconds passed; the last state and reason."""
        deadline = time.monotonic() + timeout
        while True:
            state, reason = self.health()
            if state in done or time.monotonic() >= deadline:
                return state, reason
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "target_group_arn": {"type": "str"},
            "target_group_name": {"type": "str"},
            "target_id": {"type": "str", "required": True},
            "target_port": {"type": "int", "default": 0},
            "state": {"type": "str", "choices": ["registered", "drained"], "default": "registered"},
            "wait": {"type": "bool", "default": True},
            "poll_interval": {"type": "float", "default": 1.0},
            "register_margin": {"type": "int", "default": 120},
            "drain_margin": {"type": "int", "default": 30},
            "lb_active_timeout": {"type": "int", "default": 600},
        },
        required_one_of=[["target_group_arn", "target_group_name"]],
        mutually_exclusive=[["target_group_arn", "target_group_name"]],
        supports_check_mode=True,
    )
    p = module.params
    if p["poll_interval"] <= 0:
        module.fail_json(msg=f"poll_interval must be more than 0 seconds (got {p['poll_interval']})")
    if not p["target_id"]:
        module.fail_json(msg="target_id is empty: give the host's instance id (the aws_ec2 inventory sets instance_id)")
    target = Target(module)
    group = target.group
    started = time.monotonic()
    before, reason = target.health()
    registering = p["state"] == "registered"
    if registering:
        changed = before not in REGISTERED
        timeout = (
            group["HealthCheckIntervalSeconds"] * (group["HealthyThresholdCount"] + 1)
            + group["HealthCheckTimeoutSeconds"]
            + p["register_margin"]
        )
        done: tuple[str, ...] = ("healthy",)
    else:
        changed = before not in (*GONE, "draining")
        timeout = target.deregistration_delay() + p["drain_margin"]
        done = GONE
    state = before
    if not module.check_mode:
        if registering and changed:
            target.wait_for_load_balancers(p["lb_active_timeout"], p["poll_interval"])
            target.register()
        elif changed:
            target.deregister()
        if p["wait"] and (changed or before not in done):
            if registering and not changed:  # registered earlier, not healthy yet
                target.wait_for_load_balancers(p["lb_active_timeout"], p["poll_interval"])
            state, reason = target.wait_for(done, timeout, p["poll_interval"])
        elif changed:
            state = "initial" if registering else "draining"
    result = {
        "changed": changed,
        "target_group_arn": target.arn,
        "state_before": before,
        "state": state,
        "reason": reason,
        "waited_s": round(time.monotonic() - started, 2),
        "timeout_s": timeout,
        "polls": target.polls,
        "diff": {"before": {"state": before}, "after": {"state": "registered" if registering else "unregistered"}},
    }
    if p["wait"] and not module.check_mode and state not in done:
        if registering:
            what = "interval x (healthy threshold + 1) + timeout + register_margin"
            module.fail_json(
                msg=f"{target.id} is '{state}'{f' ({reason})' if reason else ''} in {target.name} after {timeout} s"
                f" ({what}).",
                **result,
            )
        module.fail_json(
            msg=f"{target.id} is still '{state}' in {target.name} after {timeout} s (deregistration delay +"
            " drain_margin).",
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
