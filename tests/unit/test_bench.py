"""The benchmarks' own arithmetic and parsing (ec2_fleet_dev.bench): what turns a run's output into its figures."""

from __future__ import annotations

from collections import Counter

import pytest

from ec2_fleet_dev.bench import benchlib, cache, rolling

PROFILE = """\
PLAY RECAP *********************************************************************
i-1 : ok=40 changed=9 unreachable=0 failed=0 skipped=30 rescued=0 ignored=0

TASKS RECAP ********************************************************************
Friday 27 November 2026  09:20:01 +0000 (0:00:00.050)       0:04:10.000 *******
===============================================================================
alb_target : Wait until the target is healthy i-1 ---------------------- 13.40s
app : Build each artifact once, reused while it exists, for orders-api 2.0.0 --- 6.12s
app : Install the wheels with no package index ------------------------- 5.01s
"""


def test_the_build_time_comes_from_the_build_task_of_the_profile() -> None:
    assert rolling.build_seconds(PROFILE) == 6.12
    # A cached artifact: the build task is not among the slow ones (or took no time).
    assert rolling.build_seconds(PROFILE.replace("Build each artifact once", "Unpack the artifact")) == 0


def test_the_unavoidable_waits_are_delay_plus_registration_plus_checks_plus_the_app_start() -> None:
    assert rolling._waits(rolling.ALB_DEFAULTS, 10.0, 10.0) == {
        "drain_s": 300, "register_s": 160.0, "app_start_s": 10.0, "registration_delay_s": 10.0, "total_s": 470.0}
    assert rolling._waits(rolling.RECOMMENDED, 7.5)["total_s"] == 57.5


def test_the_pricing_table_adds_the_measured_overhead_to_each_settings_waits() -> None:
    runs = [{"label": "lab settings", "wall_s": 120.0, "build_s": 5.0, "load": 1.0, "overhead_per_host_s": 9.0,
             "waits": rolling._waits(rolling.LAB, 8.0), "outside_hosts_s": 3.0,
             "steps": {"stage_s": 4.0, "drain_s": 6.0, "deploy_s": 10.0, "register_s": 11.0,
                       "out_of_service_s": 27.0, "total_s": 31.0}}]
    result = rolling.result(runs, [8.0, 8.0, 8.0], "10.233")
    # In the host's turn: 31 s minus its staging (4 s, every host at once: once per run) and its waits
    # (5 + 10 + 8); once per run: 3 s.
    assert result["figures"]["overhead_split"] == {
        "stage_s": 4.0, "out_of_service_s": 4.0, "per_host_s": 4.0, "per_run_s": 3.0}
    alb = next(r for r in result["figures"]["projected"] if r[0].startswith("ALB defaults"))
    assert alb[5] == 300 + 150 + 8.0 + 4.0  # per host
    assert alb[6] == round((alb[5] * 3 + 3.0) / 60, 1) and alb[7] == round((alb[5] * 20 + 3.0) / 60, 1)
    assert result["targets"][0]["met"] is False  # 9 s is not under 8 s


def test_the_request_stream_is_the_same_for_the_same_seed_and_skewed() -> None:
    ids = list(range(1, 501))
    first, again = cache.stream(ids), cache.stream(ids)
    assert first == again and len(first) == cache.REQUESTS
    assert cache.stream(ids, seed=cache.SEED + 1) != first
    counts = Counter(first).most_common()
    # Zipf-like: the most requested order is asked more than ten times as often as the median one.
    assert counts[0][1] > 10 * counts[len(counts) // 2][1]
    assert set(first) <= set(ids)


def test_a_failed_command_stops_the_benchmark_with_the_end_of_its_output() -> None:
    ok = benchlib.Timed(wall=1.0, cpu=0.5, rc=0, output="fine", load=0.1)
    assert ok.checked("site.yml") is ok
    failed = benchlib.Timed(wall=1.0, cpu=0.5, rc=2, output="x" * 5000 + "TASK [app : boom] failed", load=0.1)
    with pytest.raises(RuntimeError, match=r"^site.yml failed \(rc 2\):") as err:
        failed.checked("site.yml")
    assert str(err.value).endswith("TASK [app : boom] failed")
