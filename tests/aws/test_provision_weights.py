"""The module alb_listener_weights against moto, on the load balancer provision.yml made (the session's `lab`
fixture): the listener forwards to the main and the canary target group by weight; the module moves the
weight, in check mode says what it would do, changes nothing when the weights are already so, and refuses
weights the API would not take. A provision run during a canary puts the weights back to 100 / 0 and says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from provision_helpers import PREFIX

from ec2_fleet_dev.moto_aws import Run
from ec2_fleet_dev.plays import failure_messages

pytestmark = pytest.mark.usefixtures("lab")

# The module as a role would call it (module_defaults from the action group), its result kept in a file.
WEIGHTS_PLAYBOOK = """\
- name: Set listener weights
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  module_defaults:
    group/ec2_fleet.fleet.aws:
      region: us-east-1
      endpoint_url: "{{ lookup('ansible.builtin.env', 'AWS_URL') }}"
  tasks:
    - name: Set the weights
      ec2_fleet.fleet.alb_listener_weights:
        load_balancer: "{{ weights_lb }}"
        weights: "{{ weights_wanted }}"
      register: weights
      check_mode: "{{ weights_check | default(false) }}"
      ignore_errors: true

    - name: Keep the result
      ansible.builtin.copy:
        content: "{{ weights | to_json }}"
        dest: "{{ weights_out }}"
        mode: '0600'
      check_mode: false
"""


@pytest.fixture
def groups(client: Callable) -> dict[str, str]:
    elb = client("elbv2")
    found = elb.describe_target_groups(Names=[f"{PREFIX}-tg", f"{PREFIX}-canary"])["TargetGroups"]
    arns = {g["TargetGroupName"]: g["TargetGroupArn"] for g in found}
    return {"main": arns[f"{PREFIX}-tg"], "canary": arns[f"{PREFIX}-canary"]}


def _weights(client: Callable) -> dict[str, int]:
    """Target group ARN to weight of the load balancer's forwarding listener, as AWS describes it."""
    elb = client("elbv2")
    lb = elb.describe_load_balancers(Names=[PREFIX])["LoadBalancers"][0]["LoadBalancerArn"]
    forwards = [a for li in elb.describe_listeners(LoadBalancerArn=lb)["Listeners"] for a in li["DefaultActions"]
                if a["Type"] == "forward"]  # fmt: skip
    assert len(forwards) == 1, forwards
    return {g["TargetGroupArn"]: g["Weight"] for g in forwards[0]["ForwardConfig"]["TargetGroups"]}


@pytest.fixture
def set_weights(run: Callable[..., Run], tmp_path: Path) -> Callable[..., tuple[Run, dict]]:
    playbook = tmp_path / "weights.yml"
    playbook.write_text(WEIGHTS_PLAYBOOK)

    def _set(wanted: dict, check: bool = False, diff: bool = False, lb: str = PREFIX) -> tuple[Run, dict]:
        out = tmp_path / "weights.json"
        args = ["--diff"] if diff else []
        result = run(str(playbook), {"weights_lb": lb, "weights_wanted": wanted, "weights_out": str(out),
                                     "weights_check": check}, *args, inventory="localhost,", timeout=120)  # fmt: skip
        assert result.rc == 0, result.tail()
        return result, json.loads(out.read_text())

    return _set


def test_provision_forwards_every_request_to_the_main_group(client: Callable, groups: dict[str, str]) -> None:
    assert _weights(client) == {groups["main"]: 100, groups["canary"]: 0}


