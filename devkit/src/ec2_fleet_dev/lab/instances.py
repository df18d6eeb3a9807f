"""The lab's instances: every running lab instance in moto (tag:Project, tag:Environment) is a systemd
container at its private IP, started from the lab's host image or from the image committed for its AMI
(images.py), with what cloud-init does at boot: the SSH host keys that are missing made (an image's are
removed when it is baked), the key pair's public key for `ubuntu`, and the user data run once per instance
as cloud-init's scripts-user does (a shell script; output in /var/log/cloud-init-output.log)."""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import io
import json
import logging
import tarfile
from dataclasses import dataclass
from typing import Any

from ec2_fleet_dev.lab import aws_endpoints, moto_lab, podman
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
    subnet_id: str = ""
    profile_arn: str = ""  # its IAM instance profile: IMDS serves the profile's role's credentials
    group: str = ""  # its Auto Scaling group: it runs with its type's CPU and memory (scaling.py)

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
            **_iam_metadata(self.id, self.profile_arn),
        }


def _iam_metadata(instance_id: str, profile_arn: str) -> dict[str, str]:
    """iam/info and iam/security-credentials/ROLE as IMDS serves them for an instance profile's role: keys of
    the instance's own (moto accepts any), valid six hours from now, as EC2 renews them."""
    if not profile_arn:
        return {}
    try:
        profile = moto_lab.backend("iam", "global").get_instance_profile(profile_arn.rsplit("/", 1)[-1])
    except Exception:  # deleted since: EC2 serves no credentials then either
        return {}
    if not profile.roles:
        return {}
    role = profile.roles[0].name
    seed = hashlib.sha256(f"{instance_id}/{role}".encode()).hexdigest()
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    credentials = {
        "Code": "Success",
        "LastUpdated": now.isoformat().replace("+00:00", "Z"),
        "Type": "AWS-HMAC",
        "AccessKeyId": "ASIA" + seed[:16].upper(),
        "SecretAccessKey": seed[16:56],
        "Token": "IQoJb3JpZ2luX2VjE" + seed[:40],
        "Expiration": (now + datetime.timedelta(hours=6)).isoformat().replace("+00:00", "Z"),
    }
    info = {"Code": "Success", "LastUpdated": credentials["LastUpdated"], "InstanceProfileArn": profile_arn,
            "InstanceProfileId": profile.id}
    return {"iam/info": json.dumps(info, indent=2),
            f"iam/security-credentials/{role}": json.dumps(credentials, indent=2)}


GROUP_TAG = "aws:autoscaling:groupName"


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
                            i.get("SubnetId", ""),
                            i.get("IamInstanceProfile", {}).get("Arn", ""),
                            next((t["Value"] for t in i.get("Tags", []) if t["Key"] == GROUP_TAG), ""),
                        )
                    )
    return result


def create_instance(config: LabConfig, inst: Instance, network: str, image: str | None = None,
                    aws_ca: bytes | None = None) -> None:
    """Start the instance's container on its VPC's network (from `image`, default the lab's host image) with its
    user data to run at first boot, then install the key pair's public key."""
    lab = config.name
    cname = f"{lab}-{inst.id}"
    podman.podman(
        "create",
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
        *_resources(config, inst),
        # A busy first boot: the image's ec2-fleet-busy-boot unit reads it from PID 1's environment.
        "--env",
        f"EC2_FLEET_LAB_BUSY_BOOT_SECONDS={config.busy_boot_seconds:g}",
        "--network",
        network,
        "--ip",
        inst.ip,
        # AWS's public names (aws_endpoints.py), as public DNS answers them: at the lab's endpoint server.
        *[f"--add-host={name}:{config.imds_address}" for name in aws_endpoints.names(config.region)],
        image or config.host_image,
        "/lib/systemd/systemd",
    )
    script = user_data(config.region, inst.id)
    podman.podman("cp", "-", f"{cname}:/", stdin_bytes=cloud_init_files(inst.id, script, aws_ca))
    podman.podman("start", cname)
    public_key = _public_key(config.region, inst.key_name)
    if public_key:  # as cloud-init does with the key pair
        keys_script = (
            "install -d -m 0700 -o ubuntu -g ubuntu /home/ubuntu/.ssh && "
            "cat > /home/ubuntu/.ssh/authorized_keys && "
            "chown ubuntu:ubuntu /home/ubuntu/.ssh/authorized_keys && chmod 0600 /home/ubuntu/.ssh/authorized_keys"
        )
        podman.podman("exec", "-i", cname, "sh", "-c", keys_script, stdin=public_key.strip() + "\n")
    log.info("Instance %s runs as %s at %s from %s (key pair %s, user data: %s)", inst.id, cname, inst.ip,
             image or config.host_image, inst.key_name or "none", "yes" if script is not None else "none")


