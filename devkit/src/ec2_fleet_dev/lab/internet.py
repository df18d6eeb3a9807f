"""The lab's internet: a managed Redis outside the VPC, as Upstash and Redis Cloud serve one.

One podman network of its own (`<lab>-internet`, a /24 of 198.18.0.0/15, the benchmarking range, never
a VPC's CIDR) with one Redis 7 container on it: TLS only (`port 0`, `tls-port` 16380, a certificate of
the lab CA for `ext-redis.lab.example`, a name of a reserved domain), the ACL user `default` with a
generated password (`requirepass`). Its URL is `rediss://default:PASSWORD@ext-redis.lab.example:16380`.

How the hosts reach it, as through a NAT gateway: the name is in each instance's /etc/hosts (the lab
writes it when it starts the instance, as it writes the SSH key: public DNS stands behind it on AWS); the
packets leave the VPC network by its gateway, the podman host, which routes them to the internet network
and masquerades them (podman's CNI bridge masquerades what leaves a network), so the Redis sees the
host's address, as an internet service sees a NAT gateway's. Nothing comes back in: an nftables table
of the lab (`inet <lab>_internet`) drops every new connection that the internet network opens through
the host (to a VPC's instances or anything else the host routes to); replies pass.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ec2_fleet_dev.lab import firewall, keys, podman
from ec2_fleet_dev.lab.config import LABEL, LabConfig
from ec2_fleet_dev.lab.instances import ROLE
from ec2_fleet_dev.lab.networks import service_mac

log = logging.getLogger(__name__)

NAME = "ext-redis.lab.example"  # RFC 2606: .example never resolves on the real internet
PORT = 16380  # a high port, as Redis Cloud gives each database its own
USER = "default"
CHECK_SECONDS = 10.0  # how often the controller looks at the container when no fault changed
RANGE = ipaddress.ip_network("198.18.0.0/15")  # RFC 2544: benchmarking, never routed on the internet


@dataclass(frozen=True)
class Endpoint:
    url: str  # the secret-bearing URL the fleet is given (aws_cache_external_url)
    ip: str
    port: int
    ca_file: str


def table_name(lab: str) -> str:
    return lab.replace("-", "_") + "_internet"


def ruleset(lab: str, subnet: str) -> str:
    """The nft script that (re)makes the lab's internet table: no new connection from the internet network
    is forwarded by the host; replies to the hosts' connections (established) pass."""
    table = table_name(lab)
    return "\n".join(
        [
            f"table inet {table} {{}}",
            f"delete table inet {table}",
            f"table inet {table} {{",
            "  chain forward {",
            "    type filter hook forward priority 0; policy accept;",
            f"    ip saddr {subnet} ct state new drop",
            "  }",
            "}",
            "",
        ]
    )


def remove_firewall(lab: str) -> bool:
    """Delete the lab's internet table if it exists; True when there was one."""
    table = table_name(lab)
    listed = subprocess.run(["nft", "list", "table", "inet", table], capture_output=True, text=True, timeout=30,
                            check=False)
    if listed.returncode != 0:
        return False
    firewall._nft(f"delete table inet {table}\n")
    return True


def add_hosts_entry(container: str, ip: str, name: str = NAME) -> None:
    """The name in an instance's /etc/hosts (once), as the lab writes the SSH key: the hosts resolve it."""
    script = f"grep -q ' {name}$' /etc/hosts || echo '{ip} {name}' >> /etc/hosts"
    podman.podman("exec", container, "sh", "-c", script)


