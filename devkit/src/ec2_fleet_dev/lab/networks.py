"""The lab's networks: one podman network per VPC (subnet = the VPC's CIDR) with the IMDS emulator
on its bridge, and fixed addresses for the service containers (Redis, PostgreSQL) at the top of it."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ec2_fleet_dev.lab import podman
from ec2_fleet_dev.lab.aws_endpoints import BridgeAwsEndpoints, Reach
from ec2_fleet_dev.lab.config import LABEL, LabConfig
from ec2_fleet_dev.lab.imds import BridgeImds

log = logging.getLogger(__name__)


@dataclass
class Network:
    name: str
    vpc_id: str
    cidr: str
    device: str
    imds: BridgeImds | None = None
    aws: BridgeAwsEndpoints | None = None


def service_mac(ip: str) -> str:
    """A fixed MAC per service address, as an ENI keeps its MAC: a service restarted at the same
    address must not leave the hosts' ARP caches pointing at a MAC that no longer exists
    (they would wait about 8 s in DELAY/PROBE before they reach it again)."""
    return "0a:58:" + ":".join(f"{int(octet):02x}" for octet in ip.split("."))


class Networks:
    """The networks of the lab's VPCs (vpc id -> Network) and the service addresses given out on them."""

    def __init__(self, config: LabConfig, metadata: Callable[[str], dict[str, str] | None],
                 instance_ips: Callable[[], Iterable[str]],
                 aws: tuple[tuple[Path, Path], Reach] | None = None) -> None:
        self.config = config
        self.by_vpc: dict[str, Network] = {}
        self.service_ips: dict[tuple[str, str], str] = {}  # (vpc id, container) -> IP
        self._metadata = metadata  # instance metadata by private IP, for the IMDS emulator
        self._instance_ips = instance_ips
        self._aws = aws  # ((certificate, key), reach) of the AWS endpoints served beside IMDS

    @property
    def lab(self) -> str:
        return self.config.name

    def create(self, vpc: str, cidr: str) -> None:
        name = f"{self.lab}-{vpc}"
        existing = podman.networks(self.lab).get(name)
        if existing is None:
            net = ipaddress.ip_network(cidr)
            for subnet, owner in podman.all_subnets().items():
                if ipaddress.ip_network(subnet).overlaps(net):
                    raise RuntimeError(
                        f"VPC {vpc} ({cidr}) overlaps podman network {owner} ({subnet}); "
                        "give the VPC a CIDR no podman network uses"
                    )
            podman.podman(
                "network",
                "create",
                "--subnet",
                cidr,
                "--gateway",
                str(net.network_address + 1),
                "--label",
                f"{LABEL}={self.lab}",
                "--label",
                f"{LABEL}.vpc={vpc}",
                name,
            )
            existing = podman.networks(self.lab)[name]
        network = Network(name, vpc, cidr, existing["network_interface"])
        self.by_vpc[vpc] = network
        log.info("Network %s (%s) for %s on bridge %s", name, cidr, vpc, network.device)

    def ensure_imds(self, network: Network) -> None:
        """The bridge exists only while a container is attached (netavark): follow it."""
        try:
            ifindex = int(Path(f"/sys/class/net/{network.device}/ifindex").read_text())
        except OSError:
            ifindex = None
        if network.imds is not None and network.imds.ifindex != ifindex:
            self._stop(network)
        if network.imds is None and ifindex is not None:
            c = self.config
            network.imds = BridgeImds(network.device, c.imds_address, c.imds_port, self._metadata)
            network.imds.ifindex = ifindex
            if self._aws is not None:
                (cert, key), reach = self._aws
                network.aws = BridgeAwsEndpoints(network.device, c.imds_address, cert, key, reach,
                                                 (c.moto_host, c.moto_port))

    @staticmethod
    def _stop(network: Network) -> None:
        """Stop the bridge's servers (the AWS endpoints before IMDS, which removes the address)."""
        if network.aws is not None:
            network.aws.stop()
            network.aws = None
        if network.imds is not None:
            network.imds.stop()
            network.imds = None

    def remove_members(self, vpc: str) -> None:
        """Remove the containers that belong to the VPC (instances, Redis)."""
        for cname, c in podman.containers(self.lab).items():
            if c.labels.get(f"{LABEL}.vpc") == vpc:
                podman.remove_container(cname)

    def delete(self, network: Network) -> None:
        """Stop the network's IMDS emulator and remove the podman network."""
        self._stop(network)
        podman.podman("network", "rm", "-f", network.name, check=False)
        log.info("VPC %s is gone: removed network %s", network.vpc_id, network.name)

    def service_ip(self, vpc: str, cname: str) -> str:
        """A fixed address for a service container, from the top of the VPC's CIDR (moto gives
        instances addresses from the bottom of each subnet)."""
        key = (vpc, cname)
        if key not in self.service_ips:
            taken = set(self.service_ips.values()) | set(self._instance_ips())
            net = ipaddress.ip_network(self.by_vpc[vpc].cidr)
            candidate = net.broadcast_address - 1
            while str(candidate) in taken:
                candidate -= 1
            self.service_ips[key] = str(candidate)
        return self.service_ips[key]

    def stop_imds(self) -> None:
        for network in self.by_vpc.values():
            self._stop(network)
        self.by_vpc.clear()
