"""The lab's IMDS knows an instance before its container starts, as EC2's metadata is there from an instance's
first instruction: its user data (ec2-fleet-boot) asks for its instance-id at once. A rehearsal of 976dcf4 had an
image's instance boot, on a busy machine, before the lab's pass that started it ended: IMDS answered 404 and the
boot failed (test_50's boot check)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ec2_fleet_dev.lab import fleet as fleet_module
from ec2_fleet_dev.lab.config import LabConfig
from ec2_fleet_dev.lab.fleet import Fleet
from ec2_fleet_dev.lab.instances import Instance
from ec2_fleet_dev.lab.networks import Network

VPC = "vpc-0a1b2c3d"


def instance(instance_id: str, ip: str) -> Instance:
    return Instance(id=instance_id, ip=ip, vpc_id=VPC, az="us-east-1a", key_name=None, instance_type="t3.small",
                    image_id="ami-0123456789abcdef0", subnet_id="subnet-1")  # fmt: skip


@pytest.fixture
def lab(tmp_path: Path) -> Fleet:
    config = LabConfig(name="unit-meta", state_dir=tmp_path)
    made = Fleet(config, {}, (tmp_path / "ca.pem", tmp_path / "ca.key"), "unused")
    made.net.by_vpc[VPC] = Network(name="unit-meta-net", vpc_id=VPC, cidr="10.9.0.0/16", device="unit-meta-br")
    return made


def test_imds_answers_for_an_instance_while_its_container_starts(lab: Fleet, monkeypatch) -> None:
    seen: dict[str, object] = {}

    def create(config, inst, network, image, ca) -> None:  # the container's first boot, as it starts
        seen["imds"] = lab.net._metadata(inst.ip)
        seen["known"] = inst.id in lab.instances

    monkeypatch.setattr(fleet_module, "create_instance", create)
    new = instance("i-0new0000000000001", "10.9.1.20")
    running = lab._reconcile_instances([new], {})
    assert seen["imds"] is not None and seen["imds"]["instance-id"] == new.id, seen
    assert seen["imds"]["local-ipv4"] == "10.9.1.20" and seen["known"]
    assert list(running) == [new.id]


def test_an_ip_reused_by_a_new_instance_answers_for_the_new_one(lab: Fleet, monkeypatch) -> None:
    old = instance("i-0old0000000000001", "10.9.1.21")
    lab.publish([old], keep=False)
    monkeypatch.setattr(fleet_module, "create_instance", lambda *args: None)
    new = instance("i-0new0000000000002", "10.9.1.21")
    lab._reconcile_instances([new], {})
    assert lab.net._metadata("10.9.1.21")["instance-id"] == new.id
    assert [i.id for i in lab.instances.values() if i.ip == "10.9.1.21"] == [new.id]
