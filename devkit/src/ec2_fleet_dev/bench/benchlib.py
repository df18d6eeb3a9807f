"""What every benchmark shares: timed commands, a private lab, the results files."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from ec2_fleet_dev import labs
from ec2_fleet_dev.paths import ROOT
from ec2_fleet_dev.plays import PlayResult

RESULTS = ROOT / "bench" / "results"


def project_var(name: str, *files: str) -> object:
    """A plain variable as the project sets it: the last of these YAML files (from the repo root) that has it."""
    found = [data[name] for f in files if name in (data := yaml.safe_load((ROOT / f).read_text()) or {})]
    if not found:
        raise KeyError(f"{name} is in none of {', '.join(files)}")
    return found[-1]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def load() -> float:
    """The 1-minute load average (the machines are shared: every figure carries it)."""
    return round(os.getloadavg()[0], 2)


@dataclass
class Timed:
    """One timed command: wall time, CPU time of its children, exit code, output."""

    wall: float
    cpu: float
    rc: int
    output: str
    load: float

    def play(self) -> PlayResult:
        return PlayResult(self.rc, self.output)

    def checked(self, name: str) -> Timed:
        """This run, or an error naming it with the end of its output when it failed."""
        if self.rc != 0:
            raise RuntimeError(f"{name} failed (rc {self.rc}):\n{self.output[-4000:]}")
        return self


def timed(cmd: Sequence[str], env: dict[str, str], timeout: int = 3600) -> Timed:
    """Run cmd from the repo root; the wall time of the whole process and the CPU time it used."""
    before = os.times()
    start_load = load()
    start = time.monotonic()
    proc = subprocess.run(list(cmd), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return Timed(round(wall, 2), round(cpu, 2), proc.returncode, proc.stdout + proc.stderr, start_load)


def base_env() -> dict[str, str]:
    """The environment the Makefile gives every command (repo venv first, podman settings, no colour)."""
    env = dict(os.environ)
    env.update({
        "CONTAINERS_CONF": str(ROOT / "tools" / "containers.conf"),
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "PATH": f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}",
        "NO_COLOR": "1",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    })
    return env


def recap_changed(result: PlayResult) -> int:
    """Total changed= over every host of the PLAY RECAP (-1 when there is none)."""
    recap = result.recap()
    return sum(c.get("changed", 0) for c in recap.values()) if recap else -1


def profile_top(output: str, count: int = 10) -> list[dict]:
    """The slowest tasks from profile_tasks' TASKS RECAP: [{'task': ..., 'seconds': ...}]."""
    if "TASKS RECAP" not in output:
        return []
    rows = []
    for line in output.rsplit("TASKS RECAP", 1)[1].splitlines():
        match = re.match(r"^(.+?) -{2,} (\d+\.\d+)s$", line.strip())
        if match:
            rows.append({"task": match.group(1).strip(), "seconds": float(match.group(2))})
    return rows[:count]