def test_weights_move_in_check_mode_not_at_all_then_for_real_then_not_again(
    client: Callable, groups: dict[str, str], set_weights: Callable
) -> None:
    main, canary = groups["main"], groups["canary"]
    try:
        checked, result = set_weights({main: 95, canary: 5}, check=True, diff=True)
        assert result["changed"] is True
        assert (result["before"], result["after"]) == ({main: 100, canary: 0}, {main: 95, canary: 5})
        assert result["diff"]["after"] == {"80": {main: 95, canary: 5}}, checked.tail()
        assert _weights(client) == {main: 100, canary: 0}, "check mode changed the listener"

        _, result = set_weights({main: 95, canary: 5})
        assert result["changed"] is True
        assert _weights(client) == {main: 95, canary: 5}
        assert [listener["port"] for listener in result["listeners"]] == [80]

        _, result = set_weights({main: 95, canary: 5})
        assert result["changed"] is False
        assert result["before"] == result["after"] == {main: 95, canary: 5}

        # Only the canary's weight given: the main group keeps its own.
        _, result = set_weights({canary: 25})
        assert _weights(client) == {main: 95, canary: 25}
    finally:
        set_weights({main: 100, canary: 0})
    assert _weights(client) == {main: 100, canary: 0}


@pytest.mark.parametrize(
    ("wanted", "message"),
    [
        ({"main": 1000, "canary": 0}, "must be a whole number from 0 to 999, got 1000"),
        ({"main": -1, "canary": 5}, "must be a whole number from 0 to 999, got -1"),
        ({"main": 0, "canary": 0}, "at least one weight must be above 0"),
        ({"main": "half", "canary": 5}, "got 'half'"),
    ],
)
def test_bad_weights_are_refused_before_any_change(
    client: Callable, groups: dict[str, str], set_weights: Callable, wanted: dict, message: str
) -> None:
    _, result = set_weights({groups[name]: weight for name, weight in wanted.items()})
    assert result["failed"] is True and message in result["msg"], result
    assert _weights(client) == {groups["main"]: 100, groups["canary"]: 0}


def test_a_load_balancer_that_forwards_elsewhere_is_refused(groups: dict[str, str], set_weights: Callable) -> None:
    _, result = set_weights({groups["canary"]: 5}, lb="ec2-fleet-nowhere")
    assert result["failed"] is True and "no load balancer ec2-fleet-nowhere" in result["msg"], result


def test_provision_ends_a_canary_in_progress_and_says_so(
    client: Callable, groups: dict[str, str], set_weights: Callable, run: Callable[..., Run], lab: dict
) -> None:
    main, canary = groups["main"], groups["canary"]
    set_weights({main: 75, canary: 25})
    provision = run("playbooks/provision.yml", lab["extra"], "--tags", "aws_alb")
    assert provision.rc == 0, provision.tail()
    assert _weights(client) == {main: 100, canary: 0}
    assert "provision set them to 100 (main) / 0 (canary" in provision.output, provision.tail(8000)
    assert provision.recap()["localhost"]["changed"] == 1, provision.tail(8000)


def test_a_canary_on_a_target_group_no_listener_forwards_to_is_refused_before_the_lock(
    client: Callable, groups: dict[str, str], run: Callable[..., Run], lab: dict
) -> None:
    """rolling_update.yml's plan checks, in check mode, that a listener weights the two groups: a canary
    whose target group exists but takes no traffic from any listener is refused before the lock, with
    nothing changed."""
    elb = client("elbv2")
    vpc = elb.describe_target_groups(TargetGroupArns=[groups["main"]])["TargetGroups"][0]["VpcId"]
    loose = elb.create_target_group(Name=f"{PREFIX}-loose", Protocol="HTTP", Port=8080, VpcId=vpc,
                                    TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    try:
        result = run("playbooks/rolling_update.yml", {
            **lab["extra"], "app_version": "2.0.0", "rolling_strategy": "canary",
            "rolling_canary_target_group_name": f"{PREFIX}-loose", "rolling_alarms": [], "rolling_canary_alarms": []},
            timeout=180)
    finally:
        elb.delete_target_group(TargetGroupArn=loose)
    assert result.rc != 0
    messages = failure_messages(result.output)
    phrase = f"no listener of {PREFIX} forwards to {PREFIX}-loose"
    assert len(messages) == 1 and phrase in messages[0], (messages, result.tail())
    assert "Take the deploy lock" not in result.output, result.tail()
    assert not client("ssm").get_parameters(Names=["/ec2-fleet/lab/deploy/lock"])["Parameters"]
    assert _weights(client) == {groups["main"]: 100, groups["canary"]: 0}
