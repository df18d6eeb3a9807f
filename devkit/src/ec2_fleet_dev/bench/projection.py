"""8. Projection to 100 and 1,000 hosts: the no-op converge and the rolling update, from latest.json's figures.

No lab: it reads what benchmarks 1 (converge), 2 (scale), 3 (rolling) and 7 (classic) measured and projects
it with the small model below, every assumption named where it is used (ASSUMPTIONS is the list the section
prints). `check()` tests the model the only way the figures allow: fit on 3 and 10 hosts, predict 20.

The model
- Controller CPU of a no-op site.yml: cpu(H) = c0 + c1 * H, least squares over the measured fleet sizes.
  It is CPU-seconds of the ansible-playbook process tree (the benchmark's `os.times()` of its children):
  what the ops box spends, whatever its core count; the hosts' own module runs are not in it.
- Wall of a no-op site.yml on an ops box of K cores with F forks:
      wall(H) = c0 + max(share * c1 * H, waves(H) * wave_s)
      share   = max(SERIAL_SHARE, 1 / min(K, F))       (the CPU-bound term)
      waves   = ceil(H / F), wave_s = wall(3 hosts) - c0  (the latency-bound term)
  c0 is paid once (start, inventory, the plays on localhost). The per-host CPU either spreads over
  min(K, F) cores (the workers: at most F at once), or is held up by the part only Ansible's main process
  can do (variables per host and task, forking each worker, reading its result: SERIAL_SHARE of it).
- Rolling update of H hosts in batches of b (`rolling_batch`: 1, "10%", "25%", as `serial`):
      wall = once + sum over batches of max(waits + ceil(b / F) * steps_s, share * b * cpu_host)
  once: the run's work outside the hosts (plan, lock, facts, audit, summary) plus the build; waits: the
  deregistration delay + health checks + the app's start (one per batch: a batch's hosts wait together);
  steps_s: Ansible's steps around the waits for one host (stage, deregister, polls, switch, register),
  measured one host at a time, repeated per wave of F hosts; cpu_host: the run's controller CPU over its hosts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ec2_fleet_dev.bench.benchlib import machine, read_results

SIZES = (100, 1000)
CORES = (4, 16)
FORKS = 50
BATCHES: tuple[int | str, ...] = (1, "10%", "25%")
ROLLING_HOSTS = 3  # the rolling and classic benchmarks update the lab's 3 hosts
# The share of the controller's CPU that only Ansible's main process can do (linear strategy: it computes
# each host's variables for each task, forks the worker and reads its result, one at a time). The
# benchmarks measure the whole process tree, so they cannot split it; 0.5 is an assumption, and every
# table also shows the bound with no serial part (all the CPU spread over min(cores, forks)).
SERIAL_SHARE = 0.5
# Task runs per app host of a no-op site.yml (counted with a callback after base, runtime and supervisor
# include their change tasks only when something differs: 43-45, was 64-66): to compare the CPU per host
# and task with published per-task figures.
NOOP_TASKS_PER_HOST = 44

ASSUMPTIONS = [
    "Controller CPU is CPU-seconds of the ansible-playbook process tree (workers and ssh clients included): it does "
    "not depend on the core count. The hosts' module runs are not in it; in the lab they share the same 2 cores, on "
    "an ops box they run on the hosts.",
    "Controller CPU grows linearly with the hosts (least squares over the measured sizes); the check below fits on 3 "
    "and 10 hosts and predicts 20.",
    f"{SERIAL_SHARE:.0%} of the controller CPU is Ansible's main process (serial); the rest spreads over min(cores, "
    "forks). Not measured (the benchmarks time the whole tree): the tables also show the bound with none serial.",
    "CPU and waiting overlap (the main process queues the next hosts while workers wait on SSH or AWS): wall is the "
    "larger of the CPU-bound and the latency-bound term, not their sum.",
    "Latency of one wave of forks = the 3-host no-op's wall minus the once-per-run part (3 hosts <= forks: one wave). "
    "It is an upper bound: it includes the 3 hosts' CPU on the lab's 2 shared cores.",
    "Rolling: the measured 3-host runs, one host at a time. A batch's waits happen once for all its hosts; Ansible's "
    "steps around them repeat per wave of forks; the batch's controller CPU (the run's CPU over its hosts, once-per-"
    "run CPU included, so an upper bound) is spread as for the no-op.",
    "The once-per-run part of the rolling update stays as measured at 3 hosts (its facts and plan grow with the "
    "hosts, not measured); the network between the ops box and the hosts adds nothing beyond the lab's.",
]


# --- The arithmetic ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Line:
    """cpu = c0 + c1 * hosts."""

    c0: float
    c1: float

    def at(self, hosts: float) -> float:
        return self.c0 + self.c1 * hosts


def fit_line(points: Sequence[tuple[float, float]]) -> Line:
    """Least squares through (hosts, seconds) points; two or more distinct host counts."""
    if len({x for x, _ in points}) < 2:
        raise ValueError(f"a line needs two or more fleet sizes, got {sorted({x for x, _ in points})}")
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    slope = (sum((x - mean_x) * (y - mean_y) for x, y in points)
             / sum((x - mean_x) ** 2 for x, _ in points))
    return Line(mean_y - slope * mean_x, slope)


def cpu_share(cores: int, forks: int, serial_share: float = SERIAL_SHARE) -> float:
    """Wall seconds per CPU-second of the per-host work: the main process's part, or all of it over the cores
    the workers can use (at most one per fork)."""
    return max(serial_share, 1 / min(cores, forks))


def noop_wall(hosts: int, cores: int, forks: int, cpu: Line, wave_s: float,
              serial_share: float = SERIAL_SHARE) -> dict:
    """A no-op site.yml's wall time on an ops box: which term bounds it, and both terms."""
    cpu_bound = cpu_share(cores, forks, serial_share) * cpu.c1 * hosts
    latency_bound = math.ceil(hosts / forks) * wave_s
    return {"wall_s": round(cpu.c0 + max(cpu_bound, latency_bound), 1), "cpu_s": round(cpu.at(hosts), 1),
            "cpu_bound_s": round(cpu_bound, 1), "latency_bound_s": round(latency_bound, 1),
            "bound": "CPU" if cpu_bound >= latency_bound else "latency"}


