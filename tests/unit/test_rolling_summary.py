"""The rolling run's summary in SSM (plugins/filter/rolling.py): valid JSON within 4 KB at any size."""

from __future__ import annotations

import json

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.rolling import (
    SUMMARY_LIMIT,
    rolling_summary,
    rolling_summary_parse,
)

RUN = {
    "run_id": "20261130T081500Z-ab12",
    "action": "deploy",
    "version": "2.0.0",
    "who": "ops@box",
    "started": "2026-11-30T08:15:00Z",
    "result": "failed",
}
RECORD = "/var/log/ec2-fleet/rolling/20261130T081500Z-ab12.json"


def _hosts(count: int, failed_every: int = 1) -> list[dict]:
    return [
        {"host": f"ip-10-40-{i // 250}-{i % 250}.eu-west-1.compute.internal-i-0{i:016x}",
         "status": "failed" if i % failed_every == 0 else "updated"}
        for i in range(count)
    ]


@pytest.mark.parametrize("count", [0, 1, 3, 40, 500, 5000])
def test_summary_is_valid_json_within_the_limit_at_any_fleet_size(count: int) -> None:
    hosts = _hosts(count)
    text = rolling_summary(RUN, hosts, RECORD)
    assert len(text.encode()) <= SUMMARY_LIMIT
    summary = json.loads(text)
    assert summary["hosts"] == count
    assert summary["counts"] == ({"failed": count} if count else {})
    assert summary["problems_total"] == count
    # The listed problems are the first ones, in order, and as many as fit.
    assert summary["problems"] == [h["host"] for h in hosts[: len(summary["problems"])]]
    assert summary["record"] == RECORD
    assert summary["run_id"] == RUN["run_id"]
    assert summary["result"] == "failed"


def test_a_large_fleet_keeps_most_problem_hosts_that_fit() -> None:
    text = rolling_summary(RUN, _hosts(500), RECORD)
    summary = json.loads(text)
    # Each name is about 50 bytes: the list fills most of the 4 KB, not a token few.
    assert 40 <= len(summary["problems"]) < 500
    assert len(text.encode()) > SUMMARY_LIMIT - 200


def test_only_hosts_that_need_attention_are_problems() -> None:
    hosts = [
        {"host": "a", "status": "updated"},
        {"host": "b", "status": "unchanged"},
        {"host": "c", "status": "failed"},
        {"host": "d", "status": "lost"},
        {"host": "e", "status": "reverted"},
        {"host": "f", "status": "not updated"},
    ]
    summary = json.loads(rolling_summary(RUN, hosts, RECORD))
    assert summary["problems"] == ["c", "d"]
    assert summary["counts"] == {"updated": 1, "unchanged": 1, "failed": 1, "lost": 1, "reverted": 1, "not updated": 1}


def test_long_names_and_multibyte_text_still_fit() -> None:
    run = {**RUN, "who": "é" * 5000}
    hosts = [{"host": "ü" * 300 + str(i), "status": "failed"} for i in range(100)]
    text = rolling_summary(run, hosts, RECORD)
    assert len(text.encode()) <= SUMMARY_LIMIT
    assert json.loads(text)["problems_total"] == 100


@pytest.mark.parametrize(("raw", "expected"), [
    ("", {}),
    (None, {}),
    ('{"run_id": "x", "result": "succeeded"}', {"run_id": "x", "result": "succeeded"}),
])
def test_parse_reads_a_summary_or_nothing(raw, expected) -> None:
    assert rolling_summary_parse(raw) == expected


def test_parse_of_a_summary_cut_mid_json_says_so_instead_of_failing() -> None:
    cut = json.dumps({**RUN, "problems": [h["host"] for h in _hosts(200)]})[:4000]
    parsed = rolling_summary_parse(cut)
    assert "run_id" not in parsed
    assert parsed["unreadable"] == "not valid JSON (4000 characters)"
    assert rolling_summary_parse("[1, 2]") == {"unreadable": "not a JSON object"}
