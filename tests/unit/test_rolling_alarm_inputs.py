"""The rolling role's alarm gate in plugins/filter/rolling.py: rolling_alarms and rolling_alarm_poll_seconds
checked before anything changes, the stop an alarm makes, and the alarm in the run's SSM summary."""

from __future__ import annotations

import json

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.rolling import (
    rolling_alarm_errors,
    rolling_alarm_halt,
    rolling_input_errors,
    rolling_summary,
)
from test_rolling_checks import GOOD

ALARMS = ["ec2-fleet-lab-target-5xx-share", "ec2-fleet-lab-alb-5xx-share", "ec2-fleet-lab-target-response-time-p99"]


def test_good_alarm_settings_have_no_error():
    assert rolling_input_errors({**GOOD, "rolling_alarms": ALARMS, "rolling_alarm_poll_seconds": 5}) == []
    # None and [] both turn the watch off; -e passes numbers as strings.
    assert rolling_alarm_errors({"rolling_alarms": [], "rolling_alarm_poll_seconds": "1"}) == []
    assert rolling_alarm_errors({"rolling_alarms": None}) == []


@pytest.mark.parametrize(("changes", "phrase"), [
    ({"rolling_alarms": "ec2-fleet-lab-target-5xx-share"},
     "rolling_alarms must be a list of CloudWatch alarm names, [] for none (got 'ec2-fleet-lab-target-5xx-share')"),
    ({"rolling_alarms": [5]}, "rolling_alarms must be a list of CloudWatch alarm names (strings of 1-255 characters), "
                              "[] for none (not: 5)"),
    ({"rolling_alarms": [{"name": "x"}]}, "(not: {'name': 'x'})"),
    ({"rolling_alarms": ["ok", ""]}, "(not: '')"),
    ({"rolling_alarms": ["a" * 256]}, "strings of 1-255 characters"),
    ({"rolling_alarms": [f"alarm-{i}" for i in range(101)]}, "rolling_alarms: at most 100 alarms (got 101)"),
    ({"rolling_alarm_poll_seconds": 0}, "rolling_alarm_poll_seconds must be a number of seconds, 1 or more (got 0)"),
    ({"rolling_alarm_poll_seconds": -3}, "rolling_alarm_poll_seconds must be a number of seconds, 1 or more (got -3)"),
    ({"rolling_alarm_poll_seconds": "soon"}, "rolling_alarm_poll_seconds must be a number of seconds, 1 or more"),
    ({"rolling_alarm_poll_seconds": True}, "rolling_alarm_poll_seconds must be a number of seconds, 1 or more"),
])
def test_bad_alarm_settings_are_named(changes, phrase):
    errors = rolling_input_errors({**GOOD, "rolling_alarms": ALARMS, **changes})
    assert len(errors) == 1 and phrase in errors[0], errors


def test_negative_bake_is_still_refused_with_alarms():
    errors = rolling_input_errors({**GOOD, "rolling_alarms": ALARMS, "rolling_bake_seconds": -1})
    assert len(errors) == 1 and "rolling_bake_seconds a number of seconds (got -1)" in errors[0]


ALARM = {
    "name": "ec2-fleet-lab-target-5xx-share",
    "state": "ALARM",
    "metric": "metric math: errors / requests",
    "reason": "Threshold Crossed: 1 datapoint [0.1 (05/12/26 23:10:00)] was greater than the threshold (0.05).",
    "state_updated": "2026-12-05T23:10:04Z",
    "seen_at": "2026-12-05T23:10:06Z",
}


def test_an_alarm_stop_names_the_alarm_its_metric_value_and_time():
    halt = rolling_alarm_halt(ALARM, "during the bake of batch 1 (web-1)")
    assert halt["pass"] == "forward"
    assert halt["msg"] == (
        "Stopped during the bake of batch 1 (web-1): alarm ec2-fleet-lab-target-5xx-share in ALARM "
        "(metric math: errors / requests), seen at 2026-12-05T23:10:06Z: Threshold Crossed: 1 datapoint "
        "[0.1 (05/12/26 23:10:00)] was greater than the threshold (0.05)."
    )
    assert halt["alarm"]["reason"] == ALARM["reason"] and halt["alarm"]["seen_at"] == ALARM["seen_at"]


def test_the_ssm_summary_carries_the_alarm_and_stays_within_4_kb():
    run = {"run_id": "r1", "action": "deploy", "version": "3.0.0", "result": "failed", "alarm": ALARM}
    hosts = [{"host": f"web-{i}", "status": "failed"} for i in range(400)]
    text = rolling_summary(run, hosts, "/audit/r1.json")
    summary = json.loads(text)
    assert len(text.encode()) <= 4096
    assert summary["alarm"] == {k: ALARM[k] for k in ("name", "metric", "reason", "seen_at")}
    assert summary["problems_total"] == 400
    # A run no alarm stopped has none in its summary.
    assert "alarm" not in json.loads(rolling_summary({**run, "alarm": {}}, hosts[:2]))
