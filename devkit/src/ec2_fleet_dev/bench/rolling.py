"""Benchmark 3: the overhead of a rolling update, per host, beside the waits it cannot avoid.

A 3-host rolling update (one host at a time) is timed twice on the same lab fleet: with the lab's fast target
group settings and with the project's recommended ones (roles/aws_alb/defaults). The waits a rolling update
cannot avoid are, per host: the target group's deregistration delay (an ALB keeps a deregistered target
`draining` for all of it), the registration delay (a registered target stays `initial`, with no check, while the
registration reaches the load balancer's nodes: the lab's setting, tens of seconds on AWS), health-check interval x
healthy threshold (the checks a registered target must pass before it takes traffic) and the app's own start
(every instance restarted and ready, one at a time, measured on the hosts with the same `fleetctl reload` the
deploy runs). The overhead is the rest of the wall time: Ansible, SSH, the AWS calls, the polling granularity.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ec2_fleet_dev.bench.benchlib import (
    Lab,
    Timed,
    log,
    machine,
    median,
    private_lab,
    profile_top,
    project_var,
    recap_changed,
    timed,
)
from ec2_fleet_dev.lab.config import LabConfig

TARGET_OVERHEAD_S = 8.0
HOSTS = 3

# (deregistration delay s, health-check interval s, healthy threshold), as the project sets them.
_ALB_DEFAULTS_FILE = "roles/aws_alb/defaults/main.yml"
_LAB_FILE = "inventories/lab/group_vars/all/env.yml"


def _alb_settings(*files: str) -> dict:
    return {"deregistration_delay": project_var("aws_alb_deregistration_delay", *files),
            "interval": project_var("aws_alb_health_check_interval", *files),
            "healthy_threshold": project_var("aws_alb_healthy_threshold", *files)}


LAB = _alb_settings(_ALB_DEFAULTS_FILE, _LAB_FILE)
RECOMMENDED = _alb_settings(_ALB_DEFAULTS_FILE)
ALB_DEFAULTS = {"deregistration_delay": 300, "interval": 30, "healthy_threshold": 5}  # a target group's AWS defaults

RELOAD = (
    "fleetctl=$(command -v fleetctl || echo /usr/local/lib/ec2-fleet/fleetctl); "
    "s=$(date +%s.%N); $fleetctl reload {app} --path=/ready --timeout=60 >/dev/null; rc=$?; e=$(date +%s.%N); "
    'echo "{{\\"start\\": $s, \\"end\\": $e, \\"rc\\": $rc}}"'
)


def _waits(settings: dict, app_start_s: float, registration_delay_s: float = 0.0) -> dict:
    register = registration_delay_s + settings["interval"] * settings["healthy_threshold"]
    return {"drain_s": settings["deregistration_delay"], "register_s": register, "app_start_s": app_start_s,
            "registration_delay_s": registration_delay_s,
            "total_s": round(settings["deregistration_delay"] + register + app_start_s, 1)}


def registration_delay(lab: Lab) -> float:
    """The lab's registration delay (its setting in the lab's environment, else the lab's default)."""
    raw = lab.env.get("EC2_FLEET_LAB_REGISTRATION_DELAY") or ""
    return float(raw) if raw else LabConfig().registration_delay


def app_start(lab: Lab, app: str, rounds: int = 2) -> list[float]:
    """Seconds `fleetctl reload` takes on each host (every instance restarted and ready, one at a time)."""
    env = {**lab.env, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    found = []
    for _ in range(rounds):
        t = timed(["ansible", "-i", "inventories/lab", "role_web", "-b", "-m", "ansible.builtin.shell",
                   "-a", RELOAD.format(app=app)], env, timeout=600)
        if t.rc != 0:
            raise RuntimeError(f"fleetctl reload failed (rc {t.rc}):\n{t.output[-3000:]}")
        report, _ = json.JSONDecoder().raw_decode(t.output[t.output.index("{"):])
        hosts = report["plays"][0]["tasks"][0]["hosts"]
        for host, result in hosts.items():
            measured = json.loads(result["stdout"])
            if measured["rc"] != 0:
                raise RuntimeError(f"fleetctl reload on {host}: rc {measured['rc']}")
            found.append(round(measured["end"] - measured["start"], 2))
    return found


def build_seconds(output: str) -> float:
    """The build task's time from profile_tasks (0 when the artifact was already in the cache)."""
    recap = output.rsplit("TASKS RECAP", 1)[-1]
    return sum(float(m.group(1)) for m in re.finditer(r"Build each artifact once.*? -{2,} (\d+\.\d+)s", recap))


def audit_record(directory: Path) -> dict:
    records = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime)
    if not records:
        raise RuntimeError(f"no audit record in {directory}")
    return json.loads(records[-1].read_text())


