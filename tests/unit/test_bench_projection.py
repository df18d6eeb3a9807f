"""The projection to 100 and 1,000 hosts (ec2_fleet_dev.bench.projection): its model on hand-made figures, the
check against a 20-host run, and section 8 with its top-level figures written by `bench/run.py projection`."""

from __future__ import annotations

import importlib.util
import json

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.rolling import rolling_batches

from ec2_fleet_dev.bench import benchlib, projection
from ec2_fleet_dev.paths import ROOT


def scale_runs(cpu_of, wall_per_cpu: float = 1.0, sizes=(3, 10, 20)) -> dict:
    """Benchmark 2's runs: two per size, controller CPU cpu_of(n) +- 1 s (so the median is cpu_of(n))."""
    return {str(n): [{"wall_s": round(wall_per_cpu * (cpu_of(n) + d), 3), "controller_cpu_s": cpu_of(n) + d,
                      "rc": 0, "load": 2.0} for d in (-1.0, 1.0)] for n in sizes}


def rolling_run(label: str, waits: float, steps_total: float, cpu: float, outside: float = 15.0,
                overhead: float = 30.0) -> dict:
    return {"label": label, "wall_s": 0, "controller_cpu_s": cpu, "build_s": 3.0, "outside_hosts_s": outside,
            "waits": {"drain_s": 5, "register_s": 10, "app_start_s": waits - 15, "total_s": waits},
            "steps": {"total_s": steps_total}, "overhead_per_host_s": overhead}


def latest(cpu_of=lambda n: 2.0 + 4.5 * n, wall_per_cpu: float = 1.0, measured_20: float | None = None) -> dict:
    runs = scale_runs(cpu_of, wall_per_cpu)
    if measured_20 is not None:
        runs["20"] = [{"wall_s": measured_20, "controller_cpu_s": measured_20, "rc": 0, "load": 24.0}]
    return {"benchmarks": {
        "scale": {"title": "2. Scale", "method": "m", "finished": "2026-11-27", "figures": {"runs": runs}},
        "converge": {"title": "1. Converge", "method": "m", "figures": {"runs": {"tuned": [
            {"wall_s": 14.0, "controller_cpu_s": 15.0, "rc": 0, "load": 2.0}]}}},
        "rolling": {"title": "3. Rolling", "method": "m", "figures": {"runs": [
            rolling_run("lab settings", 18.0, 50.0, 78.0, overhead=38.1),
            rolling_run("recommended settings", 53.0, 84.0, 96.0, overhead=35.5)]}},
    }, "updated": "x", "classic_ratio": 1.3}


# --- The model -----------------------------------------------------------------------------------

def test_the_fit_recovers_known_coefficients_and_needs_two_sizes() -> None:
    line = projection.fit_line([(3, 2 + 3 * 4.5), (10, 2 + 10 * 4.5), (20, 2 + 20 * 4.5)])
    assert line.c0 == pytest.approx(2.0) and line.c1 == pytest.approx(4.5)
    # Symmetric noise around the line leaves the slope where it was.
    noisy = projection.fit_line([(3, 15.5 + 1), (3, 15.5 - 1), (20, 92.0 + 2), (20, 92.0 - 2)])
    assert noisy.c1 == pytest.approx(4.5) and noisy.at(100) == pytest.approx(452.0)
    with pytest.raises(ValueError, match="two or more fleet sizes"):
        projection.fit_line([(3, 14.0), (3, 15.0)])


def test_more_cores_shorten_the_no_op_only_as_far_as_the_main_process_allows() -> None:
    cpu = projection.Line(2.0, 4.0)  # 4 s of controller CPU per host
    four = projection.noop_wall(1000, 4, 50, cpu, wave_s=10.0, serial_share=0.0)
    sixteen = projection.noop_wall(1000, 16, 50, cpu, wave_s=10.0, serial_share=0.0)
    assert four["wall_s"] == pytest.approx(2.0 + 4000 / 4) and sixteen["wall_s"] == pytest.approx(2.0 + 4000 / 16)
    assert four["cpu_s"] == sixteen["cpu_s"] == 4002.0  # the CPU does not depend on the cores
    # Half of the CPU in the main process: 16 cores are no faster than 4 (both wait on it), and 2 are slower.
    serial = [projection.noop_wall(1000, k, 50, cpu, 10.0, serial_share=0.5)["wall_s"] for k in (2, 4, 16)]
    assert serial == [2002.0, 2002.0, 2002.0]
    assert projection.noop_wall(1000, 1, 50, cpu, 10.0, serial_share=0.5)["wall_s"] == 4002.0


def test_forks_cap_the_cores_used_and_set_the_waves_when_hosts_are_slow_to_answer() -> None:
    cpu = projection.Line(1.0, 0.5)
    # 16 cores but forks 5: the workers use at most 5 of them.
    assert projection.cpu_share(16, 5, 0.0) == pytest.approx(1 / 5)
    assert projection.noop_wall(100, 16, 5, cpu, wave_s=0.0, serial_share=0.0)["wall_s"] == pytest.approx(1 + 50 / 5)
    # Cheap CPU, slow hosts: 1,000 hosts in waves of 50 forks, 12 s a wave.
    slow = projection.noop_wall(1000, 16, 50, cpu, wave_s=12.0, serial_share=0.0)
    assert slow["bound"] == "latency" and slow["wall_s"] == pytest.approx(1 + 20 * 12.0)
    assert projection.noop_wall(1001, 16, 50, cpu, 12.0, 0.0)["latency_bound_s"] == 21 * 12.0