def batch_sizes(hosts: int, batch: int | str) -> list[int]:
    """The batches `rolling_batch` makes of the fleet (a count, or "N%" of it rounded down, at least 1),
    as the rolling role's plan does (plugins/filter/rolling.py)."""
    if isinstance(batch, str) and batch.strip().endswith("%"):
        size = max(1, math.floor(hosts * int(batch.strip()[:-1]) / 100))
    else:
        size = int(batch)
    if size < 1:
        raise ValueError(f"a batch needs at least 1 host, got {batch!r}")
    return [min(size, hosts - start) for start in range(0, hosts, size)]


@dataclass(frozen=True)
class Rolling:
    """One measured rolling run, per host and per run."""

    label: str
    waits_s: float     # deregistration delay + health checks + the app's start
    steps_s: float     # a host's time minus its waits: Ansible's steps around them
    cpu_host_s: float  # controller CPU of the run over its hosts
    once_s: float      # outside the hosts (plan, lock, facts, audit, summary) + the build


def rolling_wall(hosts: int, cores: int, forks: int, run: Rolling, batch: int | str,
                 serial_share: float = SERIAL_SHARE) -> dict:
    """A rolling update's wall time: the once-per-run part plus each batch's, the larger of its waits and
    steps (repeated per wave of forks) and its controller CPU over the cores."""
    share = cpu_share(cores, forks, serial_share)
    total, cpu_bound_batches = run.once_s, 0
    sizes = batch_sizes(hosts, batch)
    for size in sizes:
        latency = run.waits_s + math.ceil(size / forks) * run.steps_s
        cpu = share * size * run.cpu_host_s
        cpu_bound_batches += cpu > latency
        total += max(latency, cpu)
    return {"wall_s": round(total, 1), "batches": len(sizes), "cpu_bound_batches": cpu_bound_batches,
            "per_host_s": round(total / hosts, 2)}