def rolling_run(lab: Lab, label: str, version: str, settings: dict, app_start_s: float,
                registration_delay_s: float) -> dict:
    audit = lab.state_dir / "audit" / label
    t: Timed = lab.playbook("rolling_update", extra={"app_version": version, "rolling_audit_dir": str(audit)})
    t.checked(f"rolling_update.yml ({label})")
    record = audit_record(audit)
    hosts = [h for h in record["hosts"] if h["status"] == "updated"]
    if len(hosts) != HOSTS:
        raise RuntimeError(f"{label}: {len(hosts)} of {HOSTS} hosts updated: {record['hosts']}")
    build = round(build_seconds(t.output), 1)
    waits = _waits(settings, app_start_s, registration_delay_s)
    steps = {k: median([h["timings"]["forward"][k] for h in hosts])
             for k in ("stage_s", "drain_s", "deploy_s", "register_s", "out_of_service_s", "total_s")}
    # Every host stages at once before the first batch: its staging is part of the run's time outside the
    # batches, not of each host's turn.
    in_hosts = sum(h["timings"]["forward"]["total_s"] - h["timings"]["forward"]["stage_s"] for h in hosts)
    overhead = round((t.wall - build - HOSTS * waits["total_s"]) / HOSTS, 1)
    log(f"rolling: {label}: {t.wall} s for {HOSTS} hosts (build {build} s), overhead {overhead} s per host; "
        f"steps (median) {steps}")
    return {"label": label, "version": version, "settings": settings, "wall_s": t.wall, "load": t.load,
            "controller_cpu_s": t.cpu, "build_s": build, "waits": waits, "steps": steps,
            "outside_hosts_s": round(t.wall - build - in_hosts, 1),
            "overhead_per_host_s": overhead, "run_id": record["run_id"], "changed": recap_changed(t.play()),
            "slowest_tasks": profile_top(t.output, 15)}


def _settings_vars(settings: dict) -> dict:
    return {"aws_alb_deregistration_delay": settings["deregistration_delay"],
            "aws_alb_health_check_interval": settings["interval"],
            "aws_alb_healthy_threshold": settings["healthy_threshold"],
            "aws_alb_health_check_timeout": min(5, settings["interval"] - 1)}


def run(net: str = "10.233") -> dict:
    with private_lab(net) as lab:
        for name in ("provision", "site"):
            t = lab.playbook(name).checked(f"{name}.yml")
            log(f"rolling: {name}.yml {t.wall} s")
        starts = app_start(lab, "orders-api")
        start_s = median(starts)
        delay = registration_delay(lab)
        log(f"rolling: app start (fleetctl reload, every instance ready): {starts} -> median {start_s} s")
        runs = [rolling_run(lab, "lab settings", "2.0.0", LAB, start_s, delay)]
        # The recommended settings: the target group changed in place by provision.yml (the aws_alb role).
        lab.extra.update(_settings_vars(RECOMMENDED))
        lab.playbook("provision").checked("provision.yml (recommended target group settings)")
        runs.append(rolling_run(lab, "recommended settings", "3.0.0", RECOMMENDED, start_s, delay))
    return result(runs, starts, net)


def _split(r: dict) -> dict:
    """The overhead of one run, split: in each host's own steps (median host) and once per run."""
    waits = r["waits"]
    steps = r["steps"]
    return {
        "stage_s": steps["stage_s"],
        "out_of_service_s": round(steps["out_of_service_s"] - waits["total_s"], 1),
        "per_host_s": round(steps["total_s"] - steps["stage_s"] - waits["total_s"], 1),
        "per_run_s": r["outside_hosts_s"],
    }


