"""The lab's hosts before its control side on the machine's cores.

On AWS an instance's vCPUs are its own. Here the hosts are containers on the cores that also run the control
node (ansible-playbook, the load generator, the lab's own AWS). podman puts every container in one parent cgroup
(cgroupfs: /libpod_parent), which the kernel weighs as ONE process of the root cgroup (cpu.shares 1024): with
three busy control-side processes, every host of the lab together gets a quarter of the cores. That fits what CI
runs showed: the hosts stalling together (an old release's p99 of 916.8 ms, max 9.4 s, while the canary host
installed a release) and Auto Scaling instances not ready in time. The parent cgroup is weighed as HOSTS_WEIGHT
busy processes instead; the hosts still get no more than their instance type's quota
where the lab sets one (scaling.py), and the control side takes whatever they leave.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ec2_fleet_dev.lab import podman

log = logging.getLogger(__name__)

HOSTS_WEIGHT = 8  # the containers' parent cgroup weighs as much as this many busy control-side processes
ROOT = Path("/sys/fs/cgroup")


def weight_file(parent: str, root: Path = ROOT) -> tuple[Path, int] | None:
    """The parent cgroup's CPU weight file and the value for HOSTS_WEIGHT (cgroup v1 cpu.shares, v2 cpu.weight)."""
    relative = parent.strip("/")
    if not relative:
        return None  # the containers are in the root cgroup: nothing to weigh
    v1 = root / "cpu" / relative / "cpu.shares"
    if v1.exists():
        return v1, 1024 * HOSTS_WEIGHT
    v2 = root / relative / "cpu.weight"
    if v2.exists():
        return v2, 100 * HOSTS_WEIGHT
    return None


class HostsFirst:
    """Keeps the containers' parent cgroup at HOSTS_WEIGHT (podman may make it again: checked every pass)."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root
        self.parent: str | None = None
        self._warned = False

    def apply(self, container: str) -> bool:
        """Weigh the parent cgroup of this running container; True when it is at HOSTS_WEIGHT now."""
        if self.parent is None:
            path = podman.podman("inspect", "--format", "{{.State.CgroupPath}}", container, check=False).strip()
            if not path:
                return False
            self.parent = path.rsplit("/", 1)[0]
        found = weight_file(self.parent, self.root)
        if found is None:
            return False
        target, value = found
        try:
            if int(target.read_text()) != value:
                target.write_text(f"{value}\n")
                log.info("The hosts' cgroup %s weighs %d busy processes now (%s = %d)", self.parent, HOSTS_WEIGHT,
                         target.name, value)
            return True
        except (OSError, ValueError) as exc:
            if not self._warned:
                self._warned = True
                log.warning("The hosts' cgroup %s keeps its CPU weight (%s): the control side may starve them",
                            self.parent, exc)
            return False