def pct_error(predicted: float, measured: float) -> float:
    return round(100 * (predicted - measured) / measured, 1)


# --- From latest.json -------------------------------------------------------------------------------

def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def scale_points(data: dict) -> dict[int, dict]:
    """Per fleet size of benchmark 2: median wall, median controller CPU, the loads."""
    runs = data["benchmarks"]["scale"]["figures"]["runs"]
    return {int(n): {"wall_s": round(_median([r["wall_s"] for r in rs]), 2),
                     "cpu_s": round(_median([r["controller_cpu_s"] for r in rs]), 2), "loads": [r["load"] for r in rs]}
            for n, rs in sorted(runs.items(), key=lambda kv: int(kv[0])) if rs}


def noop_inputs(data: dict, sizes: Sequence[int] | None = None) -> dict:
    """The no-op model's inputs from the scale runs (only the given sizes, when given)."""
    points = {n: p for n, p in scale_points(data).items() if sizes is None or n in sizes}
    cpu = fit_line([(n, p["cpu_s"]) for n, p in points.items()])
    smallest = min(points)
    return {"cpu": cpu, "wave_s": round(points[smallest]["wall_s"] - cpu.c0, 2), "points": points}


def rolling_runs(data: dict) -> list[Rolling]:
    out = []
    for r in data["benchmarks"]["rolling"]["figures"]["runs"]:
        out.append(Rolling(label=r["label"], waits_s=r["waits"]["total_s"],
                           # Staging runs on every host at once before the first batch: in outside_hosts_s.
                           steps_s=round(r["steps"]["total_s"] - r["steps"].get("stage_s", 0) - r["waits"]["total_s"],
                                         2),
                           cpu_host_s=round(r["controller_cpu_s"] / ROLLING_HOSTS, 2),
                           once_s=round(r["outside_hosts_s"] + r.get("build_s", 0), 2)))
    return out


def control_cpu_per_host(data: dict) -> dict:
    """Controller CPU per host of a no-op site.yml: at 3 hosts (benchmark 1's tuned runs, the latest; else
    benchmark 2's), at the largest size measured, and per extra host (the slope of benchmark 2)."""
    points = scale_points(data)
    tuned = data["benchmarks"].get("converge", {}).get("figures", {}).get("runs", {}).get("tuned", [])
    at_3 = _median([r["controller_cpu_s"] for r in tuned]) if tuned else points[3]["cpu_s"]
    largest = max(points)
    return {"at_3_hosts_s": round(at_3 / 3, 2), "largest_hosts": largest,
            "at_largest_hosts_s": round(points[largest]["cpu_s"] / largest, 2),
            "per_extra_host_s": round(fit_line([(n, p["cpu_s"]) for n, p in points.items()]).c1, 2)}


def check(data: dict, fit_sizes: Sequence[int] = (3, 10), predict: int = 20) -> dict:
    """Fit on fit_sizes, predict `predict` hosts: controller CPU, and wall in the lab (the controller's share
    of the lab's cores taken from the fitted runs), each against the measured figure."""
    points = scale_points(data)
    fitted = noop_inputs(data, fit_sizes)
    cpu_pred = fitted["cpu"].at(predict)
    lab_ratio = _median([points[n]["wall_s"] / points[n]["cpu_s"] for n in fit_sizes])
    measured = points[predict]
    return {"fit_sizes": list(fit_sizes), "hosts": predict, "c0_s": round(fitted["cpu"].c0, 2),
            "c1_s": round(fitted["cpu"].c1, 2),
            "cpu_predicted_s": round(cpu_pred, 1), "cpu_measured_s": measured["cpu_s"],
            "cpu_error_pct": pct_error(cpu_pred, measured["cpu_s"]),
            "lab_wall_per_cpu": round(lab_ratio, 3), "wall_predicted_s": round(cpu_pred * lab_ratio, 1),
            "wall_measured_s": measured["wall_s"],
            "wall_error_pct": pct_error(cpu_pred * lab_ratio, measured["wall_s"]),
            "measured_wall_per_cpu": round(measured["wall_s"] / measured["cpu_s"], 3),
            "loads_fit": [load for n in fit_sizes for load in points[n]["loads"]],
            "loads_predicted": measured["loads"]}


