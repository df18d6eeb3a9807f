"""What the rolling role computes during and after a run (plugins/filter/rolling.py): the health floor
before a batch, a host's step timings, the per-host results, the outcome and the summary lines."""

from __future__ import annotations

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.rolling import (
    rolling_health_floor,
    rolling_outcome,
    rolling_report_lines,
    rolling_results,
    rolling_timings,
)

HOSTS = ["web-a", "web-b", "web-c"]
IDS = {"web-a": "i-0a", "web-b": "i-0b", "web-c": "i-0c"}


def targets(**states: str) -> list[dict]:
    """targets_health_description as elb_target_group_info returns it."""
    return [{"target": {"id": i, "port": 8000}, "target_health": {"state": s}} for i, s in states.items()]


def test_a_batch_goes_when_enough_targets_stay_healthy():
    healthy = targets(**{"i-0a": "healthy", "i-0b": "healthy", "i-0c": "healthy"})
    assert rolling_health_floor(healthy, HOSTS, IDS, ["web-a"], 50, "batch 1") == ""
    # 66 % of 3 is 2 (rounded up): taking one of three out leaves 2.
    assert rolling_health_floor(healthy, HOSTS, IDS, ["web-a"], 66, "batch 1") == ""
    # 0 %: anything goes, even the whole fleet at once.
    assert rolling_health_floor(healthy, HOSTS, IDS, HOSTS, 0, "batch 1") == ""


def test_the_floor_stops_a_batch_and_says_which_targets_are_not_healthy():
    states = targets(**{"i-0a": "healthy", "i-0b": "unhealthy"})  # web-c is not registered at all
    msg = rolling_health_floor(states, HOSTS, IDS, ["web-a"], 50, "batch 2")
    assert msg == (
        "Stopped before batch 2 (web-a): 1 of 3 target(s) healthy (web-b unhealthy, web-c not registered); "
        "taking 1 out would leave 0, fewer than rolling_min_healthy_percent=50% of 3 (2)."
    )


def test_a_host_already_out_of_service_counts_as_not_healthy_but_not_as_taken_out():
    states = targets(**{"i-0a": "draining", "i-0b": "healthy", "i-0c": "healthy"})
    # web-a is not healthy: taking it "out" changes nothing; 2 of 3 stay, at least 2 (66 %) are needed.
    assert rolling_health_floor(states, HOSTS, IDS, ["web-a"], 66, "revert batch 1") == ""
    msg = rolling_health_floor(states, HOSTS, IDS, ["web-b"], 66, "revert batch 1")
    assert msg.startswith("Stopped before revert batch 1 (web-b): 2 of 3 target(s) healthy (web-a draining)")
    assert "would leave 1, fewer than rolling_min_healthy_percent=66% of 3 (2)." in msg


def test_no_targets_at_all_and_a_percent_given_as_text():
    assert "0 of 3 target(s) healthy" in rolling_health_floor([], HOSTS, IDS, ["web-a"], "34", "batch 1")


def test_timings_of_a_host_from_its_steps():
    # Staged for 30 s before the first batch; then a 0.1 s hook, the drain, the switch, the registration.
    marks = {"start": "130.0", "drain": 130.1, "deploy": 136.2, "register": 140.0}
    assert rolling_timings(marks, 152.26, "30.04") == {
        "stage_s": 30.0, "hook_s": 0.1, "drain_s": 6.1, "deploy_s": 3.8, "register_s": 12.3, "out_of_service_s": 22.2,
        "total_s": 52.3,
    }


def test_timings_of_a_revert_have_no_staging():
    marks = {"start": 10, "drain": 10, "deploy": 15, "register": 17}
    assert rolling_timings(marks, 30)["stage_s"] == 0.0
    assert rolling_timings(marks, 30)["total_s"] == 20.0


def result(host: str, status: str, **more) -> dict:
    return {"host": host, "instance_id": IDS[host], "from": "1.0.0", "to": "2.0.0", "status": status,
            "timings": {}, "step": "", **more}


