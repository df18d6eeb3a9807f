"""`labctl up` on a machine that lacks what the lab needs: one message naming each missing piece and
the command that installs it, and nothing started."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from ec2_fleet_dev.plays import ROOT, free_port


def _up(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    name = f"pf-{uuid.uuid4().hex[:6]}"
    full = {
        **os.environ,
        "CONTAINERS_CONF": str(ROOT / "tools" / "containers.conf"),
        "EC2_FLEET_LAB_NAME": name,
        "EC2_FLEET_LAB_STATE_DIR": str(tmp_path / "state"),
        "EC2_FLEET_LAB_MOTO_PORT": str(free_port()),
        "EC2_FLEET_LAB_LB_PORT": str(free_port()),
        **env,
    }
    return subprocess.run([sys.executable, str(ROOT / "lab" / "labctl.py"), "up"], env=full, capture_output=True,
                          text=True, timeout=120, check=False)


def test_missing_programs_are_named_with_the_command_that_installs_them(tmp_path: Path) -> None:
    # A PATH with python but without podman, haproxy, nft, ...
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    up = _up(tmp_path, PATH=str(bin_dir))
    assert up.returncode == 4, up.stdout + up.stderr
    assert "nothing was started" in up.stderr
    for program in ("podman", "haproxy", "nft"):
        assert program in up.stderr
    assert "make host-deps" in up.stderr and "apt-get install -y" in up.stderr and "nftables" in up.stderr
    assert not (tmp_path / "state").exists(), "up created its state dir before its checks passed"


def test_a_missing_test_image_is_named_with_make_image(tmp_path: Path) -> None:
    assert shutil.which("podman"), "podman is installed by make host-deps"
    up = _up(tmp_path, EC2_FLEET_TEST_IMAGE="localhost/ec2-fleet-no-such-image:none")
    assert up.returncode == 4, up.stdout + up.stderr
    assert "localhost/ec2-fleet-no-such-image:none does not exist" in up.stderr
    assert "make image" in up.stderr
    assert not (tmp_path / "state").exists()