# Published figures for Ansible at this size, found and read for this projection (what each measured).
PUBLISHED = [
    ["StackHPC ansible-scaling, doc/skip.md", "https://github.com/stackhpc/ansible-scaling/blob/master/doc/skip.md",
     "one `debug` task (runs on the control node, no SSH) on 100 inventory hosts, forks 16, pipelining",
     "about 3.1 s per task: about 31 ms of controller wall per host and task; 4 such tasks: 47-49 s a playbook"],
    ["StackHPC ansible-scaling, doc/include-and-import.md",
     "https://github.com/stackhpc/ansible-scaling/blob/master/doc/include-and-import.md",
     "include_tasks versus import_tasks of 4 debug tasks, 100 hosts",
     "55-56 s imported, 78-83 s included: a dynamic include costs more per host than the task it includes"],
    ["ansible/ansible issue 13023 (a core maintainer, 2015)", "https://github.com/ansible/ansible/issues/13023",
     "a delegated debug task over 100 of a 7,500-host inventory, Core i7 with 8 GB",
     "past forks 50 the run slows down (memory pressure); no per-task figure at 1,000 hosts"],
    ["ansible/ansible issue 73654 (2021, Ansible 2.9)", "https://github.com/ansible/ansible/issues/73654",
     "the linear strategy's per-host task processing (get_vars) in the main process, about 150 hosts",
     "under 10 ms a host and task with no facts, about 200 ms with large facts; serial: at most 5 tasks a second"],
    ["ansible/ansible issue 74380 (2021, Ansible 2.10)", "https://github.com/ansible/ansible/issues/74380",
     "a cProfile of ansible-playbook's main process on a slow run",
     "VariableManager.get_vars: 184 s of 234 s"],
    ["ansible/ansible issue 30773 (2017, Ansible 2.4)", "https://github.com/ansible/ansible/issues/30773",
     "a playbook reading hostvars, forks 5, 10, 20, 50, 100",
     "real 42.4, 46.0, 41.8, 40.6, 40.2 s (user 66-75 s): more forks did not shorten it"],
    ["Red Hat AAP 2.6: capacity settings", "https://docs.redhat.com/en/documentation/red_hat_ansible_automation_platform/"
     "2.6/optimize-ref_controller_settings_control_execution_nodes",
     "the controller's sizing rule (SYSTEM_TASK_FORKS_CPU, _MEM)",
     "1 fork = 0.25 CPU and 100 MB: forks 50 = 12.5 cores"],
    ["Red Hat AAP 2.6: job impact", "https://docs.redhat.com/it/documentation/red_hat_ansible_automation_platform/2.6/"
     "optimize-con_controller_capacity_job_impacts",
     "a job's capacity", "min(forks, hosts) + 1, the +1 for the parent Ansible process"],
    ["Red Hat AAP 2.4 planning guide: controller requirements",
     "https://docs.redhat.com/zh-cn/documentation/red_hat_ansible_automation_platform/2.4/html/"
     "red_hat_ansible_automation_platform_planning_guide/ref-controller-system-requirements",
     "memory per fork", "1 GB per 10 forks + 2 GB reserved (forks 400: 42 GB); 4 vCPU minimum per node"],
    ["Mitogen for Ansible, documentation (overview and sample profiles)",
     "https://mitogen.networkgenomics.com/ansible_detailed.html",
     "its claim, and a 100-step loop on one local host",
     "expect 1.25x-7x faster and at least 2x less CPU; the loop: 5.9x less time, 1.5x less CPU (1 host, not 100)"],
]


