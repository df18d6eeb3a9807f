"""The image of the lab's Redis, PostgreSQL and pooler containers: the test host image plus Debian's
PACKAGES, built once (apt over http inside a container, then podman commit) and reused while its tag
exists, it was built from the host image as it is now (the label ec2-fleet.base holds that image's
id: a rebuilt host image rebuilds this one) and with the packages listed now (the label
ec2-fleet.packages: a package added here rebuilds it)."""

from __future__ import annotations

import logging
import time

from ec2_fleet_dev.lab import podman
from ec2_fleet_dev.lab.config import LABEL, LabConfig

log = logging.getLogger(__name__)

PACKAGES = ("redis-server", "postgresql", "pgbouncer")
INSTALL = f"""set -eu
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends {" ".join(PACKAGES)}
rm -f /usr/sbin/policy-rc.d
apt-get clean && rm -rf /var/lib/apt/lists/*
"""


BASE_LABEL = "ec2-fleet.base"
PACKAGES_LABEL = "ec2-fleet.packages"


def _label(image: str, label: str) -> str:
    return podman.podman("image", "inspect", "--format", f'{{{{ index .Labels "{label}" }}}}', image).strip()


def ensure(config: LabConfig) -> None:
    if not podman.image_exists(config.host_image):
        raise RuntimeError(f"the host image {config.host_image} is missing: run `make image` first")
    base = podman.podman("image", "inspect", "--format", "{{.Id}}", config.host_image).strip()
    packages = ",".join(PACKAGES)
    if podman.image_exists(config.services_image):
        built_on = _label(config.services_image, BASE_LABEL)
        built_with = _label(config.services_image, PACKAGES_LABEL)
        if built_on == base and built_with == packages:
            return
        why = "another host image" if built_on != base else f"other packages ({built_with or 'unlabelled'})"
        log.info("%s was built with %s: rebuilding it", config.services_image, why)
    name = f"{config.name}-imagebuild"
    started = time.monotonic()
    log.info("Building %s from %s (apt: %s)", config.services_image, config.host_image, packages)
    podman.remove_container(name)
    try:
        podman.podman(
            "run", "-d", "--name", name, "--label", f"{LABEL}={config.name}", config.host_image, "sleep", "1800"
        )
        podman.podman("exec", name, "sh", "-c", INSTALL, timeout=900)
        # The build container's lab label is cleared in the image: the image is every lab's, and a lab's
        # teardown removes the images labelled with its name (podman.sweep) with `rmi -f`, which also removes
        # every container made from them. With the label kept, the lab that built the image removed the database,
        # Redis and pooler of every other lab running at its teardown (seen: a lab of test_24 going down took a
        # lab of the Auto Scaling files' services; their PostgreSQL came back empty).
        podman.podman(
            "commit", "-q", "--change", f"LABEL {BASE_LABEL}={base}", "--change", f"LABEL {PACKAGES_LABEL}={packages}",
            "--change", f"LABEL {LABEL}=", name, config.services_image, timeout=300,
        )
    finally:
        podman.remove_container(name)
    log.info("Built %s in %.0f s", config.services_image, time.monotonic() - started)
