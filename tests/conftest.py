"""Shared fixtures: a real test host (a systemd container) and a way to run roles on it.

The helpers (run_playbook, assert_rejected, ...) live in the development kit: import them from
ec2_fleet_dev.plays, since test folders with their own conftest.py shadow this module's name.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ec2_fleet_dev.plays import IMAGE, ROOT, PlayResult, assert_rejected, failure_messages, run_playbook

__all__ = ["IMAGE", "ROOT", "PlayResult", "assert_rejected", "failure_messages", "run_playbook"]


@pytest.fixture(scope="session")
def podman_host() -> Iterator[str]:
    """A fresh test host (systemd container from the test image), removed at the end."""
    name = f"ec2-fleet-pytest-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["podman", "run", "-d", "--name", name, "--systemd=always", IMAGE, "/lib/systemd/systemd"],
        check=True,
        capture_output=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = subprocess.run(
                ["podman", "exec", name, "systemctl", "is-system-running"], capture_output=True, text=True
            ).stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.5)
        yield name
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True)


@pytest.fixture(scope="session")
def host_inventory(podman_host: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    inv = tmp_path_factory.mktemp("inv") / "hosts.yml"
    inv.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {
                        podman_host: {
                            "ansible_connection": "containers.podman.podman",
                            "ansible_python_interpreter": "/usr/bin/python3",
                        }
                    }
                }
            }
        )
    )
    return str(inv)


@pytest.fixture
def apply_role(host_inventory: str, tmp_path: Path):
    """Apply one role to the test host with the given variables; return the PlayResult."""

    def _apply(role: str, role_vars: dict, check: bool = False) -> PlayResult:
        play = tmp_path / "play.yml"
        play.write_text(
            json.dumps([{"name": f"Apply {role}", "hosts": "all", "become": True,
                         "gather_facts": True, "roles": [{"role": role}]}])
        )
        args = ("--check",) if check else ()
        return run_playbook(play, host_inventory, role_vars, *args)

    return _apply




# --- figures: every `FIGURE ...` line a test prints is kept for docs/results (tools/collect_figures.py) ---
FIGURES_FILE = Path(__file__).resolve().parents[1] / ".cache" / "test-reports" / "figures.jsonl"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Append the FIGURE lines of a passed test's output to .cache/test-reports/figures.jsonl."""
    if report.when != "call" or not report.passed:
        return
    lines = [line[len("FIGURE "):].strip() for line in report.capstdout.splitlines() if line.startswith("FIGURE ")]
    if not lines:
        return
    FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    with FIGURES_FILE.open("a") as out:
        for text in lines:
            out.write(json.dumps({"test": report.nodeid, "text": text}) + "\n")