@dataclass
class Lab:
    """A private lab (own name, ports, state dir, VPC octets), like tests/fleet/conftest.py makes."""

    env: dict[str, str]
    state_dir: Path
    extra: dict = field(default_factory=dict)

    def labctl(self, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        return labs.labctl(self.env, *args, timeout=timeout)

    def playbook(self, name: str, *args: str, env: dict[str, str] | None = None, extra: dict | None = None,
                 timeout: int = 3600) -> Timed:
        cmd = ["ansible-playbook", "-i", "inventories/lab", f"playbooks/{name}.yml", *args,
               "-e", json.dumps({**self.extra, **(extra or {})})]
        return timed(cmd, {**self.env, **(env or {})}, timeout=timeout)


@contextmanager
def private_lab(net: str, settings: dict[str, str] | None = None) -> Iterator[Lab]:
    """`labctl up` a lab of its own; `labctl down` at the end, also on failure or Ctrl-C.
    settings: EC2_FLEET_LAB_* variables of this lab (devkit lab/config.py)."""
    state_dir = Path(tempfile.mkdtemp(prefix="ec2-fleet-bench-"))
    env = labs.lab_env(f"bench-{uuid.uuid4().hex[:6]}", state_dir / "lab", net=net, cache_dir=state_dir,
                       base={**base_env(), **(settings or {})})
    # Its own artifact cache: the first converge builds the release like on a fresh control node.
    # Plain HTTP on the load balancer's port 80, on purpose (the named opt-out): the benchmarks
    # measure the app and its cache, and TLS in HAProxy would take its CPU from the same 2 cores.
    lab = Lab(env, state_dir, {"app_artifact_cache_dir": str(state_dir / "artifacts"),
                               "aws_alb_allow_http_only": True, "aws_alb_certificate_ssm_parameter": ""})
    log(f"lab {env['EC2_FLEET_LAB_NAME']} up (net {net}.0.0/16, state {state_dir})")
    up = lab.labctl("up", "--json")
    try:
        if up.returncode != 0:
            raise RuntimeError(f"labctl up failed:\n{up.stdout}{up.stderr}")
        yield lab
    finally:
        down = lab.labctl("down")
        log(f"lab down: rc={down.returncode}")
        if down.returncode == 0:
            shutil.rmtree(state_dir, ignore_errors=True)
        else:
            log(f"labctl down failed, state kept in {state_dir}:\n{down.stdout}{down.stderr}")


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "load_at_start": load(),
            "kernel": platform.release()}


def read_results() -> dict:
    path = RESULTS / "latest.json"
    return json.loads(path.read_text()) if path.exists() else {"benchmarks": {}}


RESERVED_KEYS = ("benchmarks", "updated")


def write_results(name: str, result: dict, top: dict | None = None) -> None:
    """Store one benchmark's result in latest.json (the others stay) and rewrite latest.md.

    top: figures that tools read at latest.json's top level, beside "benchmarks" (other keys there stay)."""
    if top and set(top) & set(RESERVED_KEYS):
        raise ValueError(f"top-level figures may not be named {', '.join(RESERVED_KEYS)}: {sorted(top)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = read_results()
    data["benchmarks"][name] = {**result, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    data["updated"] = data["benchmarks"][name]["finished"]
    data.update(top or {})
    (RESULTS / "latest.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / "latest.md").write_text(markdown(data))
    log(f"wrote {RESULTS / 'latest.json'} and latest.md ({name})")


ORDER = ["converge", "scale", "rolling", "classic", "asg", "inventory", "cache", "throughput"]


def markdown(data: dict) -> str:
    out = ["# Benchmark results", "",
           "Written by `make bench` (`bench/run.py`); how each figure is measured: [bench/README.md](../README.md).",
           f"Last update: {data.get('updated', '?')}.", ""]
    top = {k: v for k, v in data.items() if k not in RESERVED_KEYS}
    if top:
        out += ["Figures for tools (top level of latest.json): "
                + "; ".join(f"`{k}` = {v}" for k, v in sorted(top.items())) + ".", ""]
    names = sorted(data["benchmarks"], key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    for name in names:
        b = data["benchmarks"][name]
        m = b.get("machine", {})
        out += [f"## {b['title']}", "", f"Method: {b['method']}", "",
                f"Measured {b.get('finished', '?')} on {m.get('cpus', '?')} CPUs, load average "
                f"{m.get('load_at_start', '?')} at the start (the machine is shared).", ""]
        if b.get("targets"):
            out += ["| target | measured | met |", "|---|---|---|"]
            out += [f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |" for t in b["targets"]]
            out.append("")
        for table in b.get("tables", []):
            out += [f"**{table['title']}**", "", "| " + " | ".join(table["columns"]) + " |",
                    "|" + "---|" * len(table["columns"])]
            out += ["| " + " | ".join(str(c) for c in row) + " |" for row in table["rows"]]
            out.append("")
        for note in b.get("notes", []):
            out.append(f"- {note}")
        if b.get("notes"):
            out.append("")
    return "\n".join(out)


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return round(ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2, 2)
