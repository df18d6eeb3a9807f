"""The lab's images, as EC2 makes AMIs: CreateImage of a lab instance commits its container to a container
image (the AMI <-> image mapping), and an instance launched from that AMI starts from the image.

As on AWS the AMI is `pending` until its snapshot is taken and only then `available` (moto makes it
available at once: the lab's patch in moto_lab.py sets it pending and queues the request here). Without
NoReboot the instance is shut down for the snapshot and started again, as EC2 does; with NoReboot its
container is paused while it is committed. Deregistering the AMI removes the image. Every image carries the
lab's label, so `labctl down` removes them with the lab (podman.sweep). RebootInstances restarts the instance's
container the same way (its disk kept; a container that stops on its own is a crash and is made again)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ec2_fleet_dev.lab import moto_lab, podman
from ec2_fleet_dev.lab.config import LABEL, LabConfig
from ec2_fleet_dev.lab.instances import ROLE

log = logging.getLogger(__name__)

AMI_LABEL = f"{LABEL}.ami"


def image_name(lab: str, ami_id: str) -> str:
    return f"localhost/{lab}-ami:{ami_id}"


class Images:
    """Commits requested images in worker threads; `busy` holds the instances being imaged, which the fleet
    loop must leave alone (a stopped container is not a crashed one while EC2 takes its snapshot)."""

    def __init__(self, config: LabConfig) -> None:
        self.config = config
        self.busy: set[str] = set()
        self.committed: dict[str, str] = {}  # AMI id -> podman image
        self.seconds: dict[str, float] = {}  # AMI id -> how long its snapshot took (status shows it)
        self._lock = threading.Lock()

    def _ec2(self) -> Any:
        return moto_lab.backend("ec2", self.config.region)

    def reconcile(self) -> None:
        for instance_id in moto_lab.IMAGES.take_reboots():
            with self._lock:
                self.busy.add(instance_id)
            threading.Thread(target=self._reboot, args=(instance_id,), name=f"reboot-{instance_id}",
                             daemon=True).start()
        for request in moto_lab.IMAGES.take():
            with self._lock:
                self.busy.add(request.instance_id)
            threading.Thread(target=self._commit, args=(request,), name=f"image-{request.ami_id}", daemon=True).start()
        amis = self._ec2().amis
        for ami_id, image in list(self.committed.items()):
            if ami_id not in amis:  # deregistered
                log.info("AMI %s is deregistered: removing %s", ami_id, image)
                podman.podman("rmi", "-f", image, check=False)
                with self._lock:
                    self.committed.pop(ami_id, None)

    def image_of(self, ami_id: str) -> str | None:
        """The container image an instance launched from this AMI starts from (None: the lab's base image)."""
        with self._lock:
            return self.committed.get(ami_id)

    def _reboot(self, instance_id: str) -> None:
        cname = f"{self.config.name}-{instance_id}"
        try:
            podman.podman("restart", "-t", "60", cname, timeout=180)
            log.info("Instance %s rebooted (RebootInstances)", instance_id)
        except Exception as exc:
            log.error("Reboot of %s failed: %s", instance_id, exc)
        finally:
            with self._lock:
                self.busy.discard(instance_id)

    def _commit(self, request: moto_lab.ImageRequest) -> None:
        cname = f"{self.config.name}-{request.instance_id}"
        image = image_name(self.config.name, request.ami_id)
        started = time.monotonic()
        state = "failed"
        try:
            if request.reboot:
                podman.podman("stop", "-t", "60", cname, timeout=120)
            podman.podman(
                # The committed container's labels come with it: role=image, so that a container run from the
                # image (not as an instance) is never taken for the imaged instance and removed.
                "commit", "--pause=true", "--change", f"LABEL {LABEL}={self.config.name}",
                "--change", f"LABEL {AMI_LABEL}={request.ami_id}", "--change", f"LABEL {ROLE}=image",
                cname, image, timeout=900,
            )  # fmt: skip
            with self._lock:
                self.committed[request.ami_id] = image
                self.seconds[request.ami_id] = round(time.monotonic() - started, 1)
            state = "available"
            log.info("AMI %s of %s is %s (%.1f s)", request.ami_id, request.instance_id, image,
                     time.monotonic() - started)
        except Exception as exc:  # the AMI says so, as EC2's does when its snapshot fails
            log.error("AMI %s of %s failed: %s", request.ami_id, request.instance_id, exc)
        finally:
            if request.reboot:
                podman.podman("start", cname, check=False)
            ami = self._ec2().amis.get(request.ami_id)
            if ami is not None:
                ami.state = state
            with self._lock:
                self.busy.discard(request.instance_id)

