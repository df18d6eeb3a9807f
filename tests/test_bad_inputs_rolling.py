"""Bad inputs of rolling_update.yml and rollback.yml: refused on the control node before any AWS call
or host change, each message naming the setting and what is allowed."""

from __future__ import annotations

import os

import pytest

from ec2_fleet_dev.plays import ROOT, failure_messages, free_port, run_playbook

CASES = [
    # (id, playbook, extra vars, phrase the failure must contain)
    ("no-version", "rolling_update", {}, "rolling_update.yml needs -e app_version=V"),
    ("version-with-slash", "rolling_update", {"app_version": "2.0/../x"}, "app_version must be a release version"),
    ("rollback-to-bad", "rollback", {"rollback_to": "1.0 beta"}, "rollback_to must be a release version"),
    ("site-rollback-var", "rolling_update", {"app_version": "2.0.0", "app_rollback": True},
     "roll back the fleet with playbooks/rollback.yml"),
    ("batch-zero", "rolling_update", {"app_version": "2.0.0", "rolling_batch": 0}, "rolling_batch: a count must be 1"),
    ("batch-percent-over", "rolling_update", {"app_version": "2.0.0", "rolling_batch": "150%"},
     "rolling_batch: '150%' is not a count"),
    ("batch-word", "rolling_update", {"app_version": "2.0.0", "rolling_batch": ["1", "half"]},
     "rolling_batch: 'half' is not a count"),
    ("min-healthy-over", "rolling_update", {"app_version": "2.0.0", "rolling_min_healthy_percent": 120},
     "rolling_min_healthy_percent must be 0-100 (got 120)"),
    ("on-failure-unknown", "rolling_update", {"app_version": "2.0.0", "rolling_on_failure": "ignore"},
     "rolling_on_failure stop or rollback_all (got ignore)"),
    ("order-unknown", "rolling_update", {"app_version": "2.0.0", "rolling_order": "random"},
     "rolling_order inventory or az (got random)"),
    ("bake-negative", "rolling_update", {"app_version": "2.0.0", "rolling_bake_seconds": -5},
     "rolling_bake_seconds a number of seconds (got -5)"),
    ("alarm-poll-zero", "rolling_update", {"app_version": "2.0.0", "rolling_alarm_poll_seconds": 0},
     "rolling_alarm_poll_seconds must be a number of seconds, 1 or more (got 0)"),
    ("alarm-name-not-text", "rolling_update", {"app_version": "2.0.0", "rolling_alarms": [["a", "b"]]},
     "rolling_alarms must be a list of CloudWatch alarm names"),
    ("strategy-unknown", "rolling_update", {"app_version": "2.0.0", "rolling_strategy": "blue-green"},
     "rolling_strategy must be rolling or canary (got blue-green)"),
    ("canary-weights-not-increasing", "rolling_update", {"app_version": "2.0.0", "rolling_strategy": "canary",
     "rolling_canary_weights": [25, 5, 100]}, "rolling_canary_weights must be a list of percentages of the requests "
     "sent to the canary, each 1-100, strictly increasing, the last one 100, such as [5, 25, 100] (got [25, 5, 100])"),
    ("canary-weights-over-100", "rolling_update", {"app_version": "2.0.0", "rolling_strategy": "canary",
     "rolling_canary_weights": [5, 150]}, "rolling_canary_weights must be a list of percentages"),
    ("canary-hosts-zero", "rolling_update", {"app_version": "2.0.0", "rolling_strategy": "canary",
     "rolling_canary_hosts": 0}, "rolling_canary_hosts must be a count of hosts (1 or more) or a percentage"),
    ("canary-step-negative", "rolling_update", {"app_version": "2.0.0", "rolling_strategy": "canary",
     "rolling_canary_step_seconds": -5}, "rolling_canary_step_seconds must be a number of seconds, 0 or more (got -5)"),
    ("canary-without-listener", "rolling_update", {"app_version": "2.0.0", "rolling_strategy": "canary",
     "rolling_load_balancer_name": ""}, "rolling_strategy canary needs a load balancer listener to weight, and "
     "rolling_load_balancer_name is empty"),
    ("hook-unknown", "rolling_update", {"app_version": "2.0.0", "rolling_hooks": {"before_deploy": "/etc/hostname"}},
     "rolling_hooks must map before_drain, after_deploy and after_register"),
    ("hook-missing-file", "rolling_update", {"app_version": "2.0.0", "rolling_hooks": {"after_deploy": "nope.yml"}},
     "missing: " + str(ROOT / "nope.yml")),
]


@pytest.mark.parametrize(("playbook", "extra", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_rolling_input_is_refused_before_anything_changes(playbook, extra, phrase):
    # No AWS endpoint answers: a refusal must come before any AWS call.
    env = {**os.environ, "AWS_URL": f"http://127.0.0.1:{free_port()}"}
    result = run_playbook(ROOT / "playbooks" / f"{playbook}.yml", "inventories/lab", extra, env=env, timeout=180)
    assert result.rc != 0
    messages = failure_messages(result.output)
    assert len(messages) == 1 and phrase in messages[0], messages or result.tail()
    assert "changed=" not in result.output or all(c["changed"] == 0 for c in result.recap().values())
    assert "Take the lock" not in result.output