def result(runs: list[dict], starts: list[float], net: str) -> dict:
    overhead = max(r["overhead_per_host_s"] for r in runs)
    start_s = median(starts)
    worst = max(runs, key=lambda r: r["overhead_per_host_s"])
    split = _split(worst)
    delay = worst["waits"].get("registration_delay_s", 0.0)
    projected = []
    for name, settings in (("lab (5 s delay, 5 s x 2 checks)", LAB),
                           ("recommended (30 s delay, 10 s x 2 checks)", RECOMMENDED),
                           ("ALB defaults (300 s delay, 30 s x 5 checks)", ALB_DEFAULTS)):
        waits = _waits(settings, start_s, delay)
        per_host = round(waits["total_s"] + split["per_host_s"], 1)
        projected.append([name, waits["drain_s"], waits["register_s"], start_s, split["per_host_s"], per_host,
                          round((per_host * HOSTS + split["per_run_s"]) / 60, 1),
                          round((per_host * 20 + split["per_run_s"]) / 60, 1)])
    return {
        "title": "3. Rolling-update overhead: a 3-host rolling update minus the waits it cannot avoid",
        "method": (
            f"A private lab (VPC {net}.0.0/16), provision.yml and site.yml (release 1.0.0). The app's start is "
            "measured on the hosts: `fleetctl reload orders-api --path=/ready` (what the deploy's switch runs: "
            f"every instance restarted and ready, one at a time), twice on each host, median. Then "
            f"`rolling_update.yml` one host at a time to 2.0.0 with the lab's target group settings, and, after "
            "provision.yml set the project's recommended settings on the same target group, to 3.0.0. Per run: "
            "wall time of the ansible-playbook process, minus the build (profile_tasks: the release is built once "
            "per run on the control node, not per host), minus per host the unavoidable waits (deregistration "
            "delay + the registration delay + health-check interval x healthy threshold + the app's start), divided "
            "by the hosts: the overhead per host. The steps per host come from the run's audit record; every host "
            "stages the release at once before the first batch, so staging counts once per run."
        ),
        "machine": machine(),
        "targets": [{"target": f"overhead under {TARGET_OVERHEAD_S:.0f} s per host (worst of the runs)",
                     "measured": f"{overhead} s ({split['per_host_s']} s in each host's turn, of which "
                                 f"{split['out_of_service_s']} s while out of service; + {split['per_run_s']} s per "
                                 f"run / {HOSTS} hosts, of which {split['stage_s']} s staging every host at once)",
                     "met": overhead < TARGET_OVERHEAD_S}],
        "tables": [
            {"title": "Rolling update of 3 hosts, one at a time, seconds",
             "columns": ["target group settings", "wall", "build (once)", "unavoidable waits per host (drain + "
                         "registration delay and checks + app start)", "overhead per host", "load"],
             "rows": [[r["label"], r["wall_s"], r["build_s"],
                       f"{r['waits']['total_s']} ({r['waits']['drain_s']} + {r['waits']['register_s']} + "
                       f"{r['waits']['app_start_s']})", r["overhead_per_host_s"], r["load"]] for r in runs]},
            {"title": "Where a host's time goes (medians over the 3 hosts, from the audit record), seconds",
             "columns": ["target group settings", "stage (every host at once, still serving)",
                         "drain (wait: delay)", "switch (wait: app start)",
                         "register (wait: registration delay + checks)", "out of service (overhead)",
                         "once per run: plan, lock, staging, audit, report"],
             "rows": [[r["label"], r["steps"]["stage_s"], f"{r['steps']['drain_s']} ({r['waits']['drain_s']})",
                       f"{r['steps']['deploy_s']} ({r['waits']['app_start_s']})",
                       f"{r['steps']['register_s']} ({r['waits']['register_s']})",
                       f"{r['steps']['out_of_service_s']} ({_split(r)['out_of_service_s']})",
                       r["outside_hosts_s"]] for r in runs]},
            {"title": "What the target group's settings cost, one host at a time (the waits plus the measured "
                      "overhead of the worst run: per host, and once per run for the fleet)",
             "columns": ["target group", "drain s", "registration delay + checks s", "app start s",
                         "overhead per host s", "per host s", "3 hosts, min", "20 hosts, min"],
             "rows": projected},
        ],
        "notes": [
            "The waits are what an operator tunes: `aws_alb_deregistration_delay` (keep it just above the "
            "longest request), `aws_alb_health_check_interval` x `aws_alb_healthy_threshold`, and the app's start "
            "(fleet_app_instances restart one at a time). With an ALB target group's own defaults each host takes "
            f"about {projected[2][5]} s; with the project's settings {projected[1][5]} s.",
            f"Where the {overhead} s of overhead per host go: Ansible's tasks and AWS calls around the waits while "
            f"the host is out ({split['out_of_service_s']} s: the deregistration and the registration, each one "
            "run of ec2_fleet.fleet.aws_alb_target that polls the target's health every alb_target_poll_interval "
            f"s inside the run, and the app role's state read and switch), and {split['per_run_s']} s once per run "
            "(play 1: inputs, SSM and cache reads, the lock; the plan; staging the release on every host at "
            f"once, {split['stage_s']} s: unpack, virtualenv, pip install --no-index; play 3: the audit record, "
            "the lock released, the summary), shared by the hosts: at 20 hosts it is "
            f"{round(split['per_run_s'] / 20, 1)} s a host.",
            "Bigger batches (`rolling_batch: 25%`) divide the fleet's time by the batch size; the per-host waits "
            "stay.",
            f"App start per host, each measurement: {', '.join(str(s) for s in starts)} s. The registration delay "
            f"is the lab's, {delay} s, in every row (on AWS it is tens of seconds and not published).",
        ],
        "figures": {"runs": runs, "app_start_s": starts, "projected": projected, "overhead_split": split},
    }


if __name__ == "__main__":
    from ec2_fleet_dev.bench.benchlib import write_results

    write_results("rolling", run())
