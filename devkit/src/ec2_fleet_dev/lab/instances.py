"""The lab's instances: every running lab instance in moto (tag:Project, tag:Environment) is a systemd
container at its private IP, with the key pair's public key for `ubuntu` as cloud-init would put it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ec2_fleet_dev.lab import moto_lab, podman
from ec2_fleet_dev.lab.config import LABEL, LabConfig

log = logging.getLogger(__name__)

ROLE = f"{LABEL}.role"


@dataclass
class Instance:
    id: str
    ip: str
    vpc_id: str
    az: str
    key_name: str | None
    instance_type: str
    image_id: str
    role: str = ""  # the Role tag: "bastion" is the one instance the control node may SSH to

    def metadata(self, region: str) -> dict[str, str]:
        host = "ip-" + self.ip.replace(".", "-")
        return {
            "instance-id": self.id,
            "placement/availability-zone": self.az,
            "placement/region": region,
            "local-ipv4": self.ip,
            "instance-type": self.instance_type,
            "ami-id": self.image_id,
            "hostname": f"{host}.ec2.internal",
            "local-hostname": f"{host}.ec2.internal",
        }


def lab_instances(config: LabConfig, ec2: Any) -> list[Instance]:
    """The running instances of the lab's project and environment that have a private IP in a VPC."""
    filters = [
        {"Name": "tag:Project", "Values": [config.project]},
        {"Name": "tag:Environment", "Values": [config.environment]},
        {"Name": "instance-state-name", "Values": ["running"]},
    ]
    result = []
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page["Reservations"]:
            for i in reservation["Instances"]:
                if i.get("PrivateIpAddress") and i.get("VpcId"):
                    result.append(
                        Instance(
                            i["InstanceId"],
                            i["PrivateIpAddress"],
                            i["VpcId"],
                            i.get("Placement", {}).get("AvailabilityZone", config.region + "a"),
                            i.get("KeyName"),
                            i.get("InstanceType", ""),
                            i.get("ImageId", ""),
                            next((t["Value"] for t in i.get("Tags", []) if t["Key"] == "Role"), ""),
                        )
                    )
    return result


def create_instance(config: LabConfig, inst: Instance, network: str) -> None:
    """Start the instance's container on its VPC's network, then install the key pair's public key."""
    lab = config.name
    cname = f"{lab}-{inst.id}"
    podman.podman(
        "run",
        "-d",
        "--name",
        cname,
        "--hostname",
        "ip-" + inst.ip.replace(".", "-"),
        "--label",
        f"{LABEL}={lab}",
        "--label",
        f"{ROLE}=instance",
        "--label",
        f"{LABEL}.instance-id={inst.id}",
        "--label",
        f"{LABEL}.vpc={inst.vpc_id}",
        "--systemd=always",
        # A busy first boot: the image's ec2-fleet-busy-boot unit reads it from PID 1's environment.
        "--env",
        f"EC2_FLEET_LAB_BUSY_BOOT_SECONDS={config.busy_boot_seconds:g}",
        "--network",
        network,
        "--ip",
        inst.ip,
        config.host_image,
        "/lib/systemd/systemd",
    )
    public_key = _public_key(config.region, inst.key_name)
    if public_key:  # as cloud-init does with the key pair
        script = (
            "install -d -m 0700 -o ubuntu -g ubuntu /home/ubuntu/.ssh && "
            "cat > /home/ubuntu/.ssh/authorized_keys && "
            "chown ubuntu:ubuntu /home/ubuntu/.ssh/authorized_keys && chmod 0600 /home/ubuntu/.ssh/authorized_keys"
        )
        podman.podman("exec", "-i", cname, "sh", "-c", script, stdin=public_key.strip() + "\n")
    log.info("Instance %s runs as %s at %s (key pair %s)", inst.id, cname, inst.ip, inst.key_name or "none")


def _public_key(region: str, key_name: str | None) -> str | None:
    if not key_name:
        return None
    pair = moto_lab.backend("ec2", region).key_pairs.get(key_name)
    return pair.public_key if pair is not None else None
