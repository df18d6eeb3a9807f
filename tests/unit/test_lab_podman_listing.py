"""The lab's container listing (ec2_fleet_dev.lab.podman.containers) against the real podman: one `podman ps` per
FRESH_S for the controller's four askers of a pass, and never stale after a change the lab made itself."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from ec2_fleet_dev.lab import podman
from ec2_fleet_dev.lab.config import LABEL
from ec2_fleet_dev.plays import IMAGE


@pytest.fixture
def lab_name():
    name = f"listing-{uuid.uuid4().hex[:6]}"
    podman.forget_listings()
    yield name
    podman.sweep(name)


@pytest.fixture
def ps_calls(monkeypatch):
    """Every `podman ps` the module runs (the real command still runs: a spy, not a stand-in)."""
    calls: list[list[str]] = []
    real = subprocess.run

    def spy(cmd, *args, **kwargs):
        if list(cmd[:2]) == ["podman", "ps"]:
            calls.append(list(cmd))
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(podman.subprocess, "run", spy)
    return calls


def create(lab: str, name: str) -> None:
    podman.podman("create", "--name", name, "--label", f"{LABEL}={lab}", IMAGE, "true")


def test_a_pass_of_four_askers_lists_once(lab_name, ps_calls):
    create(lab_name, f"{lab_name}-a")
    first = podman.containers(lab_name)
    assert [podman.containers(lab_name) for _ in range(3)] == [first] * 3
    assert set(first) == {f"{lab_name}-a"} and first[f"{lab_name}-a"].state in ("created", "configured")
    assert len(ps_calls) == 1, ps_calls


def test_a_change_the_lab_makes_is_seen_at_once_and_an_outside_one_within_fresh_s(lab_name, ps_calls):
    assert podman.containers(lab_name) == {}
    create(lab_name, f"{lab_name}-b")  # through the module: the listing is forgotten
    assert set(podman.containers(lab_name)) == {f"{lab_name}-b"}
    subprocess.run(["podman", "rm", "-f", f"{lab_name}-b"], check=True, capture_output=True)  # behind its back
    deadline = time.monotonic() + podman.FRESH_S + 5
    while podman.containers(lab_name) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert podman.containers(lab_name) == {}
    assert len(ps_calls) <= 3 + (podman.FRESH_S + 5) / podman.FRESH_S, ps_calls


@pytest.mark.parametrize(("args", "changes"), [
    (("ps", "-a"), False), (("exec", "c", "true"), False), (("image", "exists", "x"), False),
    (("network", "ls"), False), (("network", "inspect", "n"), False), (("inspect", "c"), False),
    (("rm", "-f", "c"), True), (("run", "-d", "x"), True), (("stop", "c"), True), (("kill", "c"), True),
    (("network", "connect", "n", "c"), True), (("network", "rm", "n"), True), (("commit", "c", "i"), True),
])
def test_what_counts_as_a_change(args, changes):
    assert podman._changes(args) is changes
