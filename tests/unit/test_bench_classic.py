"""The side-by-side benchmark's arithmetic (ec2_fleet_dev.bench.classic): a run's figures, what it got wrong,
the ratio the issue's target reads, and the top-level figure in latest.json."""

from __future__ import annotations

import json

import pytest

from ec2_fleet_dev.bench import benchlib, classic

HOSTS = ("i-1", "i-2", "i-3")


def load_report(failed: dict | None = None, unsent: int = 0, health: list[dict] | None = None) -> dict:
    kinds = dict.fromkeys(("connect_refused", "connection_reset", "timeout", "http_5xx"), 0)
    kinds.update(failed or {})
    return {"requests": 3000, "failed": sum(kinds.values()), "failures_by_kind": kinds, "unsent": unsent,
            "unfinished": 0, "failures": [{"t": 61.2, "kind": k, "detail": "HTTP 503"} for k, n in kinds.items() if n],
            "max_targets_out_of_service": 1,
            "target_health": health or [{"t": 0, "states": dict.fromkeys(HOSTS, "healthy")},
                                        {"t": 1, "states": {"i-1": "draining", "i-2": "healthy", "i-3": "healthy"}}]}


def row(form: str, settings: str, wall: float, *, rc: int = 0, failed: dict | None = None,
        at_end: dict | None = None, served: dict | None = None, settle: float | None = 0.0) -> dict:
    version = "2.0.0"
    t = benchlib.Timed(wall=wall, cpu=10.0, rc=rc, output="", load=1.5)
    return classic.summarise(form, settings, version, t, load_report(failed),
                             at_end if at_end is not None else dict.fromkeys(HOSTS, "healthy"),
                             served if served is not None else {h: [version] for h in HOSTS}, settle, "")


def test_a_clean_run_is_timed_per_host_and_reports_nothing_wrong() -> None:
    r = row("ec2-fleet", "lab", 90.0)
    assert r["per_host_s"] == 30.0 and r["failed"] == 0 and r["failures_by_kind"] == {}
    assert r["fewest_healthy"] == 2  # one host drained at a time
    assert classic.clean(r) and classic.failures_of(r) == "-"


def test_a_short_pause_run_names_the_failures_and_the_targets_it_left_out() -> None:
    r = row("short classic", "recommended", 60.0, failed={"http_5xx": 40, "connection_reset": 2},
            at_end={"i-1": "draining", "i-2": "initial"}, settle=None)
    r["restored"] = "site.yml rc 0"
    assert not classic.clean(r)
    wrong = classic.failures_of(r)
    assert "42 requests failed (connection_reset 2, http_5xx 40)" in wrong
    assert "ended with 0 of 3 targets healthy (i-1 draining, i-2 initial, 1 not registered)" in wrong
    assert "put back by site.yml rc 0" in wrong
    # The playbook said it succeeded while a host stayed out of the target group: the reader is told why.
    assert "registers nothing while the target is still draining" in wrong
    assert "registers nothing" not in classic.failures_of({**r, "rc": 2})
    assert classic.table_rows([r])[0][5] == "connection_reset 2, http_5xx 40"


def test_a_run_whose_hosts_serve_the_old_release_is_not_clean() -> None:
    r = row("careful classic", "lab", 100.0, served={"i-1": ["2.0.0"], "i-2": ["1.0.0", "2.0.0"], "i-3": ["1.0.0"]})
    assert r["on_release_at_end"] == 1 and not classic.clean(r)
    assert "ended with 1 of 3 hosts on 2.0.0" in classic.failures_of(r)


def test_the_ratio_is_ec2_fleet_per_host_over_the_careful_classic_at_the_same_settings() -> None:
    rows = [row("ec2-fleet", "lab", 90.0), row("careful classic", "lab", 150.0), row("short classic", "lab", 60.0),
            row("ec2-fleet", "recommended", 240.0), row("careful classic", "recommended", 300.0)]
    assert classic.ratio(rows, "lab") == 0.6
    assert classic.ratio(rows, "recommended") == 0.8
    assert classic.ratio(rows[2:3], "lab") is None  # no ec2-fleet run: no ratio
    res = classic.result(rows, "10.247")
    assert res["targets"][0]["met"] is True  # 0.6 with 0 failed requests
    assert classic.top_level(res) == {"classic_ratio": 0.6}
    assert len(res["tables"][0]["rows"]) == 5 and all(len(r) == len(res["tables"][0]["columns"])
                                                       for r in res["tables"][0]["rows"])


def test_the_target_is_missed_when_ec2_fleet_drops_a_request_even_if_it_is_fast() -> None:
    rows = [row("ec2-fleet", "lab", 60.0, failed={"timeout": 1}), row("careful classic", "lab", 150.0)]
    assert classic.result(rows, "10.247")["targets"][0]["met"] is False
    rows = [row("ec2-fleet", "lab", 120.0), row("careful classic", "lab", 150.0)]
    assert classic.result(rows, "10.247")["targets"][0]["met"] is False  # 0.8 > 0.6


def test_the_top_level_figure_lands_beside_the_benchmarks_and_keeps_the_others(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(benchlib, "RESULTS", tmp_path)
    (tmp_path / "latest.json").write_text(json.dumps(
        {"benchmarks": {"rolling": {"title": "3. Rolling", "method": "m"}}, "updated": "x",
         "control_cpu_per_host_s": 4.4}))
    benchlib.write_results("classic", {"title": "7. Side by side", "method": "m"}, {"classic_ratio": 0.55})
    data = json.loads((tmp_path / "latest.json").read_text())
    assert data["classic_ratio"] == 0.55 and data["control_cpu_per_host_s"] == 4.4
    assert set(data["benchmarks"]) == {"rolling", "classic"}
    md = (tmp_path / "latest.md").read_text()
    assert "`classic_ratio` = 0.55" in md and md.index("## 3. Rolling") < md.index("## 7. Side by side")
    with pytest.raises(ValueError, match="may not be named"):
        benchlib.write_results("classic", {"title": "t", "method": "m"}, {"benchmarks": {}})


def test_the_floor_note_says_when_the_goal_is_below_the_waits() -> None:
    # Lab settings: drain 5 s, registration delay 10 s, checks 5 s x 2, and a 3 s app start: 28 s per host.
    below = classic.floor_note(43.2, 3.0, 10.0)
    assert "28.0 s per host" in below and "25.9 s per host, below them" in below
    above = classic.floor_note(100.0, 3.0, 10.0)
    assert "60.0 s per host." in above and "below" not in above
