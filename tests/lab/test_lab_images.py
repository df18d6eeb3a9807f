"""The lab's AMIs as EC2 makes them (devkit lab/images.py): CreateImage of a lab instance is pending until the
lab has committed the instance's container, the instance is shut down for it unless NoReboot; an instance
launched from the AMI starts from what the other had on disk and runs its own user data once at first boot, as
cloud-init does; a deregistered AMI's image is removed, and `labctl down` removes the rest.

One lab (module fixtures of conftest.py); every wait is bounded."""

from __future__ import annotations

import gzip
import subprocess
import time
import uuid
from typing import Any

from test_lab import container_of

from ec2_fleet_dev.labs import LAB_TAGS, Lab, wait_for

USER_DATA = """#!/bin/sh
set -e
echo "user data runs as $(id -un)"
cat /opt/baked/marker >> /var/tmp/user-data-ran
"""


def sh(container: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", "exec", container, "sh", "-c", command], capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def image_state(lab: Lab, ami: str) -> str:
    return lab.client("ec2").describe_images(ImageIds=[ami])["Images"][0]["State"]


def podman_images(lab: Lab) -> list[str]:
    out = subprocess.run(["podman", "images", "--filter", f"label=ec2-fleet-lab={lab.name}", "--format",
                          "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True, check=True).stdout  # fmt: skip
    return out.split()


def booted(container: str) -> bool:
    state = sh(container, "systemctl is-system-running --wait", timeout=90).stdout.strip()
    return state in ("running", "degraded")


def test_create_image_is_pending_until_the_instance_is_committed_and_reboots_it(lab: Lab, fleet: dict) -> None:
    source, _ = fleet["instances"][0]
    cname = container_of(lab, source)
    wait_for(f"{cname} booted", lambda: lab.containers().get(cname) == "running" and booted(cname), 120)
    marker = uuid.uuid4().hex
    # As bake.yml leaves a builder: no SSH host keys (each instance's cloud-init makes its own).
    wrote = sh(cname, f"mkdir -p /opt/baked && echo {marker} > /opt/baked/marker && touch /run/before-image && "
                      "rm -f /etc/ssh/ssh_host_*")
    assert wrote.returncode == 0, wrote.stderr
    ec2 = lab.client("ec2")
    started = time.monotonic()
    tags = [{"ResourceType": "image", "Tags": [{"Key": "Release", "Value": "1.0.0"}]},
            {"ResourceType": "snapshot", "Tags": [{"Key": "Release", "Value": "1.0.0"}]}]  # as ec2_ami sends them
    ami = ec2.create_image(InstanceId=source, Name=f"baked-{marker[:8]}", TagSpecifications=tags)["ImageId"]
    assert image_state(lab, ami) == "pending"  # as EC2: not usable until its snapshot is taken
    snapshot = ec2.describe_images(ImageIds=[ami])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    assert ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]["Tags"] == tags[1]["Tags"]
    wait_for(f"AMI {ami} available", lambda: image_state(lab, ami) == "available", 300, interval=1)
    lab.facts["create_image_seconds"] = time.monotonic() - started
    # EC2 shut the instance down for the snapshot and started it again: /run is empty, the disk kept.
    wait_for(f"{cname} running again", lambda: lab.containers().get(cname) == "running" and booted(cname), 120)
    assert sh(cname, "test -e /run/before-image").returncode == 1
    assert sh(cname, "cat /opt/baked/marker").stdout.strip() == marker
    # Its boot made new host keys, and sshd runs with them.
    assert sh(cname, "test -s /etc/ssh/ssh_host_ed25519_key && systemctl is-active ssh").returncode == 0
    assert any(ami in name for name in podman_images(lab))
    # A container run from the image outside the lab (as a test inspects it) is no instance: the lab leaves it.
    inspect = subprocess.run(["podman", "run", "--rm", "--network", "none", f"localhost/{lab.name}-ami:{ami}",
                              "sh", "-c", "sleep 8; cat /opt/baked/marker"], capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    assert inspect.returncode == 0 and inspect.stdout.strip() == marker, inspect
    lab.facts["ami"], lab.facts["marker"] = ami, marker
    # With NoReboot the instance keeps running through the snapshot.
    assert sh(cname, "touch /run/before-image").returncode == 0
    ami2 = ec2.create_image(InstanceId=source, Name=f"baked-{marker[:8]}-live", NoReboot=True)["ImageId"]
    wait_for(f"AMI {ami2} available", lambda: image_state(lab, ami2) == "available", 300, interval=1)
    assert sh(cname, "test -e /run/before-image").returncode == 0
    lab.facts["ami_no_reboot"] = ami2


def test_an_instance_from_the_ami_has_its_disk_and_runs_its_own_user_data_once(lab: Lab, fleet: dict) -> None:
    ami, marker = lab.facts["ami"], lab.facts["marker"]
    ec2 = lab.client("ec2")
    started = ec2.run_instances(
        ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.small", SubnetId=fleet["subnets"][1],
        UserData=USER_DATA,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [*LAB_TAGS, {"Key": "Role", "Value": "web"}]}],
    )["Instances"][0]  # fmt: skip
    new = started["InstanceId"]
    cname = container_of(lab, new)
    wait_for(f"container {cname}", lambda: lab.containers().get(cname) == "running", 60)
    wait_for(f"{cname} booted", lambda: booted(cname), 120)
    ran = wait_for("the user data's file", lambda: sh(cname, "cat /var/tmp/user-data-ran").stdout, 60)
    assert ran.split() == [marker]  # what the AMI's source had on disk, read by this instance's user data
    log = sh(cname, "cat /var/log/cloud-init-output.log").stdout
    assert "user data runs as root" in log, log
    assert sh(cname, "systemctl is-active cloud-final.service").stdout.strip() == "active"
    # A reboot (RebootInstances: the lab restarts the container, disk kept) does not run it again (once per
    # instance, as cloud-init's scripts-user).
    assert sh(cname, "touch /run/before-reboot").returncode == 0
    ec2.reboot_instances(InstanceIds=[new])
    wait_for(f"{cname} rebooted", lambda: sh(cname, "test -e /run/before-reboot").returncode == 1, 120)
    wait_for(f"{cname} booted again", lambda: booted(cname), 120)
    assert sh(cname, "cat /var/tmp/user-data-ran").stdout.split() == [marker]
    # The instance without user data (the AMI's source) has no cloud-final unit of its own.
    source = container_of(lab, fleet["instances"][0][0])
    assert sh(source, "test -e /etc/systemd/system/cloud-final.service").returncode == 1
    lab.facts["from_ami"] = new
    # Its own SSH host key, not its source's.
    fingerprint = "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub"
    assert sh(cname, fingerprint).stdout.split()[1] != sh(source, fingerprint).stdout.split()[1]
    assert sh(cname, "systemctl is-active ssh").stdout.strip() == "active"
    # What the new instance's IMDS says: its own id, and the AMI it was launched from.
    meta = sh(cname, IMDS_READ).stdout.split()
    assert meta == [new, ami], meta


IMDS_READ = """python3 - <<'EOF'
import urllib.request
base = "http://169.254.169.254/latest"
token = urllib.request.urlopen(urllib.request.Request(base + "/api/token", method="PUT",
    headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}), timeout=5).read().decode()
for path in ("instance-id", "ami-id"):
    req = urllib.request.Request(base + "/meta-data/" + path, headers={"X-aws-ec2-metadata-token": token})
    print(urllib.request.urlopen(req, timeout=5).read().decode())
EOF"""


def test_user_data_given_gzipped_and_base64_runs_too(lab: Lab, fleet: dict) -> None:
    ec2 = lab.client("ec2")
    body: Any = gzip.compress(b"#!/bin/sh\necho gz > /var/tmp/gz\n")  # boto3 base64-encodes it
    new = ec2.run_instances(
        ImageId=lab.facts["ami"], MinCount=1, MaxCount=1, InstanceType="t3.small", SubnetId=fleet["subnets"][0],
        UserData=body,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [*LAB_TAGS, {"Key": "Role", "Value": "web"}]}],
    )["Instances"][0]["InstanceId"]  # fmt: skip
    cname = container_of(lab, new)
    wait_for(f"container {cname}", lambda: lab.containers().get(cname) == "running", 60)
    assert wait_for("/var/tmp/gz", lambda: sh(cname, "cat /var/tmp/gz").stdout, 120).strip() == "gz"
    ec2.terminate_instances(InstanceIds=[new])


def test_a_deregistered_ami_loses_its_image_and_down_removes_the_others(lab: Lab, fleet: dict) -> None:
    ec2 = lab.client("ec2")
    gone = lab.facts["ami_no_reboot"]
    ec2.deregister_image(ImageId=gone)
    wait_for(f"image of {gone} removed", lambda: not any(gone in n for n in podman_images(lab)), 30)
    assert any(lab.facts["ami"] in n for n in podman_images(lab))
    down = lab.labctl("down", timeout=180)
    assert down.returncode == 0, down.stderr
    assert podman_images(lab) == []
