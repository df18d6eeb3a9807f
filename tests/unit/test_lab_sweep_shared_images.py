"""A lab's teardown (podman.sweep) never removes the images every lab starts containers from: `rmi -f` of the
services image removed the database, Redis and pooler of every other lab running (a lab of test_24 going down
took the Auto Scaling files' lab's services with it), because the image carried the lab label of the lab that
built it."""

from __future__ import annotations

from ec2_fleet_dev.lab import podman


def test_sweep_removes_the_lab_s_own_images_but_never_the_shared_ones(monkeypatch) -> None:
    calls: list[tuple[str, ...]] = []

    def fake_podman(*args: str, **_: object) -> str:
        calls.append(args)
        if args[0] == "images":
            return ("sha1 localhost/ec2-fleet-services:bookworm\n"
                    "sha2 localhost/lab1-ami:ami-0123\n"
                    "sha3 localhost/ec2-fleet-host:bookworm\n")
        return ""

    monkeypatch.setattr(podman, "podman", fake_podman)
    monkeypatch.setattr(podman, "containers", lambda lab: {})
    monkeypatch.setattr(podman, "networks", lambda lab: {})
    removed = podman.sweep("lab1")
    assert [c for c in calls if c[0] == "rmi"] == [("rmi", "-f", "sha2")]
    assert removed == ["image localhost/lab1-ami:ami-0123"]
