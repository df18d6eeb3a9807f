"""The rolling role's input checks (plugins/filter/rolling.py): the release given to the playbooks and the
role's settings, each wrong value named with what is allowed, in the words operators know."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.rolling import (
    rolling_hook_paths,
    rolling_input_errors,
    rolling_release_errors,
)

GOOD = {
    "rolling_action": "deploy",
    "rolling_version": "2.0.0",
    "rolling_batch": 1,
    "rolling_min_healthy_percent": 50,
    "rolling_on_failure": "stop",
    "rolling_order": "inventory",
    "rolling_bake_seconds": 0,
    "rolling_break_lock": False,
    "rolling_hooks": {},
    "rolling_ssm_prefix": "/ec2-fleet/lab/deploy",
    "rolling_audit_dir": "/tmp/audit",
    "rolling_target_group_name": "ec2-fleet-lab-tg",
    "rolling_app_root": "/srv/orders-api",
}


def test_good_inputs_have_no_error():
    assert rolling_input_errors(GOOD) == []
    # As -e passes them: strings.
    assert rolling_input_errors({**GOOD, "rolling_min_healthy_percent": "66", "rolling_bake_seconds": "60",
                                 "rolling_break_lock": "true", "rolling_batch": [1, "50%", "100%"]}) == []
    assert rolling_input_errors({**GOOD, "rolling_action": "rollback", "rolling_version": ""}) == []


@pytest.mark.parametrize(("changes", "phrase"), [
    ({"rolling_min_healthy_percent": 120}, "rolling_min_healthy_percent must be 0-100 (got 120)"),
    ({"rolling_min_healthy_percent": "half"}, "rolling_min_healthy_percent must be 0-100 (got half)"),
    ({"rolling_on_failure": "ignore"}, "rolling_on_failure stop or rollback_all (got ignore)"),
    ({"rolling_order": "random"}, "rolling_order inventory or az (got random)"),
    ({"rolling_bake_seconds": -5}, "rolling_bake_seconds a number of seconds (got -5)"),
    ({"rolling_break_lock": "maybe"}, "rolling_break_lock true or false (got maybe)"),
    ({"rolling_batch": 0}, "rolling_batch: a count must be 1 or more (got 0)"),
    ({"rolling_batch": "150%"}, "rolling_batch: '150%' is not a count"),
    ({"rolling_batch": ["1", "half"]}, "rolling_batch: 'half' is not a count"),
    ({"rolling_action": "redeploy"}, "rolling_action must be deploy or rollback (got redeploy)"),
    ({"rolling_version": ""}, "rolling_version is required to deploy"),
    ({"rolling_version": "2.0/../x"}, "rolling_version must be a release version such as 2.0.0"),
    ({"rolling_ssm_prefix": ""}, "rolling_ssm_prefix must be an SSM parameter path"),
    ({"rolling_ssm_prefix": "ec2-fleet/lab"}, "rolling_ssm_prefix must be an SSM parameter path"),
    ({"rolling_audit_dir": ""}, "rolling_audit_dir must name a directory"),
    ({"rolling_target_group_name": ""}, "rolling_target_group_name must name the target group"),
    ({"rolling_app_root": "srv/app"}, "rolling_app_root must be the absolute directory"),
    ({"rolling_hooks": {"before_deploy": "/etc/hostname"}},
     "rolling_hooks must map before_drain, after_deploy and after_register to task files that exist"),
    ({"rolling_hooks": ["after_deploy"]}, "rolling_hooks must map before_drain"),
])
def test_each_wrong_input_is_named_with_what_is_allowed(changes, phrase):
    errors = rolling_input_errors({**GOOD, **changes})
    assert len(errors) == 1 and phrase in errors[0], errors


def test_every_wrong_input_is_reported_at_once():
    errors = rolling_input_errors({**GOOD, "rolling_batch": 0, "rolling_action": "x", "rolling_audit_dir": ""})
    assert len(errors) == 3, errors


def test_hook_files_are_found_from_the_operators_directory(tmp_path: Path):
    (tmp_path / "smoke.yml").write_text("---\n")
    hooks = {"after_deploy": "smoke.yml", "before_drain": "/nonexistent/drain.yml"}
    assert rolling_hook_paths(hooks, str(tmp_path)) == {"after_deploy": str(tmp_path / "smoke.yml"),
                                                        "before_drain": "/nonexistent/drain.yml"}
    errors = rolling_input_errors({**GOOD, "rolling_hooks": hooks}, str(tmp_path))
    assert errors == ["rolling_hooks must map before_drain, after_deploy and after_register to task files that "
                      f"exist (got {hooks}; missing: /nonexistent/drain.yml)."]
    assert rolling_input_errors({**GOOD, "rolling_hooks": {"after_deploy": "smoke.yml"}}, str(tmp_path)) == []
    assert rolling_hook_paths("not a mapping") == {}


@pytest.mark.parametrize(("given", "phrase"), [
    ({}, "rolling_update.yml needs -e app_version=V"),
    ({"app_version": None}, "rolling_update.yml needs -e app_version=V"),
    ({"app_version": "2.0/../x"}, "app_version must be a release version such as 2.0.0 (letters, digits, . _ -; "
                                  "got 2.0/../x)"),
    ({"rolling_action": "rollback", "rollback_to": "1.0 beta"},
     "rollback_to must be a release version such as 1.0.0 (got 1.0 beta)"),
    ({"app_version": "2.0.0", "app_rollback": True}, "roll back the fleet with playbooks/rollback.yml"),
    ({"app_version": "2.0.0", "app_rollback_to": "1.0.0"}, "app_rollback and app_rollback_to are for site.yml"),
])
def test_the_release_given_to_the_playbooks(given, phrase):
    errors = rolling_release_errors(given)
    assert len(errors) == 1 and phrase in errors[0], errors


def test_a_good_release_has_no_error():
    assert rolling_release_errors({"app_version": "2.0.0"}) == []
    assert rolling_release_errors({"app_version": 2}) == []  # -e app_version=2 as JSON
    assert rolling_release_errors({"rolling_action": "rollback"}) == []
    assert rolling_release_errors({"rolling_action": "rollback", "rollback_to": "1.0.0", "app_version": None}) == []
