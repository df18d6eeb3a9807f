"""What the lab needs from the machine, checked before `labctl up` starts anything.

Each check names what is missing and the command that installs it; `up` prints them all in one
message and starts nothing. The Makefile's `host-deps` and `image` targets install all of it.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from ec2_fleet_dev.lab import podman
from ec2_fleet_dev.lab.config import LABEL, LabConfig

HOST_DEPS = "make host-deps  (or: apt-get install -y {packages})"
DNSNAME_PLUGIN = Path("/usr/lib/cni/dnsname")


@dataclass(frozen=True)
class Problem:
    what: str
    fix: str

    def __str__(self) -> str:
        return f"- {self.what}\n    fix: {self.fix}"


def _run(*cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def programs() -> list[Problem]:
    wanted = {  # program: Debian package
        "podman": "podman",
        "runc": "runc",
        "haproxy": "haproxy",
        "openssl": "openssl",
        "nft": "nftables",
        "iptables": "iptables",
    }
    missing = {prog: pkg for prog, pkg in wanted.items() if shutil.which(prog) is None}
    if not missing:
        return []
    packages = " ".join(sorted(set(missing.values())))
    return [Problem(f"programs not found: {', '.join(missing)}", HOST_DEPS.format(packages=packages))]


def network_backend() -> list[Problem]:
    """podman on CNI with the dnsname plugin (tools/containers.conf says cni)."""
    problems = []
    info = _run("podman", "info", "--format", "{{.Host.NetworkBackend}}")
    backend = info.stdout.strip()
    if info.returncode != 0:
        return [Problem(f"podman info failed: {info.stderr.strip()[-300:]}", "see tools/containers.conf")]
    if backend != "cni":
        problems.append(Problem(
            f"podman's network backend is {backend!r}, the lab needs 'cni' (containers on the default network "
            "must keep the host's resolver)",
            "export CONTAINERS_CONF=tools/containers.conf (the Makefile does), which sets network_backend = \"cni\"",
        ))
    if not DNSNAME_PLUGIN.exists():
        problems.append(Problem(
            f"the CNI dnsname plugin ({DNSNAME_PLUGIN}) is missing: lab containers cannot resolve each other's names",
            HOST_DEPS.format(packages="golang-github-containernetworking-plugin-dnsname containernetworking-plugins"),
        ))
    return problems


def image(config: LabConfig) -> list[Problem]:
    if podman.image_exists(config.host_image):
        return []
    return [Problem(f"the test image {config.host_image} does not exist", "make image")]


def name_resolution(config: LabConfig) -> list[Problem]:
    """Two containers on a network made like a lab VPC's: one finds the other by its alias."""
    suffix = uuid.uuid4().hex[:6]
    net, server, client = (f"{config.name}-preflight-{suffix}{part}" for part in ("", "-a", "-b"))
    alias = f"preflight-{suffix}.lab.internal"
    label = f"{LABEL}={config.name}"
    try:
        podman.podman("network", "create", "--label", label, net)
        podman.podman("run", "-d", "--rm", "--name", server, "--label", label, "--network", net,
                      "--network-alias", alias, config.host_image, "sleep", "60")
        found = _run("podman", "run", "--rm", "--name", client, "--label", label, "--network", net,
                     config.host_image, "getent", "hosts", alias, timeout=60)
    except (podman.PodmanError, subprocess.TimeoutExpired) as exc:
        return [Problem(f"two containers on a test network could not start: {exc}", "see PLATFORM.md (podman)")]
    finally:
        podman.remove_container(client)
        podman.remove_container(server)
        podman.podman("network", "rm", "-f", net, check=False)
    if found.returncode != 0:
        return [Problem(
            f"a container cannot resolve another one's network alias ({alias}) on a lab network",
            HOST_DEPS.format(packages="golang-github-containernetworking-plugin-dnsname") + "; then remove the "
            "lab's networks (labctl down) so that they are made again with DNS",
        )]
    return []


def check(config: LabConfig) -> list[Problem]:
    """Every problem found, the cheap checks first; the container checks only when those pass."""
    problems = programs()
    if problems:
        return problems
    problems = network_backend() + image(config)
    if problems:
        return problems
    return name_resolution(config)
