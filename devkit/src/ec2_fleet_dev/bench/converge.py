"""Benchmarks 1 and 2: site.yml converge and no-op time, tuned versus stock settings, and at 3/10/20 hosts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ec2_fleet_dev.bench.benchlib import (
    ROOT,
    Lab,
    Timed,
    load,
    log,
    machine,
    median,
    private_lab,
    profile_top,
    recap_changed,
)

TARGET_NOOP_S = 20.0
TARGET_RATIO = 0.5
TARGET_SCALE = 2.5

# Stock Ansible: forks 5, no pipelining, no fact cache (facts gathered on every run), Ansible's own SSH
# options (-C -o ControlMaster=auto -o ControlPersist=60s). Only what it takes to run the same playbooks
# against the same inventory is kept.
STOCK_CFG = """\
# Stock Ansible settings for the converge benchmark (bench/converge.py): only what running
# site.yml against inventories/lab needs. Everything else is Ansible's default.
[defaults]
inventory = {root}/inventories/lab
roles_path = {root}/roles
# The repo is the collection ec2_fleet.fleet (its roles, plugins and inventory plugin by FQCN).
collections_path = {root}/collections
# The lab's instances get new host keys on every launch (no known_hosts entry to check against).
host_key_checking = false
"""


def stock_cfg(lab: Lab) -> Path:
    path = lab.state_dir / "stock.cfg"
    path.write_text(STOCK_CFG.format(root=ROOT))
    return path


def _check(name: str, t: Timed, noop: bool = False) -> int:
    changed = recap_changed(t.checked(name).play())
    if noop and changed != 0:
        raise RuntimeError(f"{name}: a no-op run changed {changed} things:\n{t.output[-6000:]}")
    return changed


def _runs(bucket: list[Timed]) -> str:
    return ", ".join(f"{t.wall} ({t.load})" for t in bucket)


def _record(t: Timed, **extra: object) -> dict:
    return {"wall_s": t.wall, "controller_cpu_s": t.cpu, "rc": t.rc, "load": t.load, **extra}


def run(record: Callable[[str, dict], None], runs: int = 3, scale: list[int] | None = None, scale_runs: int = 2,
        net: str = "10.233") -> None:
    """Records "converge", then "scale" (only when sizes beyond 3 are asked for), each as soon as it is measured."""
    scale = [n for n in (scale or []) if n > 3]
    with private_lab(net) as lab:
        stock_env = {"ANSIBLE_CONFIG": str(stock_cfg(lab))}
        t = lab.playbook("provision")
        _check("provision.yml", t)
        log(f"converge: provision (3 hosts) {t.wall} s")
        fresh = lab.playbook("site")
        fresh_changed = _check("site.yml (fresh)", fresh)
        log(f"converge: fresh site.yml {fresh.wall} s, changed={fresh_changed}, load {fresh.load}")

        tuned, stock = [], []
        for i in range(runs):
            for label, bucket, env in (("tuned", tuned, None), ("stock", stock, stock_env)):
                t = lab.playbook("site", env=env)
                _check(f"site.yml no-op ({label})", t, noop=True)
                bucket.append(t)
                log(f"converge: no-op {label} run {i + 1}: {t.wall} s (controller CPU {t.cpu} s, load {t.load})")
        tuned_s, stock_s = median([t.wall for t in tuned]), median([t.wall for t in stock])
        ratio = round(tuned_s / stock_s, 2)
        record("converge", {
            "title": "1. Converge: site.yml on 3 lab hosts, tuned ansible.cfg versus stock settings",
            "method": (
                "A private lab (bench: benchlib.py: own name, ports, state dir, VPC "
                f"{net}.0.0/16), provision.yml, then site.yml once on the 3 fresh hosts (tuned settings, the "
                "release built on the control node in that run). Then the no-op site.yml, alternating the project's "
                f"ansible.cfg (tuned) and stock settings (bench/converge.py STOCK_CFG: forks 5, no pipelining, no "
                f"fact cache, Ansible's SSH options) on the same fleet, {runs} runs each; every no-op run must "
                "report changed=0. Wall time of the whole ansible-playbook process; medians."
            ),
            "machine": machine(),
            "targets": [
                {"target": f"no-op site.yml on 3 hosts under {TARGET_NOOP_S:.0f} s (tuned)",
                 "measured": f"{tuned_s} s", "met": tuned_s < TARGET_NOOP_S},
                {"target": f"tuned / stock no-op time at most {TARGET_RATIO}",
                 "measured": f"{ratio} ({tuned_s} s / {stock_s} s)", "met": ratio <= TARGET_RATIO},
            ],
            "tables": [
                {"title": "site.yml, 3 hosts, seconds",
                 "columns": ["run", "settings", "median s", "each run: s (load)"],
                 "rows": [["fresh converge", "tuned", fresh.wall, f"{fresh.wall} ({fresh.load})"],
                          ["no-op", "tuned", tuned_s, _runs(tuned)],
                          ["no-op", "stock", stock_s, _runs(stock)]]},
                {"title": "Slowest tasks of the last tuned no-op run (profile_tasks: each task's wall time, all hosts)",
                 "columns": ["task", "s"],
                 "rows": [[r["task"], r["seconds"]] for r in profile_top(tuned[-1].output)]},
            ],
            "figures": {"fresh_s": fresh.wall, "fresh_changed": fresh_changed, "noop_tuned_s": tuned_s,
                        "noop_stock_s": stock_s, "ratio": ratio,
                        "runs": {"fresh": _record(fresh), "tuned": [_record(t) for t in tuned],
                                 "stock": [_record(t) for t in stock]},
                        "fresh_slowest": profile_top(fresh.output)},
            "notes": [
                "The tuned settings win by pipelining (one SSH round trip per module instead of several), "
                "persistent SSH connections (ControlPersist 600 s: a connection outlives the run) and the fact cache "
                "(gathering = smart: facts are read once a day); forks do not matter at 3 hosts.",
                "Both sides run the same roles, which read each host's state in one or two module runs per role and "
                "skip what is already as wanted: a no-op makes about 10 module runs per host (it made about 76), so "
                "there is little left for pipelining and the fact cache to save. What remains is Ansible's own cost "
                "per task and host on the control node (a forked worker, the host's variables, the conditionals: "
                "tens of milliseconds each, about 90 tasks per host), which no ansible.cfg setting removes.",
            ],
        })

        if scale:
            sizes = {3: tuned}
            growth = []
            for n in scale:
                p = lab.playbook("provision", extra={"aws_instances_count": n})
                _check(f"provision.yml ({n} hosts)", p)
                s = lab.playbook("site")
                _check(f"site.yml ({n} hosts, new ones fresh)", s)
                log(f"scale: {n} hosts: provision {p.wall} s, site (new hosts) {s.wall} s")
                sizes[n] = []
                for i in range(scale_runs):
                    t = lab.playbook("site")
                    _check(f"site.yml no-op ({n} hosts)", t, noop=True)
                    sizes[n].append(t)
                    log(f"scale: no-op {n} hosts run {i + 1}: {t.wall} s (controller CPU {t.cpu} s, load {t.load})")
                growth.append({"hosts": n, "provision_s": p.wall, "site_new_hosts_s": s.wall})
            base = median([t.wall for t in sizes[3]])
            rows = [[n, median([t.wall for t in b]), round(median([t.wall for t in b]) / base, 2),
                     median([t.cpu for t in b]), _runs(b)] for n, b in sizes.items()]
            biggest = max(sizes)
            factor = round(median([t.wall for t in sizes[biggest]]) / base, 2)
            cpu_per_host = round((median([t.cpu for t in sizes[biggest]]) - median([t.cpu for t in sizes[3]]))
                                 / (biggest - 3), 2)
            record("scale", {
                "title": f"2. Scale: no-op site.yml at {', '.join(str(n) for n in sizes)} hosts",
                "method": (
                    "The same lab after benchmark 1: provision.yml -e aws_instances_count=N, site.yml (configures "
                    f"the new hosts), then the no-op site.yml with the tuned ansible.cfg, {scale_runs} runs per size "
                    f"(3 hosts: the {runs} tuned runs of benchmark 1). Every no-op run must report changed=0. Wall "
                    "time of the ansible-playbook process; medians; growth relative to 3 hosts in the same run. "
                    "All hosts are containers on this machine, so their CPU and the control node's are the same "
                    "cores: a real fleet only loads the control node."
                ),
                "machine": machine(),
                "targets": [{"target": f"{biggest} hosts at most {TARGET_SCALE}x the time of 3",
                             "measured": f"{factor}x", "met": factor <= TARGET_SCALE}],
                "tables": [
                    {"title": "no-op site.yml (tuned), seconds",
                     "columns": ["hosts", "median s", "x 3 hosts", "control-node CPU s", "each run: s (load)"],
                     "rows": rows},
                    {"title": "Growing the fleet (informational)",
                     "columns": ["hosts", "provision.yml s", "site.yml s (new hosts fresh)"],
                     "rows": [[g["hosts"], g["provision_s"], g["site_new_hosts_s"]] for g in growth]},
                    {"title": f"Slowest tasks of the last no-op at {biggest} hosts (profile_tasks)",
                     "columns": ["task", "s"],
                     "rows": [[r["task"], r["seconds"]] for r in profile_top(sizes[biggest][-1].output)]},
                ],
                "notes": [
                    f"Control-node CPU per extra host: {cpu_per_host} s per no-op (median CPU at {biggest} hosts minus "
                    "3 hosts, over the hosts added); with 2 cores that alone is about half as many seconds of wall "
                    "time per host, before the hosts' own module runs, which share the same cores in the lab.",
                ],
                "figures": {"noop_s": {str(n): median([t.wall for t in b]) for n, b in sizes.items()},
                            "controller_cpu_per_extra_host_s": cpu_per_host,
                            "factor": factor, "growth": growth,
                            "runs": {str(n): [_record(t) for t in b] for n, b in sizes.items()},
                            "load_at_end": load()},
            })
