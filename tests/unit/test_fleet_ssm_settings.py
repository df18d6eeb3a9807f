"""The module ec2_fleet.fleet.fleet_ssm_settings (the app's settings of an Auto Scaling group's instances): what it
would add, rewrite and delete, and the inputs it refuses before any call. Against moto through provision.yml:
tests/aws/test_asg_provision.py."""

from __future__ import annotations

from ansible_collections.ec2_fleet.fleet.plugins.modules.fleet_ssm_settings import input_errors, plan


def test_only_what_differs_is_written_and_keys_no_longer_set_are_deleted() -> None:
    current = {"DATABASE_URL": "postgresql://a", "REDIS_URL": "rediss://r", "OLD": "x"}
    wanted = {"DATABASE_URL": "postgresql://b", "REDIS_URL": "rediss://r", "NEW": "y"}
    assert plan(current, wanted, "present") == {"added": ["NEW"], "updated": ["DATABASE_URL"], "removed": ["OLD"]}
    assert plan(wanted, wanted, "present") == {"added": [], "updated": [], "removed": []}


def test_absent_deletes_every_key_under_the_path() -> None:
    current = {"DATABASE_URL": "postgresql://a", "REDIS_URL": "rediss://r"}
    assert plan(current, {"DATABASE_URL": "ignored"}, "absent") == {
        "added": [], "updated": [], "removed": ["DATABASE_URL", "REDIS_URL"]}  # fmt: skip


def test_bad_paths_keys_and_empty_values_are_refused_naming_them() -> None:
    assert input_errors("/ec2-fleet/staging/app-env", {"DATABASE_URL": "x", "_PRIVATE2": "y"}) == []
    errors = input_errors("/ec2-fleet/staging/app-env/", {"9LIVES": "x", "WITH-DASH": "y", "EMPTY": "", "NONE": None})
    assert len(errors) == 3, errors
    assert "no trailing slash (got '/ec2-fleet/staging/app-env/')" in errors[0]
    assert "9LIVES, WITH-DASH" in errors[1]
    assert "EMPTY, NONE" in errors[2]
    assert input_errors("ec2-fleet/staging", {}) != []  # not absolute
