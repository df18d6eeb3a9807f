"""The Auto Scaling benchmark's arithmetic (ec2_fleet_dev.bench.asg): a scale-out's parts from its timestamps,
the figures and target of a whole run, and scale_out_to_first_request_s at latest.json's top level."""

from __future__ import annotations

import json

import pytest

from ec2_fleet_dev.bench import asg, benchlib

STAMPS = {"decision": 100.0, "container": 104.0, "boot": 110.5, "ready": 131.0, "registered": 133.5,
          "healthy": 154.0, "first_request": 154.5}


def test_a_scale_out_is_cut_into_its_parts_which_add_up_to_the_whole() -> None:
    parts = asg.parts_of(STAMPS)
    assert [parts[p] for p in asg.PARTS] == [4.0, 6.5, 20.5, 2.5, 20.5, 0.5]
    assert parts["total_s"] == 54.5 == round(sum(parts[p] for p in asg.PARTS), 1)


@pytest.mark.parametrize(("change", "named"), [({"healthy": None}, "without healthy"),
                                               ({"boot": 99.0}, "out of order")])
def test_a_scale_out_missing_a_step_or_out_of_order_is_an_error(change: dict, named: str) -> None:
    stamps = {k: v for k, v in {**STAMPS, **change}.items() if v is not None}
    with pytest.raises(ValueError, match=named):
        asg.parts_of(stamps)


def timed(wall: float) -> benchlib.Timed:
    return benchlib.Timed(wall=wall, cpu=5.0, rc=0, output="", load=1.0)


def run_result(totals: list[float]) -> dict:
    rounds = [{**asg.parts_of({**STAMPS, "first_request": STAMPS["healthy"] + total - 54.0}), "instance": f"i-{n}",
               "ready_in_s": 18.0} for n, total in enumerate(totals)]
    report = {"requests": 4000, "failed": 0, "failures_by_kind": {"timeout": 0}}
    return asg.result(rounds, timed(95.0), timed(80.0), 412.3, timed(150.0), timed(90.0), report, "10.233")


def test_the_median_scale_out_meets_the_target_or_says_it_does_not() -> None:
    fast = run_result([54.5, 60.5])
    assert fast["figures"]["scale_out_median"]["total_s"] == 57.5
    assert fast["targets"][0]["met"] and "57.5 s (median of 2)" in fast["targets"][0]["measured"]
    slow = run_result([95.0, 100.0])
    assert not slow["targets"][0]["met"]
    assert asg.top_level(slow) == {"scale_out_to_first_request_s": 97.5}


def test_the_deploy_table_puts_the_refresh_per_instance_beside_in_place_per_host() -> None:
    figures = run_result([54.5, 54.5])["figures"]
    assert figures["refresh_per_instance_s"] == 75.0 and figures["in_place_per_host_s"] == 30.0
    assert figures["bake_s"] == [95.0, 80.0] and figures["image_size_mb"] == 412.3


def test_the_figure_lands_at_the_top_level_of_latest_json(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(benchlib, "RESULTS", tmp_path)
    done = run_result([54.5, 60.5])
    benchlib.write_results("asg", done, asg.top_level(done))
    data = json.loads((tmp_path / "latest.json").read_text())
    assert data["scale_out_to_first_request_s"] == 57.5
    md = (tmp_path / "latest.md").read_text()
    assert "## 9. Auto Scaling" in md and "| median |" in md
