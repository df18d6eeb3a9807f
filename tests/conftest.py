"""Shared fixtures: a real test host (a systemd container) and a way to run roles on it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IMAGE = os.environ.get("EC2_FLEET_TEST_IMAGE", "localhost/ec2-fleet-host:bookworm")
os.environ.setdefault("CONTAINERS_CONF", str(ROOT / "tools" / "containers.conf"))
os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))


@dataclass
class PlayResult:
    rc: int
    output: str

    def recap(self) -> dict[str, dict[str, int]]:
        """PLAY RECAP counters per host, e.g. {'h': {'ok': 1, 'changed': 0, 'failed': 1}}."""
        recap: dict[str, dict[str, int]] = {}
        for line in self.output.split("PLAY RECAP", 1)[-1].splitlines():
            match = re.match(r"^(\S+)\s+:\s+(.*)$", line.strip())
            if match:
                recap[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
        return recap


def run_playbook(
    playbook: Path | str,
    inventory: str,
    extra_vars: dict | None = None,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: int = 900,
) -> PlayResult:
    cmd = ["ansible-playbook", "-i", inventory, str(playbook), *args]
    if extra_vars is not None:
        cmd += ["-e", json.dumps(extra_vars)]
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", **(env or {})},
    )
    return PlayResult(proc.returncode, proc.stdout + proc.stderr)


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


def failure_messages(output: str) -> list[str]:
    """The "msg" of every failed task (not the whole output: a spec dump names every option)."""
    messages = []
    for line in output.splitlines():
        if line.startswith(("fatal:", "failed:")) and "=>" in line:
            try:
                messages.append(str(json.loads(line.split("=>", 1)[1]).get("msg", "")))
            except json.JSONDecodeError:
                messages.append(line)
    return messages


def assert_rejected(result: PlayResult, variable: str) -> None:
    """The play failed, the failed task's message names the variable, and no task changed the host."""
    assert result.rc != 0, f"play succeeded with a bad {variable}:\n{result.output[-3000:]}"
    messages = failure_messages(result.output)
    assert any(variable in m for m in messages), f"no failure message names {variable!r}: {messages}"
    recap = result.recap()
    assert recap, f"no PLAY RECAP:\n{result.output[-3000:]}"
    for host, counts in recap.items():
        assert counts.get("changed", 0) == 0, f"{host} changed before the bad {variable} was refused"
