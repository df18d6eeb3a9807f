"""The state directory (pid file, endpoints, status, logs, generated keys) and the cleanup that
`down` and the controller's own shutdown share."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ec2_fleet_dev.lab import firewall, podman
from ec2_fleet_dev.lab.config import LabConfig
from ec2_fleet_dev.lab.imds import remove_address


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def pid(self) -> Path:
        return self.root / "controller.pid"

    @property
    def endpoints(self) -> Path:
        return self.root / "endpoints.json"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def log(self) -> Path:
        return self.root / "controller.log"

    @property
    def haproxy_pid(self) -> Path:
        return self.root / "haproxy" / "haproxy.pid"


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def read_pid(path: Path, expect: str) -> int | None:
    """The pid in path if that process is alive and its command line contains expect."""
    try:
        pid = int(path.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError, IndexError):
        return None
    return pid if expect in cmdline else None


def stop_pid(pid: int, timeout: float) -> bool:
    """SIGTERM, then SIGKILL after timeout; True if the process is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not Path(f"/proc/{pid}").exists() or "zombie" in _proc_state(pid):
                return True
            time.sleep(0.1)
    return False


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split("\n", 1)[0].lower()
    except (OSError, IndexError):
        return "zombie"


def cleanup(config: LabConfig, keep_logs: bool = True) -> list[str]:
    """Remove what a lab of this name started: HAProxy, the IMDS addresses, containers, networks,
    and the state directory's files (logs stay unless keep_logs is false). Idempotent."""
    paths = Paths(config.state_dir)
    removed = []
    haproxy = read_pid(paths.haproxy_pid, "haproxy")
    if haproxy is not None:
        stop_pid(haproxy, 10)
        removed.append(f"haproxy pid {haproxy}")
    for name, net in podman.networks(config.name).items():
        device = net.get("network_interface")
        if device and Path(f"/sys/class/net/{device}").exists():
            remove_address(device, config.imds_address)
            removed.append(f"address {config.imds_address} on {device} ({name})")
    if firewall.remove(config.name):
        removed.append(f"nftables table inet {firewall.table_name(config.name)}")
    removed += podman.sweep(config.name)
    if config.state_dir.is_dir():
        for entry in config.state_dir.iterdir():
            if keep_logs and entry.suffix == ".log":
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    return removed