def result(data: dict, sizes: Sequence[int] = SIZES, cores: Sequence[int] = CORES, forks: int = FORKS,
           batches: Sequence[int | str] = BATCHES, serial_share: float = SERIAL_SHARE) -> dict:
    """Section 8 for write_results: the model's inputs, the projection tables, the check, the citations."""
    noop = noop_inputs(data)
    cpu, wave_s = noop["cpu"], noop["wave_s"]
    runs = rolling_runs(data)
    per_host = control_cpu_per_host(data)
    measured_sizes = sorted(scale_points(data))
    checked = check(data) if {3, 10, 20} <= set(measured_sizes) else None

    noop_rows, figures_noop = [], []
    for hosts in sizes:
        for k in cores:
            w = noop_wall(hosts, k, forks, cpu, wave_s, serial_share)
            free = noop_wall(hosts, k, forks, cpu, wave_s, 0.0)
            noop_rows.append([hosts, k, w["cpu_s"], w["wall_s"], round(w["wall_s"] / 60, 1), w["bound"],
                              free["wall_s"], round(free["wall_s"] / 60, 1)])
            figures_noop.append({"hosts": hosts, "cores": k, "forks": forks, **w, "wall_if_parallel_s": free["wall_s"]})

    rolling_rows, figures_rolling = [], []
    for run in runs:
        for hosts in sizes:
            for k in cores:
                cells, fig = [], {"settings": run.label, "hosts": hosts, "cores": k, "forks": forks}
                for b in batches:
                    r = rolling_wall(hosts, k, forks, run, b, serial_share)
                    free = rolling_wall(hosts, k, forks, run, b, 0.0)
                    cells.append(f"{r['wall_s'] / 60:.1f} ({free['wall_s'] / 60:.1f})"
                                 + (" CPU" if r["cpu_bound_batches"] else ""))
                    fig[str(b)] = {**r, "wall_if_parallel_s": free["wall_s"]}
                rolling_rows.append([run.label, hosts, k, *cells])
                figures_rolling.append(fig)

    classic_rows = []
    for r in data["benchmarks"].get("classic", {}).get("figures", {}).get("runs", []):
        if r.get("form") in ("ec2-fleet", "careful classic") and r.get("rc", 0) == 0:
            classic_rows.append([r["settings"], r["form"], r["per_host_s"],
                                 round(r["controller_cpu_s"] / ROLLING_HOSTS, 1),
                                 *[round(r["per_host_s"] * h / 3600, 1) for h in sizes]])

    per_task_ms = round(1000 * cpu.c1 / NOOP_TASKS_PER_HOST)
    notes = [
        f"Model: {a}" for a in ASSUMPTIONS
    ] + [
        f"No-op inputs (benchmark 2, {data['benchmarks']['scale'].get('finished', '?')}): controller CPU = "
        f"{cpu.c0:.2f} s + {cpu.c1:.2f} s x hosts (least squares over "
        + ", ".join(f"{n} hosts {p['cpu_s']} s" for n, p in noop["points"].items())
        + f"); one wave of forks {wave_s} s (3-host wall {noop['points'][min(noop['points'])]['wall_s']} s minus "
        f"{cpu.c0:.2f} s).",
        (f"Check: fitted on 3 and 10 hosts (c0 {checked['c0_s']} s, c1 {checked['c1_s']} s per host), the model "
         f"predicts {checked['cpu_predicted_s']} s of controller CPU at 20 hosts; measured "
         f"{checked['cpu_measured_s']} s ({checked['cpu_error_pct']:+.1f} %). In the lab each CPU-second of the "
         f"controller took {checked['lab_wall_per_cpu']} s of wall at 3 and 10 hosts (the hosts' containers share "
         f"the same 2 cores), which predicts {checked['wall_predicted_s']} s at 20 hosts; measured "
         f"{checked['wall_measured_s']} s ({checked['wall_error_pct']:+.1f} %). The 20-host runs were on a loaded "
         f"machine (load {', '.join(str(x) for x in checked['loads_predicted'])} against "
         f"{', '.join(str(x) for x in checked['loads_fit'])}): {checked['measured_wall_per_cpu']} s of wall per "
         "CPU-second. " if checked else
         f"Check: not in this run: benchmark 2 measured {', '.join(str(n) for n in measured_sizes)} hosts only; "
         "`bench/run.py converge --scale 10,20` measures the 10 hosts the check fits on before predicting 20. ")
        + "The projection does not use the lab's wall: it uses the controller's CPU, which is the same on 2 or 16 "
        "cores and does not contain the hosts' module runs (on AWS they run on the instances).",
        f"Controller CPU per host of a no-op: {per_host['at_3_hosts_s']} s at 3 hosts (benchmark 1, tuned), "
        f"{per_host['at_largest_hosts_s']} s at {per_host['largest_hosts']} hosts, "
        f"{per_host['per_extra_host_s']} s per extra host: about {per_task_ms} ms per host and task "
        f"(about {NOOP_TASKS_PER_HOST} tasks per host). Beside the published figure (StackHPC: about 31 ms of "
        "controller wall per host for a debug task on 100 hosts) the roles' per-task cost is ordinary Ansible cost; "
        "what makes it 4-5 s a host is the number of tasks a host goes through, skipped ones included.",
        "What the core count buys: with forks 50 the workers could use 16 cores, but the main process does its part "
        f"of every host's every task alone: with {serial_share:.0%} of the CPU serial, 4 and 16 cores give the same "
        "wall (the 'if all parallel' figures are the bound with no serial part). Published: the linear strategy "
        "computes each host's variables for each task in the main process, one host after the other (ansible/ansible "
        "73654: under 10 ms a host and task without facts, about 200 ms with large facts, at about 150 hosts; 74380: "
        "get_vars took 184 s of a 234 s run), and forks 5 to 100 left such a run at 40-46 s (30773). The Automation "
        "Platform sizes a fork at 0.25 CPU (forks 50 = 12.5 cores) and counts the parent process as one more fork.",
        "Rolling: one host at a time the fleet's time is hosts x (waits + steps): 1,000 hosts at the lab's settings "
        "take most of a day whatever the ops box. Batches of 10 % or 25 % divide the waits, but a batch's controller "
        "CPU (polls of target health for every host while it waits, the switch, the register) grows with its hosts: "
        "a cell marked CPU-bound is where the ops box, not the load balancer, sets the pace.",
        "Beside the classic form (benchmark 7, one host at a time): hosts x the measured time per host, the "
        "once-per-run part included, for both forms of the same run; the classic form's controller CPU per host is "
        "a quarter to a third of ec2-fleet's (fewer tasks: no plan, floor, lock or audit), which is what decides large "
        "batches. Benchmark 7's ec2-fleet runs are slower per host than benchmark 3's (under 30 requests/s over "
        "HTTPS, another load): compare within each table, not across.",
        "Published figures for Ansible at this size: at 100 hosts, per-task controller figures on inventory hosts "
        "with no SSH (StackHPC) and the main process's per-host cost at about 150 real hosts (73654); at 1,000 "
        "hosts, nothing citable: no published measurement of a playbook on 1,000 hosts was found, only sizing rules "
        "(Red Hat) and claimed speed-ups (Mitogen). The table of sources says what each measured.",
        "Missing: a measured 20-host (or larger) rolling update (the rolling model is checked only at 3 hosts, where "
        "its inputs come from); the split of controller CPU between the main process and the workers; the once-per-"
        "run part of the rolling update at 1,000 hosts (facts and plan per host); memory (AAP: 1 GB per 10 forks).",
        "Reproduce: `.venv/bin/python bench/run.py projection` (reads bench/results/latest.json, no lab, a second).",
    ]
    return {
        "title": "8. Projection to 100 and 1,000 hosts",
        "method": ("Computed from latest.json by ec2_fleet_dev.bench.projection, no lab: the no-op site.yml's "
                   "controller CPU fitted on benchmark 2's fleet sizes and spread over an ops box of 4 and 16 cores "
                   f"with forks {forks}; the rolling update from benchmark 3's measured steps, waits and controller "
                   "CPU, in batches of " + ", ".join(str(b) for b in batches) + "; checked by fitting on 3 and 10 "
                   "hosts and predicting the measured 20-host run. The model and its assumptions are in the notes."),
        "machine": machine(),  # where it was computed: the figures it reads carry their own machines
        "targets": [{"target": "control-node CPU per host of a no-op site.yml at most 1.0 s (at 3 and 20 hosts)",
                     "measured": f"{per_host['at_3_hosts_s']} s at 3 hosts, "
                                 f"{per_host['at_largest_hosts_s']} s at "
                                 f"{per_host['largest_hosts']} hosts",
                     "met": max(per_host["at_3_hosts_s"], per_host["at_largest_hosts_s"]) <= 1.0}],
        "tables": [
            {"title": f"No-op site.yml, projected: forks {forks}, {serial_share:.0%} of the controller CPU serial",
             "columns": ["hosts", "cores", "controller CPU s", "wall s", "wall min", "bound by",
                         "wall s if all parallel", "min if all parallel"],
             "rows": noop_rows},
            {"title": f"Rolling update, projected: forks {forks}, {serial_share:.0%} of the controller CPU serial, "
                      "batches as rolling_batch (CPU: the controller's CPU, not the waits, sets a batch's time)",
             "columns": ["target group settings", "hosts", "cores",
                         *[f"batch {b}: min (if all parallel)" for b in batches]],
             "rows": rolling_rows},
            {"title": "The 20-host check: fitted on 3 and 10 hosts",
             "columns": ["figure", "predicted", "measured", "error %"],
             "rows": [["controller CPU s", checked["cpu_predicted_s"], checked["cpu_measured_s"],
                       checked["cpu_error_pct"]],
                      ["wall s in the lab", checked["wall_predicted_s"], checked["wall_measured_s"],
                       checked["wall_error_pct"]]] if checked else
                     [["not in this run (sizes measured: " + ", ".join(str(n) for n in measured_sizes) + ")",
                       "-", "-", "-"]]},
            {"title": "Beside the classic rolling update, one host at a time (hours = hosts x measured per host)",
             "columns": ["settings", "form", "per host s", "controller CPU per host s",
                         *[f"{h} hosts, h" for h in sizes]],
             "rows": classic_rows},
            {"title": "Published figures for Ansible at this size",
             "columns": ["source", "address", "measured", "figure"], "rows": PUBLISHED},
        ],
        "notes": notes,
        "figures": {"model": {"c0_s": round(cpu.c0, 3), "c1_s": round(cpu.c1, 3), "wave_s": wave_s,
                              "serial_share": serial_share, "forks": forks},
                    "noop": figures_noop, "rolling": figures_rolling, "check": checked,
                    "control_cpu_per_host": per_host,
                    "rolling_inputs": [vars(r) for r in runs],
                    "rolling_overhead_per_host_s": rolling_overhead(data)},
    }