class InternetRedis:
    """The internet network, its Redis, and what `status` shows of it."""

    def __init__(self, config: LabConfig, ca: tuple[Path, Path]) -> None:
        self.config = config
        self.ca = ca
        self.directory = config.state_dir / "ext-redis"
        self.password = keys.password(self.directory / "password")
        self.subnet = ""
        self.ip = ""
        self.status: dict[str, Any] = {}
        self._wanted: bool | None = None  # the fault state last applied
        self._checked = 0.0  # monotonic time of the last look at the container

    @property
    def network(self) -> str:
        return f"{self.config.name}-internet"

    @property
    def container(self) -> str:
        return f"{self.config.name}-ext-redis"

    def start(self) -> Endpoint:
        """The network, the firewall table and the Redis; the endpoint (also written to the state dir)."""
        self._network()
        firewall._nft(ruleset(self.config.name, self.subnet))
        self._run()
        url = f"rediss://{USER}:{self.password}@{NAME}:{PORT}"
        (self.directory / "url").write_text(url + "\n")
        (self.directory / "url").chmod(0o600)
        log.info("Internet Redis %s at %s (%s, TLS only, ACL user %s)", NAME, self.ip, self.network, USER)
        return Endpoint(url, self.ip, PORT, str(self.ca[0]))

    def _network(self) -> None:
        existing = podman.networks(self.config.name).get(self.network)
        if existing is None:
            taken = [ipaddress.ip_network(s) for s in podman.all_subnets()]
            subnets = list(RANGE.subnets(new_prefix=24))
            first = int(hashlib.sha256(self.config.name.encode()).hexdigest(), 16) % len(subnets)
            free = next(
                (n for n in subnets[first:] + subnets[:first] if not any(n.overlaps(t) for t in taken)), None
            )
            if free is None:
                raise RuntimeError(f"no free /24 in {RANGE} for the lab's internet network")
            podman.podman(
                "network", "create", "--subnet", str(free), "--gateway", str(free.network_address + 1),
                "--label", f"{LABEL}={self.config.name}", "--label", f"{LABEL}.internet=true", self.network,
            )
            existing = podman.networks(self.config.name)[self.network]
        self.subnet = existing["subnets"][0]["subnet"]
        self.ip = str(ipaddress.ip_network(self.subnet).network_address + 10)

    def _run(self) -> None:
        d = self.directory
        keys.server_cert(*self.ca, d, [NAME], [self.ip])
        (d / "ca.crt").write_bytes(self.ca[0].read_bytes())
        conf = "\n".join(
            [
                "bind 0.0.0.0",
                "port 0",  # no plaintext port at all
                f"tls-port {PORT}",
                "tls-cert-file /lab/server.crt",
                "tls-key-file /lab/server.key",
                "tls-ca-cert-file /lab/ca.crt",
                "tls-auth-clients no",
                f"requirepass {self.password}",  # the password of the ACL user `default`
                'save ""',
                "appendonly no",
                "daemonize no",
            ]
        )
        (d / "redis.conf").write_text(conf + "\n")
        (d / "redis.conf").chmod(0o600)
        podman.remove_container(self.container)
        podman.podman(
            "run", "-d", "--name", self.container,
            "--label", f"{LABEL}={self.config.name}", "--label", f"{ROLE}=ext-redis",
            "--network", self.network, "--ip", self.ip, "--mac-address", service_mac(self.ip),
            "-v", f"{d}:/lab:ro",
            self.config.services_image, "redis-server", "/lab/redis.conf",
        )

    def ensure(self, stopped: bool) -> None:
        """Running, or stopped (labctl fault ext-redis-stop) and left stopped; start again keeps the container
        (an empty Redis: it saves nothing, as a restarted cache node). Asks podman at once when the wanted
        state changed, else every CHECK_SECONDS (a podman call costs CPU that the lab's hosts need)."""
        now = time.monotonic()
        if stopped == self._wanted and now - self._checked < CHECK_SECONDS:
            return
        self._wanted, self._checked = stopped, now
        c = podman.containers(self.config.name).get(self.container)
        state = c.state if c else "absent"
        if stopped and state == "running":
            # The image's stop signal is systemd's (SIGRTMIN+3), which redis-server ignores.
            podman.podman("kill", "--signal", "TERM", self.container, check=False)
            podman.podman("stop", "-t", "5", self.container, check=False)
            log.info("Fault: internet Redis stopped")
        elif not stopped and state != "running":
            if c is None or not podman.podman("start", self.container, check=False).strip():
                self._run()
            log.info("Internet Redis running again")
        c = podman.containers(self.config.name).get(self.container)
        self.status = {
            "endpoint": f"rediss://{NAME}:{PORT}",
            "ip": self.ip,
            "port": PORT,
            "container": self.container,
            "state": c.state if c else "absent",
        }

    def stop(self) -> None:
        """The firewall table (the containers and networks go with the lab's label sweep)."""
        remove_firewall(self.config.name)