def test_results_name_lost_and_untouched_hosts():
    results = {
        "web-a": result("web-a", "updated"),
        "web-b": result("web-b", "in progress", step="drain"),
        # web-c never planned (unreachable while facts were gathered)
    }
    out = rolling_results(HOSTS, results, IDS, "2.0.0", ["web-b", "web-c"])
    assert [r["status"] for r in out] == ["updated", "lost", "lost"]
    assert out[1]["error"] == "unreachable during drain (the last release it reported: 1.0.0 -> 2.0.0)"
    assert out[2]["error"] == "unreachable during gathering facts (the last release it reported: ? -> 2.0.0)"
    assert out[2]["instance_id"] == "i-0c"


def test_results_keep_failures_and_mark_pending_hosts_not_updated():
    results = {"web-a": result("web-a", "failed", error="at switch to 2.0.0: ..."),
               "web-b": result("web-b", "pending"), "web-c": None}
    out = rolling_results(HOSTS, results, IDS, "2.0.0", [])
    assert [r["status"] for r in out] == ["failed", "not updated", "not updated"]
    assert results["web-b"]["status"] == "pending"  # the facts themselves are not changed
    # A host that failed stays failed even when it is also lost.
    assert rolling_results(["web-a"], results, IDS, "2.0.0", ["web-a"])[0]["status"] == "failed"


@pytest.mark.parametrize(("statuses", "halts", "outcome"), [
    (["updated", "updated"], [], "succeeded"),
    (["unchanged", "updated"], [], "succeeded"),
    (["updated", "not updated"], [{"pass": "forward", "msg": "Stopped before batch 2"}], "stopped"),
    (["failed", "not updated"], [], "failed"),
    (["reverted", "revert failed"], [], "failed"),
    (["updated", "lost"], [], "failed"),
    (["refused", "not updated"], [{"pass": "plan", "msg": "Nothing was changed"}], "refused"),
])
def test_outcome(statuses, halts, outcome):
    assert rolling_outcome([{"status": s} for s in statuses], halts) == outcome


def test_report_lines_headline_stops_and_one_line_per_host():
    run = {"action": "deploy", "version": "3.0.0", "hosts": HOSTS, "run_id": "R1"}
    timings = {"forward": {"stage_s": 20.1, "drain_s": 5.2, "deploy_s": 3.3, "register_s": 11.0,
                           "out_of_service_s": 19.5, "total_s": 39.6}}
    results = [
        {**result("web-a", "updated"), "to": "3.0.0", "timings": timings},
        {**result("web-b", "failed"), "to": "3.0.0", "error": 'at switch to 3.0.0: task "x": HTTP 503',
         "restored": "1.0.0"},
        {**result("web-c", "failed"), "to": "3.0.0", "error": "at drain", "restore_error": 'task "y": gone'},
    ]
    lines = rolling_report_lines(run, "failed", results, [{"pass": "forward", "msg": "Stopped before batch 3."}],
                                 "/audit/R1.json")
    assert lines == [
        "Deploy 3.0.0 on 3 host(s): FAILED (run R1, record /audit/R1.json)",
        "Stopped before batch 3.",
        "web-a: updated 1.0.0 -> 3.0.0 (stage 20.1 s; out of service 19.5 s: drain 5.2 s, switch 3.3 s, "
        "register 11.0 s)",
        'web-b: failed 1.0.0 -> 3.0.0 at switch to 3.0.0: task "x": HTTP 503 Back on 1.0.0 and healthy in the '
        "target group.",
        'web-c: failed 1.0.0 -> 3.0.0 at drain NOT brought back: task "y": gone',
    ]


def test_report_headline_of_a_rollback_to_each_previous_release():
    run = {"action": "rollback", "version": "", "hosts": ["web-a"], "run_id": "R2"}
    lines = rolling_report_lines(run, "succeeded", [{"host": "web-a", "status": "updated", "from": "2.0.0",
                                                     "to": "1.0.0"}], [], "/a/R2.json")
    assert lines == ["Rollback to each previous release on 1 host(s): SUCCEEDED (run R2, record /a/R2.json)",
                     "web-a: updated 2.0.0 -> 1.0.0"]
