"""rolling_alarms against moto: the module rolling_alarm_watch (the gate the rolling role checks before each
batch and watches during each bake) and the plan step of the real playbooks/rolling_update.yml, which refuses
alarm names that do not exist before the lock is taken.

moto stores alarms and their state but evaluates none: a test flips an alarm with SetAlarmState, as
CloudWatch does when a datapoint breaches. The fleet-level behaviour (a batch taken back on an alarm during
its bake) needs hosts: the lab's tests drive it (tests/fleet).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest
from api_recorder import RecordingMotoServer

from ec2_fleet_dev.moto_aws import PLAYBOOK_ACCESS_KEY, Run
from ec2_fleet_dev.plays import failure_messages

PREFIX = "ec2-fleet-lab-gate"
SHARE = f"{PREFIX}-target-5xx-share"
P99 = f"{PREFIX}-target-response-time-p99"
LOCK = "/ec2-fleet/lab/deploy/lock"

# A playbook of one task: the module as the role calls it (module_defaults from the action group), its
# result written to a file for the test to read.
WATCH_PLAYBOOK = """\
- name: Watch alarms
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
    - name: Watch the alarms
      ec2_fleet.fleet.rolling_alarm_watch:
        names: "{{ watch_names }}"
        seconds: "{{ watch_seconds }}"
        poll_seconds: "{{ watch_poll }}"
      register: watch
      check_mode: "{{ watch_check | default(false) }}"

    - name: Keep the result
      ansible.builtin.copy:
        content: "{{ watch | to_json }}"
        dest: "{{ watch_out }}"
        mode: '0600'
      check_mode: false
