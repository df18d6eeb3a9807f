"""A thin wrapper around the podman command line (containers, networks, images)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from dataclasses import dataclass

from ec2_fleet_dev.lab.config import LABEL
from ec2_fleet_dev.paths import ROOT

log = logging.getLogger(__name__)

os.environ.setdefault("CONTAINERS_CONF", str(ROOT / "tools" / "containers.conf"))


class PodmanError(RuntimeError):
    pass


# `podman ps` costs about 60 ms of CPU (measured on a CI machine of two cores) and each pass of a lab's controller
# asked it four times (the database, the pooler, the instances, the status), every second: two labs in `make test`
# ran it about 3.5 times a second, a fifth of a core the labs' hosts need. A listing is reused for FRESH_S,
# and forgotten at once by any podman command that may change a container or a network.
FRESH_S = 0.9
READ_ONLY = {"ps", "inspect", "exec", "logs", "cp", "port", "top", "stats", "version", "info", "images", "exists"}
_listings: dict[str, tuple[float, str]] = {}
_listings_lock = threading.Lock()


def _changes(args: tuple[str, ...]) -> bool:
    """Whether this podman command may change containers or networks (a listing taken before is then stale)."""
    if not args:
        return False
    if args[0] in ("image", "network", "container"):
        return len(args) < 2 or args[1] not in READ_ONLY | {"ls"}
    return args[0] not in READ_ONLY


def forget_listings() -> None:
    with _listings_lock:
        _listings.clear()


def podman(
    *args: str, check: bool = True, timeout: float = 120, stdin: str | None = None, stdin_bytes: bytes | None = None
) -> str:
    if _changes(args):
        forget_listings()
    if stdin_bytes is not None:
        raw = subprocess.run(["podman", *args], capture_output=True, timeout=timeout, input=stdin_bytes, check=False)
        proc = subprocess.CompletedProcess(raw.args, raw.returncode, raw.stdout.decode(errors="replace"),
                                           raw.stderr.decode(errors="replace"))
    else:
        proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, input=stdin,
                              check=False)
    if _changes(args):  # and after: a listing taken while it ran may be stale too
        forget_listings()
    if check and proc.returncode != 0:
        raise PodmanError(f"podman {' '.join(args[:3])} ... failed ({proc.returncode}): {proc.stderr.strip()[-600:]}")
    return proc.stdout


@dataclass
class Container:
    name: str
    state: str  # running, exited, created, ...
    labels: dict[str, str]


def containers(lab: str) -> dict[str, Container]:
    """The lab's containers by name (a listing at most FRESH_S old, and none older than the last change)."""
    now = time.monotonic()
    with _listings_lock:
        taken, out = _listings.get(lab, (0.0, ""))
    if now - taken >= FRESH_S:
        out = podman("ps", "-a", "--filter", f"label={LABEL}={lab}", "--format", "json")
        with _listings_lock:
            _listings[lab] = (now, out)
    result = {}
    for item in json.loads(out or "[]"):
        name = item["Names"][0]
        result[name] = Container(name, item.get("State", ""), item.get("Labels") or {})
    return result


def networks(lab: str) -> dict[str, dict]:
    out = podman("network", "ls", "--filter", f"label={LABEL}={lab}", "--format", "{{.Name}}")
    names = [n for n in out.split() if n]
    if not names:
        return {}
    return {n["name"]: n for n in json.loads(podman("network", "inspect", *names))}


def all_subnets() -> dict[str, str]:
    """subnet -> network name, over every podman network (to detect overlaps before creating one)."""
    names = podman("network", "ls", "--format", "{{.Name}}").split()
    result = {}
    for net in json.loads(podman("network", "inspect", *names) if names else "[]"):
        for sub in net.get("subnets") or []:
            result[sub["subnet"]] = net["name"]
    return result


def remove_container(name: str) -> None:
    podman("rm", "-f", "-t", "0", name, check=False)


def image_exists(image: str) -> bool:
    return subprocess.run(["podman", "image", "exists", image], check=False).returncode == 0


# Images every lab starts containers from: never removed by one lab's sweep (`rmi -f` would remove the other
# labs' containers made from them too).
SHARED_IMAGES = ("ec2-fleet-host", "ec2-fleet-services")


def sweep(lab: str) -> list[str]:
    """Remove every container, network and image (AMIs, images.py) labelled with this lab; return what was
    removed."""
    removed = []
    for name in containers(lab):
        remove_container(name)
        removed.append(f"container {name}")
    for name in networks(lab):
        podman("network", "rm", "-f", name, check=False)
        removed.append(f"network {name}")
    images = podman("images", "--filter", f"label={LABEL}={lab}", "--format", "{{.Id}} {{.Repository}}:{{.Tag}}",
                    check=False)
    for line in images.splitlines():
        image_id, _, name = line.partition(" ")
        if name.rpartition(":")[0].rpartition("/")[2] in SHARED_IMAGES:  # every lab's, whatever its label says
            continue
        podman("rmi", "-f", image_id, check=False)
        removed.append(f"image {name}")
    return removed