def rolling_overhead(data: dict) -> float:
    """Benchmark 3's overhead per host beyond the unavoidable waits, the worst of its runs (its target's reading)."""
    return max(r["overhead_per_host_s"] for r in data["benchmarks"]["rolling"]["figures"]["runs"])


def top_level(res: dict) -> dict:
    """latest.json's top-level figures: the worse of the no-op's controller CPU per host at 3 and at the largest
    size measured, and the rolling update's overhead per host."""
    per_host = res["figures"]["control_cpu_per_host"]
    return {"control_cpu_per_host_s": max(per_host["at_3_hosts_s"], per_host["at_largest_hosts_s"]),
            "rolling_overhead_per_host_s": res["figures"]["rolling_overhead_per_host_s"]}


NEEDED = ("scale", "rolling")  # converge (the latest 3-host CPU) and classic (the side table) are used when present


def run(data: dict | None = None) -> dict:
    """Section 8 from latest.json (or the given data); an error naming the benchmarks it needs and lacks."""
    data = read_results() if data is None else data
    lacking = [name for name in NEEDED if name not in data.get("benchmarks", {})]
    if lacking:
        raise RuntimeError(f"the projection needs benchmarks {', '.join(lacking)} in bench/results/latest.json: "
                           + "; ".join(f"run bench/run.py {'converge' if n == 'scale' else n}" for n in lacking))
    return result(data)