"""


@pytest.fixture(scope="module")
def alarms(client: Callable) -> dict[str, str]:
    """Two deploy alarms as roles/aws_monitoring makes them: a metric math share and a p99 latency."""
    cloudwatch = client("cloudwatch")
    dims = [{"Name": "LoadBalancer", "Value": "app/ec2-fleet-lab/0123456789abcdef"}]

    def stat(metric_id: str, name: str) -> dict:
        return {"Id": metric_id, "ReturnData": False, "MetricStat": {
            "Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": name, "Dimensions": dims},
            "Period": 60, "Stat": "Sum"}}

    cloudwatch.put_metric_alarm(
        AlarmName=SHARE, ComparisonOperator="GreaterThanThreshold", Threshold=0.05, EvaluationPeriods=1,
        Metrics=[{"Id": "share", "Expression": "errors / requests", "ReturnData": True},
                 stat("errors", "HTTPCode_Target_5XX_Count"), stat("requests", "RequestCount")],
    )
    cloudwatch.put_metric_alarm(
        AlarmName=P99, ComparisonOperator="GreaterThanThreshold", Threshold=1.5, EvaluationPeriods=1, Period=60,
        Namespace="AWS/ApplicationELB", MetricName="TargetResponseTime", Dimensions=dims, ExtendedStatistic="p99",
    )
    yield {"share": SHARE, "p99": P99}
    cloudwatch.delete_alarms(AlarmNames=[SHARE, P99])


@pytest.fixture
def calm(client: Callable, alarms: dict[str, str]) -> dict[str, str]:
    """Both alarms OK before each test."""
    for name in alarms.values():
        client("cloudwatch").set_alarm_state(AlarmName=name, StateValue="OK", StateReason="test start")
    return alarms


@pytest.fixture
def watch(run: Callable[..., Run], tmp_path: Path) -> Callable[..., tuple[Run, dict, float]]:
    playbook = tmp_path / "watch.yml"
    playbook.write_text(WATCH_PLAYBOOK)

    def _watch(names: list, seconds: int = 0, poll: int = 5, check: bool = False) -> tuple[Run, dict, float]:
        out = tmp_path / f"watch-{time.monotonic_ns()}.json"
        start = time.monotonic()
        result = run(str(playbook), {"watch_names": names, "watch_seconds": seconds, "watch_poll": poll,
                                     "watch_out": str(out), "watch_check": check},
                     inventory="localhost,", timeout=120)
        took = time.monotonic() - start
        assert result.rc == 0, result.tail()
        return result, json.loads(out.read_text()), took

    return _watch


def _describe_calls(recorder: RecordingMotoServer) -> int:
    return sum(1 for c in recorder.calls_by(PLAYBOOK_ACCESS_KEY) if c.action == "DescribeAlarms")


def test_an_alarm_that_fires_during_the_bake_is_returned_within_one_poll(
    calm: dict[str, str], client: Callable, watch: Callable, moto_recorder: RecordingMotoServer
) -> None:
    poll, bake = 2, 60
    before = _describe_calls(moto_recorder)
    flipped: dict[str, float] = {}

    def flip() -> None:
        # Two seconds after the watch's first read, the share alarm breaches (as CloudWatch sets it).
        deadline = time.monotonic() + 60
        while _describe_calls(moto_recorder) == before and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)
        client("cloudwatch").set_alarm_state(
            AlarmName=calm["share"], StateValue="ALARM",
            StateReason="Threshold Crossed: 1 out of the last 1 datapoints [0.125 (05/12/26 23:10:00)] was greater "
                        "than the threshold (0.05) (minimum 1 datapoint for OK -> ALARM transition).",
        )
        flipped["at"] = time.time()

    thread = threading.Thread(target=flip, daemon=True)
    thread.start()
    _, result, took = watch([calm["p99"], calm["share"]], seconds=bake, poll=poll)
    thread.join(timeout=10)

    alarm = result["alarm"]
    assert alarm["name"] == calm["share"] and alarm["state"] == "ALARM"
    assert alarm["metric"] == "metric math: errors / requests"
    assert "[0.125 " in alarm["reason"]
    seen = datetime.strptime(alarm["seen_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    # seen_at has whole seconds: within one poll interval of the flip (+1 s for the rounding).
    assert flipped["at"] - 1 <= seen <= flipped["at"] + poll + 1, (alarm["seen_at"], flipped["at"])
    # The watch stopped at once, long before the bake's end.
    assert result["watched_s"] < 2 + poll + 3 and took < bake, (result["watched_s"], took)
    assert result["states"] == {calm["p99"]: "OK", calm["share"]: "ALARM"} and result["missing"] == []


def test_a_bake_without_alarm_watches_its_whole_time_and_returns_nothing(
    calm: dict[str, str], watch: Callable
) -> None:
    _, result, took = watch(list(calm.values()), seconds=6, poll=2)
    assert result["alarm"] == {} and result["changed"] is False
    assert 6 <= result["watched_s"] < 8, result["watched_s"]
    # A read at 0, 2, 4 and 6 s: bounded by the bake and the poll interval.
    assert 3 <= result["checks"] <= 5, result["checks"]
    assert took < 60


def test_an_alarm_already_in_alarm_is_found_by_one_check_even_in_check_mode(
    calm: dict[str, str], client: Callable, watch: Callable
) -> None:
    client("cloudwatch").set_alarm_state(
        AlarmName=calm["p99"], StateValue="ALARM",
        StateReason="Threshold Crossed: 1 datapoint [2.4 (05/12/26 23:12:00)] was greater than the threshold (1.5).",
    )
    for check in (False, True):
        _, result, _ = watch([calm["share"], calm["p99"]], seconds=0, check=check)
        assert result["checks"] == 1
        assert result["alarm"]["name"] == calm["p99"]
        assert result["alarm"]["metric"] == "AWS/ApplicationELB/TargetResponseTime (p99)"
        assert "[2.4 " in result["alarm"]["reason"]


def test_names_that_do_not_exist_are_listed(calm: dict[str, str], watch: Callable) -> None:
    _, result, _ = watch([calm["share"], f"{PREFIX}-nope", "payments-5xx"])
    assert result["missing"] == [f"{PREFIX}-nope", "payments-5xx"] and result["alarm"] == {}


# --- The plan step of the real playbook: alarm names checked before the lock -------------------------------

def _lock_exists(client: Callable) -> bool:
    return bool(client("ssm").get_parameters(Names=[LOCK])["Parameters"])


@pytest.mark.parametrize(("extra", "phrase", "missing"), [
    ({"rolling_alarms": [SHARE, f"{PREFIX}-typo"]},
     "rolling_alarms names alarms that do not exist in this account and region: ec2-fleet-lab-gate-typo.",
     [f"{PREFIX}-typo"]),
    # The environment's default: its deploy alarms, here never provisioned.
    ({}, "rolling_alarms names alarms that do not exist in this account and region: ec2-fleet-lab-target-5xx-share, "
         "ec2-fleet-lab-alb-5xx-share, ec2-fleet-lab-target-response-time-p99.", []),
    ({"rolling_strategy": "canary", "rolling_alarms": [SHARE], "rolling_canary_alarms": [P99, f"{PREFIX}-canary-typo"]},
     "rolling_canary_alarms names alarms that do not exist in this account and region: ec2-fleet-lab-gate-canary-typo.",
     [f"{PREFIX}-canary-typo"]),
], ids=["one-unknown-name", "default-alarms-not-provisioned", "unknown-canary-alarm"])
def test_an_alarm_that_does_not_exist_is_refused_before_the_lock(
    calm: dict[str, str], client: Callable, run: Callable[..., Run], extra: dict, phrase: str, missing: list
) -> None:
    monitoring = client("cloudwatch").describe_alarms(AlarmNamePrefix="ec2-fleet-lab-target-")["MetricAlarms"]
    if not extra and monitoring:
        pytest.skip("the environment's deploy alarms exist in this moto (provisioned by another test)")
    result = run("playbooks/rolling_update.yml", {"app_version": "2.0.0", "fleet_hosts": "no_such_group", **extra},
                 timeout=180)
    assert result.rc != 0
    messages = failure_messages(result.output)
    assert len(messages) == 1 and phrase in messages[0], messages or result.tail()
    assert "Take the lock" not in result.output and not _lock_exists(client)
    assert all(c["changed"] == 0 for c in result.recap().values())


def test_alarms_that_exist_pass_the_plan_step(
    calm: dict[str, str], run: Callable[..., Run], moto_recorder: RecordingMotoServer
) -> None:
    before = _describe_calls(moto_recorder)
    result = run("playbooks/rolling_update.yml", {"app_version": "2.0.0", "fleet_hosts": "no_such_group",
                                                  "rolling_alarms": [SHARE, P99]}, timeout=180)
    # Past the alarm check (one DescribeAlarms), the plan stops at the host pattern that matches nothing.
    messages = failure_messages(result.output)
    assert len(messages) == 1 and "No host matches 'no_such_group'" in messages[0], messages or result.tail()
    assert _describe_calls(moto_recorder) == before + 1


@pytest.mark.parametrize(("extra", "phrase"), [
    ({"rolling_alarms": [SHARE], "rolling_alarm_poll_seconds": 0},
     "rolling_alarm_poll_seconds must be a number of seconds, 1 or more (got 0)"),
    ({"rolling_alarms": [SHARE, 7]}, "rolling_alarms must be a list of CloudWatch alarm names"),
    ({"rolling_alarms": [SHARE], "rolling_bake_seconds": -30}, "rolling_bake_seconds a number of seconds (got -30)"),
], ids=["poll-zero", "name-not-a-string", "bake-negative"])
def test_bad_alarm_settings_are_refused_before_any_aws_call(
    calm: dict[str, str], client: Callable, run: Callable[..., Run], moto_recorder: RecordingMotoServer,
    extra: dict, phrase: str
) -> None:
    before = len(moto_recorder.calls_by(PLAYBOOK_ACCESS_KEY))
    result = run("playbooks/rolling_update.yml", {"app_version": "2.0.0", "fleet_hosts": "no_such_group", **extra},
                 timeout=180)
    assert result.rc != 0
    messages = failure_messages(result.output)
    assert len(messages) == 1 and phrase in messages[0], messages or result.tail()
    # Refused by the role's input check (validate), before the inventory or the plan made any call.
    assert "Read the alarms that gate the run" not in result.output and not _lock_exists(client)
    # Only the aws_ec2 inventory (EC2 reads, as ansible-playbook starts) reached AWS.
    others = [c.iam_action for c in moto_recorder.calls_by(PLAYBOOK_ACCESS_KEY)[before:] if c.service != "ec2"]
    assert others == [], others


def test_a_rollback_is_never_held_back_by_the_alarms(
    calm: dict[str, str], client: Callable, run: Callable[..., Run], moto_recorder: RecordingMotoServer
) -> None:
    """A rollback is what one runs when an alarm fires: rollback.yml neither reads nor checks rolling_alarms."""
    client("cloudwatch").set_alarm_state(AlarmName=calm["share"], StateValue="ALARM", StateReason="firing")
    before = _describe_calls(moto_recorder)
    # A host pattern that matches nothing: the plan stops at the hosts, past the alarm check it skipped.
    result = run("playbooks/rollback.yml", {"rolling_alarms": [calm["share"], f"{PREFIX}-typo"],
                                            "fleet_hosts": "no_such_group"}, timeout=180)
    messages = failure_messages(result.output)
    assert result.rc != 0 and len(messages) == 1 and "No host matches" in messages[0], messages or result.tail()
    assert _describe_calls(moto_recorder) == before