def test_batches_are_those_the_rolling_role_plans() -> None:
    for hosts, batch in ((1000, "10%"), (1000, "25%"), (100, 1), (10, "25%"), (3, "10%"), (7, 3)):
        planned = rolling_batches([f"h{i}" for i in range(hosts)], batch)
        assert projection.batch_sizes(hosts, batch) == [len(b) for b in planned]
    with pytest.raises(ValueError):
        projection.batch_sizes(10, 0)


def test_rolling_one_at_a_time_pays_the_waits_per_host_and_big_batches_become_cpu_bound() -> None:
    run = projection.Rolling("lab", waits_s=18.0, steps_s=32.0, cpu_host_s=26.0, once_s=20.0)
    one = projection.rolling_wall(100, 4, 50, run, 1, serial_share=0.0)
    assert one["wall_s"] == pytest.approx(20 + 100 * (18 + 32)) and one["batches"] == 100
    assert one["cpu_bound_batches"] == 0
    # 25 % of 1,000 hosts: 4 batches of 250 = 5 waves of forks each; its CPU (250 x 26 s) over 16 cores exceeds
    # the waits plus 5 waves of steps (18 + 5 x 32 = 178 s).
    big = projection.rolling_wall(1000, 16, 50, run, "25%", serial_share=0.0)
    assert big["batches"] == 4 and big["cpu_bound_batches"] == 4
    assert big["wall_s"] == pytest.approx(20 + 4 * 250 * 26 / 16)
    # On 64 cores the same batches are bound by the waits and the steps again.
    wide = projection.rolling_wall(1000, 64, 50, run, "25%", serial_share=0.0)
    assert wide["cpu_bound_batches"] == 0 and wide["wall_s"] == pytest.approx(20 + 4 * (18 + 5 * 32))


def test_the_check_fits_on_3_and_10_hosts_and_reports_the_error_at_20() -> None:
    # CPU on the line 2 + 4.5 n at 3 and 10 hosts; the 20-host run measured 10 % above the line (loaded machine).
    data = latest(measured_20=1.1 * (2 + 4.5 * 20))
    checked = projection.check(data)
    assert checked["c0_s"] == pytest.approx(2.0) and checked["c1_s"] == pytest.approx(4.5)
    assert checked["cpu_predicted_s"] == 92.0 and checked["cpu_error_pct"] == -9.1
    assert checked["wall_error_pct"] == -9.1 and checked["loads_predicted"] == [24.0]
    exact = projection.check(latest())
    assert exact["cpu_error_pct"] == 0.0 and exact["wall_error_pct"] == 0.0


def test_without_the_10_host_run_the_check_says_it_was_not_made() -> None:
    data = latest()
    del data["benchmarks"]["scale"]["figures"]["runs"]["10"]
    section = projection.result(data)
    check_table = next(t for t in section["tables"] if t["title"].startswith("The 20-host check"))
    assert check_table["rows"] == [["not in this run (sizes measured: 3, 20)", "-", "-", "-"]]
    assert any("Check: not in this run" in note for note in section["notes"])
    assert section["figures"]["check"] is None


def test_the_lab_wall_per_cpu_second_carries_into_the_predicted_lab_wall() -> None:
    checked = projection.check(latest(wall_per_cpu=0.9))
    assert checked["lab_wall_per_cpu"] == pytest.approx(0.9)
    assert checked["wall_predicted_s"] == pytest.approx(0.9 * 92.0, abs=0.1) and checked["wall_error_pct"] == 0.0


# --- Section 8 and the top-level figures -------------------------------------------------------------

def load_run_py():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_run_projection_writes_section_8_and_the_top_level_figures(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(benchlib, "RESULTS", tmp_path)
    (tmp_path / "latest.json").write_text(json.dumps(latest()))
    assert load_run_py().main(["projection"]) == 0
    data = json.loads((tmp_path / "latest.json").read_text())
    # 15 s of CPU at 3 hosts (benchmark 1) = 5 s a host, worse than 92 s / 20 hosts; the worst rolling overhead.
    assert data["control_cpu_per_host_s"] == 5.0 and data["rolling_overhead_per_host_s"] == 38.1
    assert data["classic_ratio"] == 1.3  # the other top-level figures stay
    assert set(data["benchmarks"]) == {"scale", "converge", "rolling", "projection"}
    section = data["benchmarks"]["projection"]
    assert section["targets"][0]["met"] is False
    noop = {(r["hosts"], r["cores"]): r for r in section["figures"]["noop"]}
    assert set(noop) == {(100, 4), (100, 16), (1000, 4), (1000, 16)}
    assert noop[(1000, 16)]["wall_if_parallel_s"] < noop[(1000, 4)]["wall_if_parallel_s"]
    assert noop[(1000, 4)]["cpu_s"] == pytest.approx(2.0 + 4500, abs=0.1)
    md = (tmp_path / "latest.md").read_text()
    assert "## 8. Projection to 100 and 1,000 hosts" in md
    assert "`control_cpu_per_host_s` = 5.0" in md and "`rolling_overhead_per_host_s` = 38.1" in md
    assert "| controller CPU s | 92.0 | 92.0 | 0.0 |" in md
    assert "https://github.com/stackhpc/ansible-scaling" in md


def test_the_projection_names_the_benchmark_it_lacks(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(benchlib, "RESULTS", tmp_path)
    data = latest()
    del data["benchmarks"]["rolling"]
    (tmp_path / "latest.json").write_text(json.dumps(data))
    with pytest.raises(RuntimeError, match=r"needs benchmarks rolling .*run bench/run\.py rolling"):
        projection.run()
    assert json.loads((tmp_path / "latest.json").read_text()) == data  # nothing written
