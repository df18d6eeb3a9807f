"""The image of the lab's Redis and PostgreSQL containers: the test host image plus Debian's
redis-server and postgresql, built once (apt over http inside a container, then podman commit)
and reused while its tag exists and it was built from the host image as it is now (the label
ec2-fleet.base holds that image's id: a rebuilt host image rebuilds this one)."""

from __future__ import annotations

import logging
import time

from ec2_fleet_dev.lab import podman
from ec2_fleet_dev.lab.config import LABEL, LabConfig

log = logging.getLogger(__name__)

INSTALL = """set -eu
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server postgresql
rm -f /usr/sbin/policy-rc.d
apt-get clean && rm -rf /var/lib/apt/lists/*
"""


BASE_LABEL = "ec2-fleet.base"


def ensure(config: LabConfig) -> None:
    if not podman.image_exists(config.host_image):
        raise RuntimeError(f"the host image {config.host_image} is missing: run `make image` first")
    base = podman.podman("image", "inspect", "--format", "{{.Id}}", config.host_image).strip()
    if podman.image_exists(config.services_image):
        built_on = podman.podman(
            "image", "inspect", "--format", f'{{{{ index .Labels "{BASE_LABEL}" }}}}', config.services_image
        ).strip()
        if built_on == base:
            return
        log.info("%s was built on another host image: rebuilding it", config.services_image)
    name = f"{config.name}-imagebuild"
    started = time.monotonic()
    log.info("Building %s from %s (apt: redis-server, postgresql)", config.services_image, config.host_image)
    podman.remove_container(name)
    try:
        podman.podman(
            "run", "-d", "--name", name, "--label", f"{LABEL}={config.name}", config.host_image, "sleep", "1800"
        )
        podman.podman("exec", name, "sh", "-c", INSTALL, timeout=900)
        podman.podman(
            "commit", "-q", "--change", f"LABEL {BASE_LABEL}={base}", name, config.services_image, timeout=300
        )
    finally:
        podman.remove_container(name)
    log.info("Built %s in %.0f s", config.services_image, time.monotonic() - started)
