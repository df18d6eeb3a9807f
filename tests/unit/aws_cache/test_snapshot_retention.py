"""Automatic snapshots of the replication group (snapshot_retention_limit, snapshot_window), against moto."""

from __future__ import annotations

from typing import Any

import pytest
from test_elasticache_replication_group import describe, group_args, run
from test_elasticache_replication_group import subnet_group as subnet_group  # a fixture


def test_snapshot_settings_are_created_kept_and_changed_in_place(capsys, aws, moto: str, subnet_group: str) -> None:
    created = run(capsys, moto, **group_args(snapshot_retention_limit=7, snapshot_window="02:00-03:00"))
    assert created["changed"] is True, created
    stored = describe(aws)
    assert stored["SnapshotRetentionLimit"] == 7
    assert stored["SnapshotWindow"] == "02:00-03:00"
    assert created["replication_group"]["snapshot_retention_limit"] == 7

    again = run(capsys, moto, **group_args(snapshot_retention_limit=7, snapshot_window="02:00-03:00"))
    assert again["changed"] is False, again

    # Omitted: no check (the AWS value stays); given: changed in place, shown in the diff.
    assert run(capsys, moto, **group_args())["changed"] is False
    changed = run(capsys, moto, diff=True, **group_args(snapshot_retention_limit=1))
    assert changed["changed"] is True
    assert changed["modified"] == ["SnapshotRetentionLimit"]
    assert changed["diff"]["before"]["snapshot_retention_limit"] == 7
    assert changed["diff"]["after"]["snapshot_retention_limit"] == 1
    assert describe(aws)["SnapshotRetentionLimit"] == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"snapshot_retention_limit": 36}, "snapshot_retention_limit must be 0-35 days"),
        ({"snapshot_retention_limit": -1}, "snapshot_retention_limit must be 0-35 days"),
        ({"snapshot_window": "03:00-03:30"}, "snapshot_window must be a UTC range"),
        ({"snapshot_window": "3am"}, "snapshot_window must be a UTC range"),
    ],
)
def test_bad_snapshot_settings_fail_before_any_aws_call(
    capsys, closed_url: str, overrides: dict[str, Any], message: str
) -> None:
    result = run(capsys, closed_url, **group_args(**overrides))
    assert result.get("failed") is True
    assert message in result["msg"]


def test_a_window_may_wrap_past_midnight(capsys, closed_url: str) -> None:
    # Valid options reach AWS: against a closed port that is a connection error, not a refusal.
    result = run(capsys, closed_url, **group_args(snapshot_window="23:30-00:30"))
    assert "snapshot_window" not in result.get("msg", "")
