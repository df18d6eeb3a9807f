"""The lab's hosts weigh more than its control side on the cores (ec2_fleet_dev.lab.cpu): against a real podman
container's real cgroup where the machine lets the test write it, and on a cgroup tree laid out as the kernel's."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from ec2_fleet_dev.lab import cpu, podman
from ec2_fleet_dev.plays import IMAGE


def test_v1_and_v2_files_and_the_root_cgroup(tmp_path: Path) -> None:
    (tmp_path / "cpu" / "libpod_parent").mkdir(parents=True)
    (tmp_path / "cpu" / "libpod_parent" / "cpu.shares").write_text("1024\n")
    assert cpu.weight_file("/libpod_parent", tmp_path) == (tmp_path / "cpu/libpod_parent/cpu.shares", 8192)
    (tmp_path / "machine.slice").mkdir()
    (tmp_path / "machine.slice" / "cpu.weight").write_text("100\n")
    assert cpu.weight_file("/machine.slice", tmp_path) == (tmp_path / "machine.slice/cpu.weight", 800)
    assert cpu.weight_file("/", tmp_path) is None and cpu.weight_file("/nowhere", tmp_path) is None


@pytest.fixture
def running_container():
    name = f"cpu-weight-{uuid.uuid4().hex[:6]}"
    podman.podman("run", "-d", "--name", name, IMAGE, "sleep", "120")
    yield name
    podman.remove_container(name)


def test_a_running_container_s_parent_cgroup_weighs_eight_processes(running_container: str) -> None:
    path = subprocess.run(["podman", "inspect", "--format", "{{.State.CgroupPath}}", running_container],
                          capture_output=True, text=True, check=True).stdout.strip()
    found = cpu.weight_file(path.rsplit("/", 1)[0])
    if found is None or not os.access(found[0], os.W_OK):
        pytest.skip(f"no writable CPU weight for the parent of {path} here")
    target, value = found
    before = target.read_text()
    try:
        target.write_text(str(value // cpu.HOSTS_WEIGHT))  # podman's default, as a new machine has it
        assert cpu.HostsFirst().apply(running_container) is True
        assert int(target.read_text()) == value
    finally:
        target.write_text(before)
