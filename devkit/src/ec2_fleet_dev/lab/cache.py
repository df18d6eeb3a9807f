"""The lab's ElastiCache: one Redis container per replication group, with the primary and reader endpoint
names as network aliases, the AUTH token and TLS (a certificate of the lab CA) as the group asks."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ec2_fleet_dev.lab import keys, moto_lab, podman
from ec2_fleet_dev.lab.config import LABEL, LabConfig
from ec2_fleet_dev.lab.instances import ROLE
from ec2_fleet_dev.lab.networks import Networks, service_mac

log = logging.getLogger(__name__)


@dataclass
class CacheGroup:
    id: str
    vpc_id: str | None
    primary: str
    reader: str | None
    port: int
    tls: bool
    token: str | None


def cache_groups(config: LabConfig, elasticache: Any, default_vpc: str | None,
                 errors: dict[str, str]) -> list[CacheGroup]:
    """The replication groups to emulate (not cluster mode); a group whose AUTH token the lab does not know
    is left out, with an error for `status`."""
    subnet_vpcs = {
        g["CacheSubnetGroupName"]: g.get("VpcId")
        for g in elasticache.describe_cache_subnet_groups()["CacheSubnetGroups"]
    }
    groups = []
    for g in elasticache.describe_replication_groups()["ReplicationGroups"]:
        if g.get("Status") in ("deleting", "deleted") or not g.get("NodeGroups"):
            continue
        node = g["NodeGroups"][0]
        primary = node.get("PrimaryEndpoint") or {}
        if not primary.get("Address"):
            continue  # cluster mode: not emulated
        rgid = g["ReplicationGroupId"]
        raw = moto_lab.backend("elasticache", config.region).replication_groups.get(rgid)
        subnet_group = getattr(raw, "cache_subnet_group_name", None)
        with moto_lab.BOOK.lock:
            token = moto_lab.BOOK.auth_tokens.get((config.region, rgid))
        if g.get("AuthTokenEnabled") and not token:  # created before this controller started
            errors[f"redis {rgid}"] = "AUTH token unknown to the lab (group created by another run)"
            continue
        groups.append(
            CacheGroup(
                rgid,
                subnet_vpcs.get(subnet_group) or default_vpc,
                primary["Address"],
                (node.get("ReaderEndpoint") or {}).get("Address"),
                int(primary.get("Port") or 6379),
                bool(g.get("TransitEncryptionEnabled")),
                token,
            )
        )
    return groups


class RedisGroups:
    """The Redis containers, and what `status` shows of each group (group id -> endpoint, ip, ...)."""

    def __init__(self, config: LabConfig, ca: tuple[Path, Path], networks: Networks) -> None:
        self.config = config
        self.ca = ca
        self.networks = networks
        self.status: dict[str, dict[str, Any]] = {}

    def ensure(self, group: CacheGroup, existing: podman.Container | None, generation: int, stopped: bool) -> None:
        """The group's Redis running as asked; generation: failovers so far (labctl fault redis-failover),
        stopped: labctl fault redis-stop (stopped, and left stopped)."""
        assert group.vpc_id is not None
        lab = self.config.name
        cname = f"{lab}-redis-{group.id}"
        # A failover (labctl fault redis-failover) puts the new primary at a new address.
        ip = self.networks.service_ip(group.vpc_id, cname if not generation else f"{cname}#{generation}")
        directory = self.config.state_dir / "redis" / group.id
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        names = [n for n in (group.primary, group.reader) if n]
        lines = ["bind 0.0.0.0", "protected-mode no", 'save ""', "appendonly no", "daemonize no"]
        if group.tls:
            lines += [
                "port 0",
                f"tls-port {group.port}",
                "tls-cert-file /lab/server.crt",
                "tls-key-file /lab/server.key",
                "tls-ca-cert-file /lab/ca.crt",
                "tls-auth-clients no",
            ]
        else:
            lines.append(f"port {group.port}")
        if group.token:
            lines.append(f"requirepass {group.token}")
        conf = "\n".join(lines) + "\n"
        fingerprint = hashlib.sha256(f"{conf}{names}{ip}{group.vpc_id}{generation}".encode()).hexdigest()[:16]
        self.status[group.id] = {
            "endpoint": f"{'rediss' if group.tls else 'redis'}://{group.primary}:{group.port}",
            "ip": ip,
            "port": group.port,
            "container": cname,
            "tls": group.tls,
            "auth": bool(group.token),
            "generation": generation,
        }
        if stopped:
            if existing and existing.state == "running":
                # The image's stop signal is systemd's (SIGRTMIN+3), which redis-server ignores.
                podman.podman("kill", "--signal", "TERM", cname, check=False)
                podman.podman("stop", "-t", "5", cname)
                log.info("Fault: Redis for %s stopped", group.id)
            return
        if existing and existing.state == "running" and existing.labels.get(f"{LABEL}.fingerprint") == fingerprint:
            return
        if existing:
            podman.remove_container(cname)
        if group.tls:
            keys.server_cert(*self.ca, directory, names, [ip])
            (directory / "ca.crt").write_bytes(self.ca[0].read_bytes())
        (directory / "redis.conf").write_text(conf)
        (directory / "redis.conf").chmod(0o600)
        aliases = [a for n in names for a in ("--network-alias", n)]
        podman.podman(
            "run",
            "-d",
            "--name",
            cname,
            "--label",
            f"{LABEL}={lab}",
            "--label",
            f"{ROLE}=redis",
            "--label",
            f"{LABEL}.group={group.id}",
            "--label",
            f"{LABEL}.vpc={group.vpc_id}",
            "--label",
            f"{LABEL}.fingerprint={fingerprint}",
            "--network",
            self.networks.by_vpc[group.vpc_id].name,
            "--ip",
            ip,
            "--mac-address",
            service_mac(ip),
            *aliases,
            "-v",
            f"{directory}:/lab:ro",
            self.config.services_image,
            "redis-server",
            "/lab/redis.conf",
        )
        log.info("Redis for %s at %s (%s, TLS %s, AUTH %s)", group.id, group.primary, ip, group.tls, bool(group.token))
