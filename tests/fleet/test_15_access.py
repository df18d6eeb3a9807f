"""The lab is as closed as a VPC: the control node cannot open SSH to an app host, only to the bastion,
and every playbook reaches the hosts through the bastion (fleet_access: bastion in inventories/lab)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ec2_fleet_dev.plays import ROOT

pytestmark = pytest.mark.fleet

CONNECT_TIMEOUT = 3.0


def _inventory(fleet) -> dict:
    proc = subprocess.run(["ansible-inventory", "-i", "inventories/lab", "--list"], cwd=ROOT, env=fleet.env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _hostvar(data: dict, host: str, name: str) -> str:
    value = data["_meta"]["hostvars"][host][name]
    return value["__ansible_unsafe"] if isinstance(value, dict) else value


def _address(data: dict, host: str) -> str:
    return _hostvar(data, host, "ansible_host")


def _ssh_banner(ip: str) -> str:
    """The SSH server's banner at ip:22, or the error that stopped the connection."""
    try:
        with socket.create_connection((ip, 22), timeout=CONNECT_TIMEOUT) as conn:
            conn.settimeout(CONNECT_TIMEOUT)
            return conn.recv(64).decode(errors="replace")
    except OSError as exc:
        return f"error: {type(exc).__name__}: {exc}"


def _ping(fleet, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    # A control path of its own for each call: no master connection left by earlier plays (or by the
    # other call) may carry this one. Short, under /tmp: a socket path has at most 107 characters.
    control_dir = tempfile.mkdtemp(prefix="cp-", dir="/tmp")
    env = {**fleet.env, "ANSIBLE_SSH_CONTROL_PATH_DIR": control_dir, "ANSIBLE_NOCOLOR": "1"}
    try:
        return subprocess.run(["ansible", "-i", "inventories/lab", "role_web", "-m", "ansible.builtin.ping",
                               "-T", "10", *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    finally:
        for socket_path in Path(control_dir).iterdir():  # end the masters this call left
            subprocess.run(["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "x"], capture_output=True,
                           timeout=10)
        shutil.rmtree(control_dir, ignore_errors=True)


def test_the_control_node_reaches_only_the_bastion_and_the_playbooks_go_through_it(converged, tmp_path):
    fleet = converged
    data = _inventory(fleet)
    web = data["role_web"]["hosts"]
    bastions = data["role_bastion"]["hosts"]
    assert len(web) == 3 and len(bastions) == 1, (web, bastions)

    # The bastion answers SSH from the control node.
    assert _ssh_banner(_address(data, bastions[0])).startswith("SSH-2.0-OpenSSH"), bastions

    # No app host does: the connection is dropped (a timeout, as a security group does), not refused.
    for host in web:
        started = time.monotonic()
        answer = _ssh_banner(_address(data, host))
        assert answer.startswith("error: TimeoutError"), f"{host}: {answer}"
        assert time.monotonic() - started < CONNECT_TIMEOUT + 2

    # The converged fleet was configured through the bastion: Ansible reaches every host with the
    # inventory's connection settings, and none without the jump.
    through = _ping(fleet, tmp_path)
    assert through.returncode == 0, through.stdout[-3000:] + through.stderr[-2000:]
    assert through.stdout.count("SUCCESS") == 3, through.stdout
    direct = _ping(fleet, tmp_path, "-e", json.dumps({"ansible_ssh_common_args": ""}))
    assert direct.returncode != 0
    assert direct.stdout.count("UNREACHABLE!") == 3, direct.stdout[-3000:]

    # The lab's status names the bastion apart from the app hosts.
    status = fleet.labctl("status").stdout
    assert f"Bastion: {_hostvar(data, bastions[0], 'instance_id')} at {_address(data, bastions[0])}" in status, status
