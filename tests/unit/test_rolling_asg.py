"""The rolling role with rolling_capacity asg (plugins/filter/rolling.py): the inputs an Auto Scaling group's deploy
needs, refused naming the variable, and each instance's result of the instance refresh for the report."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.rolling import (
    rolling_asg_errors,
    rolling_asg_results,
    rolling_input_errors,
    rolling_outcome,
    rolling_report_lines,
)

GOOD = {
    "rolling_action": "deploy", "rolling_version": "2.0.0", "rolling_batch": 1, "rolling_min_healthy_percent": 100,
    "rolling_on_failure": "stop", "rolling_order": "inventory", "rolling_bake_seconds": 0,
    "rolling_break_lock": False, "rolling_hooks": {}, "rolling_ssm_prefix": "/ec2-fleet/lab/deploy",
    "rolling_audit_dir": "/tmp/audit", "rolling_target_group_name": "ec2-fleet-lab-web", "rolling_app_root": "/srv/app",
    "rolling_capacity": "asg", "rolling_asg_name": "ec2-fleet-lab-web", "rolling_asg_image_id": "",
    "rolling_asg_image_tags": {"Project": "ec2-fleet", "App": "orders-api"}, "rolling_asg_max_healthy_percent": 200,
    "rolling_asg_instance_warmup": 0, "rolling_asg_wait_timeout": 3600,
}  # fmt: skip


def test_good_asg_inputs_have_no_errors_and_static_needs_no_group() -> None:
    assert rolling_input_errors(GOOD) == []
    assert rolling_asg_errors(GOOD | {"rolling_alarms": [f"gate-{n}" for n in range(10)]}) == []
    assert rolling_asg_errors(GOOD | {"rolling_capacity": "static", "rolling_asg_name": ""}) == []


@pytest.mark.parametrize(("change", "named"), [
    ({"rolling_capacity": "fargate"}, "rolling_capacity must be static (the hosts are updated in place) or asg"),
    ({"rolling_asg_name": ""}, "rolling_capacity asg needs rolling_asg_name"),
    ({"rolling_asg_image_id": "image-1"}, "rolling_asg_image_id must be an image id like ami-0123456789abcdef0"),
    ({"rolling_asg_image_tags": {}}, "finds the release's image by rolling_asg_image_tags"),
    ({"rolling_asg_max_healthy_percent": 250}, "rolling_asg_max_healthy_percent must be 100-200"),
    ({"rolling_min_healthy_percent": 50}, "at most 100 above rolling_min_healthy_percent (got 200)"),
    ({"rolling_asg_instance_warmup": -1}, "rolling_asg_instance_warmup must be a number of seconds, 0 or more"),
    ({"rolling_asg_wait_timeout": "soon"}, "rolling_asg_wait_timeout must be a number of seconds"),
    ({"rolling_hooks": {"after_deploy": "x.yml"}}, "rolling_hooks run on hosts updated in place"),
    ({"rolling_action": "rollback", "rolling_version": ""}, "a rollback in rolling_capacity asg needs the release"),
    ({"rolling_alarms": [f"gate-{n}" for n in range(11)]}, "rolling_alarms names 11 alarms; in rolling_capacity asg"),
])  # fmt: skip
def test_each_bad_asg_input_is_named(change: dict[str, Any], named: str) -> None:
    errors = rolling_asg_errors(GOOD | change)
    assert any(named in e for e in errors), errors


def instance(instance_id: str, version: str) -> dict:
    """An instance as amazon.aws.autoscaling_group_info returns it."""
    return {"instance_id": instance_id, "lifecycle_state": "InService", "launch_template": {"version": version}}


ASG = {"name": "ec2-fleet-lab-web", "from_version": "3", "instances": [instance("i-a", "3"), instance("i-b", "3")]}


def test_a_refresh_that_succeeded_replaced_every_instance_and_the_run_succeeded() -> None:
    refresh = {"changed": True, "status": "Successful", "launch_template_version": "4", "previous_version": "3"}
    results = rolling_asg_results(ASG, [instance("i-c", "4"), instance("i-d", "4")], refresh, "2.0.0")
    assert [(r["host"], r["status"], r["to"]) for r in results] == [
        ("i-a", "replaced", "2.0.0"), ("i-b", "replaced", "2.0.0"), ("i-c", "launched", "2.0.0"),
        ("i-d", "launched", "2.0.0")]  # fmt: skip
    assert rolling_outcome(results, []) == "succeeded"


def test_a_refresh_rolled_back_fails_the_run_and_says_the_group_is_back() -> None:
    refresh = {"changed": True, "status": "RollbackSuccessful", "launch_template_version": "4",
               "status_reason": "2 new instances failed to become ready", "msg": "ended RollbackSuccessful"}
    after = [instance("i-a", "3"), instance("i-e", "3")]  # i-b replaced, then the rollback put a version 3 back
    results = rolling_asg_results(ASG, after, refresh, "2.0.0")
    assert [(r["host"], r["status"]) for r in results] == [
        ("i-a", "not updated"), ("i-b", "replaced"), ("i-e", "launched"), ("ec2-fleet-lab-web", "failed")]
    assert results[2]["to"] == "template version 3"
    assert results[-1]["restored"] == "template version 3"
    assert "2 new instances failed to become ready" in results[-1]["error"]
    assert rolling_outcome(results, []) == "failed"
    lines = rolling_report_lines({"action": "deploy", "version": "2.0.0", "hosts": ["i-a", "i-b"]}, "failed",
                                 results, [], "/tmp/audit/x.json")  # fmt: skip
    assert "FAILED" in lines[0] and any("Back on template version 3" in line for line in lines), lines


def test_a_group_already_on_the_release_changes_nothing_and_succeeds() -> None:
    refresh = {"changed": False, "status": "", "launch_template_version": "3", "version_made": False}
    results = rolling_asg_results(ASG, ASG["instances"], refresh, "2.0.0")
    assert [r["status"] for r in results] == ["updated", "updated"]
    assert rolling_outcome(results, []) == "succeeded"