def _resources(config: LabConfig, inst: Instance) -> list[str]:
    """An Auto Scaling group's instance gets its type's CPU and memory, scaled (scaling.py): its utilization is what
    target tracking reads. The other instances are not limited (the fixed fleet's converges need the machine)."""
    if not inst.group:
        return []
    from ec2_fleet_dev.lab.scaling import resources

    cores, mib = resources(config, inst.instance_type)
    return ["--cpus", f"{cores:g}", "--memory", f"{mib}m"]


def _public_key(region: str, key_name: str | None) -> str | None:
    if not key_name:
        return None
    pair = moto_lab.backend("ec2", region).key_pairs.get(key_name)
    return pair.public_key if pair is not None else None


AWS_CA_PATH = "usr/local/share/ca-certificates/ec2-fleet-lab-aws-root.crt"

# The lab's stand-in for cloud-init.service's cc_ssh: host keys for the instance before sshd starts (an image
# baked by bake.yml has none; ssh-keygen -A makes only those missing).
CLOUD_INIT = """[Unit]
Description=Make the SSH host keys that are missing, as cloud-init's cc_ssh (lab)
Before=ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
"""

# The lab's stand-in for Amazon's roots in an Ubuntu AMI's trust store: the CA of the lab's AWS endpoints
# (aws_endpoints.py) added before the user data runs; not before ssh.service, which need not wait for it.
LAB_TRUST = f"""[Unit]
Description=Trust the CA of the lab's AWS endpoints, as an Ubuntu AMI trusts Amazon's roots (lab)
ConditionPathExists=/{AWS_CA_PATH}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/update-ca-certificates

[Install]
WantedBy=multi-user.target
"""

# The lab's stand-in for cloud-final.service's scripts-user: the user data, once per instance id (a new
# instance from an image of another keeps nothing of the other's run), after the network is up.
CLOUD_FINAL = """[Unit]
Description=Run the instance's user data once, as cloud-init's scripts-user (lab)
After=network-online.target ec2-fleet-lab-trust.service
Wants=network-online.target
ConditionPathExists=!/var/lib/cloud/instances/{id}/sem/config_scripts_user

[Service]
Type=oneshot
RemainAfterExit=yes
TimeoutStartSec=0
ExecStart=/bin/sh -c '/var/lib/cloud/instance/scripts/part-001 >>/var/log/cloud-init-output.log 2>&1; rc=$?; \
 mkdir -p /var/lib/cloud/instances/{id}/sem && touch /var/lib/cloud/instances/{id}/sem/config_scripts_user; exit $rc'

[Install]
WantedBy=multi-user.target
"""


def user_data(region: str, instance_id: str) -> bytes | None:
    """The instance's user data (gunzipped as cloud-init does), or None without any."""
    encoded = moto_lab.backend("ec2", region).get_instance(instance_id).user_data
    if encoded is None:
        return None
    raw = base64.b64decode(encoded.as_bytes())
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if not raw.startswith(b"#!"):
        # cloud-config and MIME multi-part are cloud-init's; the lab runs scripts only, and says so
        log.warning("Instance %s: user data is not a script (#!): the lab does not run it", instance_id)
    return raw


def cloud_init_files(instance_id: str, script: bytes | None, aws_ca: bytes | None = None) -> bytes:
    """A tar stream of the lab's cloud-init units and, with user data, where cloud-init keeps it; with aws_ca,
    the CA of the lab's AWS endpoints (aws_endpoints.py), which ec2-fleet-lab-trust.service adds to the
    system store before the user data runs."""
    files: list[tuple[str, bytes, int]] = [("etc/systemd/system/cloud-init.service", CLOUD_INIT.encode(), 0o644)]
    links = ["cloud-init.service"]
    if aws_ca is not None:
        files += [(AWS_CA_PATH, aws_ca, 0o644), ("etc/systemd/system/ec2-fleet-lab-trust.service", LAB_TRUST.encode(),
                                                 0o644)]
        links.append("ec2-fleet-lab-trust.service")
    folders = []
    if script is not None:
        folders = ["var/lib/cloud", "var/lib/cloud/instance", "var/lib/cloud/instance/scripts"]
        files += [
            ("var/lib/cloud/instance/user-data.txt", script, 0o600),
            ("var/lib/cloud/instance/scripts/part-001", script if script.startswith(b"#!") else b"#!/bin/sh\n", 0o700),
            ("etc/systemd/system/cloud-final.service", CLOUD_FINAL.format(id=instance_id).encode(), 0o644),
        ]
        links.append("cloud-final.service")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data, mode in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
        for unit in links:
            link = tarfile.TarInfo(f"etc/systemd/system/multi-user.target.wants/{unit}")
            link.type, link.linkname = tarfile.SYMTYPE, f"/etc/systemd/system/{unit}"
            tar.addfile(link)
    return out.getvalue()
