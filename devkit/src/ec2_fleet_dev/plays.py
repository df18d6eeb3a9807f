"""Run playbooks from the checkout and read their results (recap, failure messages): tests, benchmarks, tools."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from moto.server import ThreadedMotoServer

from ec2_fleet_dev.paths import ROOT

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
        # The "host : ok=N changed=N ..." lines after the last PLAY RECAP (profile_tasks follows them).
        for line in self.output.rsplit("PLAY RECAP", 1)[-1].splitlines()[1:]:
            match = re.match(r"^(\S+)\s+:\s+(ok=.*)$", line.strip())
            if not match:
                break
            recap[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
        return recap

    def tail(self, chars: int = 4000) -> str:
        return self.output[-chars:]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def moto_server() -> Iterator[str]:
    """moto on a free port of 127.0.0.1 for the length of the block; yields its URL."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


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
