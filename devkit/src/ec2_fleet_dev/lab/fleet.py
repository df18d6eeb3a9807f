"""Materialise moto's resources as containers: one podman network per VPC (subnet = the VPC's
CIDR, with the IMDS emulator on its bridge), one systemd container per running lab instance
(its private IP, the key pair's public key for `ubuntu`), one Redis container per ElastiCache
replication group (the primary/reader endpoint names as network aliases, AUTH token, TLS) and
one PostgreSQL container (the database) on every lab network."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ec2_fleet_dev.lab import faults, firewall, keys, moto_lab, podman
from ec2_fleet_dev.lab.config import LABEL, LabConfig
from ec2_fleet_dev.lab.imds import BridgeImds

log = logging.getLogger(__name__)

ROLE = f"{LABEL}.role"


@dataclass
class Instance:
    id: str
    ip: str
    vpc_id: str
    az: str
    key_name: str | None
    instance_type: str
    image_id: str
    role: str = ""  # the Role tag: "bastion" is the one instance the control node may SSH to

    def metadata(self, region: str) -> dict[str, str]:
        host = "ip-" + self.ip.replace(".", "-")
        return {
            "instance-id": self.id,
            "placement/availability-zone": self.az,
            "placement/region": region,
            "local-ipv4": self.ip,
            "instance-type": self.instance_type,
            "ami-id": self.image_id,
            "hostname": f"{host}.ec2.internal",
            "local-hostname": f"{host}.ec2.internal",
        }


@dataclass
class CacheGroup:
    id: str
    vpc_id: str | None
    primary: str
    reader: str | None
    port: int
    tls: bool
    token: str | None


@dataclass
class Network:
    name: str
    vpc_id: str
    cidr: str
    device: str
    imds: BridgeImds | None = None


@dataclass
class Fleet:
    config: LabConfig
    clients: dict[str, Any]
    ca: tuple[Path, Path]
    db_password: str
    networks: dict[str, Network] = field(default_factory=dict)  # vpc id -> network
    service_ips: dict[tuple[str, str], str] = field(default_factory=dict)  # (vpc id, container) -> IP
    db_networks: set[str] = field(default_factory=set)
    instance_ips: dict[str, str] = field(default_factory=dict)  # running lab instance -> private IP
    bastion_ips: dict[str, str] = field(default_factory=dict)  # the running bastions among them
    meta_by_ip: dict[str, dict[str, str]] = field(default_factory=dict)
    redis: dict[str, dict[str, Any]] = field(default_factory=dict)  # group id -> what status shows
    errors: dict[str, str] = field(default_factory=dict)
    faults: faults.Faults = field(default_factory=faults.Faults)  # `labctl.py fault`: wanted on purpose
    _warned: dict[str, float] = field(default_factory=dict)
    _firewall: firewall.Firewall | None = None

    @property
    def lab(self) -> str:
        return self.config.name

    # --- read moto ---------------------------------------------------------------------------------
    def lab_instances(self) -> list[Instance]:
        ec2 = self.clients["ec2"]
        filters = [
            {"Name": "tag:Project", "Values": [self.config.project]},
            {"Name": "tag:Environment", "Values": [self.config.environment]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
        result = []
        for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
            for reservation in page["Reservations"]:
                for i in reservation["Instances"]:
                    if i.get("PrivateIpAddress") and i.get("VpcId"):
                        result.append(
                            Instance(
                                i["InstanceId"],
                                i["PrivateIpAddress"],
                                i["VpcId"],
                                i.get("Placement", {}).get("AvailabilityZone", self.config.region + "a"),
                                i.get("KeyName"),
                                i.get("InstanceType", ""),
                                i.get("ImageId", ""),
                                next((t["Value"] for t in i.get("Tags", []) if t["Key"] == "Role"), ""),
                            )
                        )
        return result

    def cache_groups(self, default_vpc: str | None) -> list[CacheGroup]:
        ec = self.clients["elasticache"]
        subnet_vpcs = {
            g["CacheSubnetGroupName"]: g.get("VpcId") for g in ec.describe_cache_subnet_groups()["CacheSubnetGroups"]
        }
        groups = []
        for g in ec.describe_replication_groups()["ReplicationGroups"]:
            if g.get("Status") in ("deleting", "deleted") or not g.get("NodeGroups"):
                continue
            node = g["NodeGroups"][0]
            primary = node.get("PrimaryEndpoint") or {}
            if not primary.get("Address"):
                continue  # cluster mode: not emulated
            rgid = g["ReplicationGroupId"]
            raw = moto_lab.backend("elasticache", self.config.region).replication_groups.get(rgid)
            subnet_group = getattr(raw, "cache_subnet_group_name", None)
            with moto_lab.BOOK.lock:
                token = moto_lab.BOOK.auth_tokens.get((self.config.region, rgid))
            if g.get("AuthTokenEnabled") and not token:  # created before this controller started
                self.errors[f"redis {rgid}"] = "AUTH token unknown to the lab (group created by another run)"
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

    def vpc_cidrs(self) -> dict[str, str]:
        return {v["VpcId"]: v["CidrBlock"] for v in self.clients["ec2"].describe_vpcs()["Vpcs"]}

    # --- reconcile ---------------------------------------------------------------------------------
    def reconcile(self) -> None:
        self.faults = faults.read(self.config.state_dir)
        instances = self.lab_instances()
        cidrs = self.vpc_cidrs()
        default_vpc = instances[0].vpc_id if len({i.vpc_id for i in instances}) == 1 else None
        groups = self.cache_groups(default_vpc)
        needed = {i.vpc_id for i in instances} | {g.vpc_id for g in groups if g.vpc_id}
        for vpc in sorted(needed):
            if vpc not in self.networks and vpc in cidrs:
                self._guard(f"network {vpc}", self._create_network, vpc, cidrs[vpc], instances)
        if self.networks:
            self._guard("database", self._ensure_db)
        # Before any instance starts: no private instance is ever reachable by SSH from this host.
        if self._firewall is None:
            self._firewall = firewall.Firewall(self.lab)
        self._guard("firewall", self._firewall.apply, [n.cidr for n in self.networks.values()],
                    [i.ip for i in instances if i.role == "bastion"])

        actual = podman.containers(self.lab)
        running: dict[str, Instance] = {}
        for inst in instances:
            if inst.vpc_id not in self.networks:
                continue
            cname = f"{self.lab}-{inst.id}"
            c = actual.get(cname)
            if inst.id in self.faults.killed_instances:  # labctl fault instance-kill: dead, and left dead
                if c is not None and c.state == "running":
                    log.warning("Killing %s (labctl fault instance-kill)", cname)
                    podman.podman("kill", cname, check=False)
                running[inst.id] = inst  # still running to EC2: its target fails the health checks
                continue
            if c is not None and c.state == "running":
                running[inst.id] = inst
                continue
            if c is not None:
                log.warning("Container %s is %s: recreating it", cname, c.state)
                podman.remove_container(cname)
            if self._guard(f"instance {inst.id}", self._create_instance, inst):
                running[inst.id] = inst
        for cname, c in actual.items():
            if c.labels.get(ROLE) == "instance" and c.labels.get(f"{LABEL}.instance-id") not in running:
                log.info("Instance %s is no longer running: removing %s", c.labels.get(f"{LABEL}.instance-id"), cname)
                podman.remove_container(cname)
        for network in self.networks.values():
            self._guard(f"imds {network.name}", self._ensure_imds, network)
        self.instance_ips = {i.id: i.ip for i in running.values()}
        self.bastion_ips = {i.id: i.ip for i in running.values() if i.role == "bastion"}
        self.meta_by_ip = {i.ip: i.metadata(self.config.region) for i in running.values()}

        wanted_redis = set()
        for group in groups:
            if group.vpc_id in self.networks:
                cname = f"{self.lab}-redis-{group.id}"
                wanted_redis.add(cname)
                self._guard(f"redis {group.id}", self._ensure_redis, group, actual.get(cname))
        for cname, c in actual.items():
            if c.labels.get(ROLE) == "redis" and cname not in wanted_redis:
                log.info("Replication group of %s is gone: removing it", cname)
                podman.remove_container(cname)
                self.redis.pop(c.labels.get(f"{LABEL}.group", ""), None)

        for vpc in [v for v in self.networks if v not in cidrs]:  # the VPC was deleted
            self._guard(f"network {vpc}", self._remove_network, vpc)

    def _guard(self, what: str, func: Any, *args: Any) -> bool:
        """Run one step; on failure remember the error (status shows it) and retry next pass."""
        try:
            func(*args)
            self.errors.pop(what, None)
            return True
        except Exception as exc:
            self.errors[what] = str(exc)
            if time.monotonic() - self._warned.get(what, 0) > 30:
                self._warned[what] = time.monotonic()
                log.error("%s: %s", what, exc)
            return False

    # --- networks ----------------------------------------------------------------------------------
    def _create_network(self, vpc: str, cidr: str, instances: list[Instance]) -> None:
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
        self.networks[vpc] = network
        log.info("Network %s (%s) for %s on bridge %s", name, cidr, vpc, network.device)

    def _ensure_imds(self, network: Network) -> None:
        """The bridge exists only while a container is attached (netavark): follow it."""
        try:
            ifindex = int(Path(f"/sys/class/net/{network.device}/ifindex").read_text())
        except OSError:
            ifindex = None
        if network.imds is not None and network.imds.ifindex != ifindex:
            network.imds.stop()
            network.imds = None
        if network.imds is None and ifindex is not None:
            c = self.config
            network.imds = BridgeImds(network.device, c.imds_address, c.imds_port, lambda ip: self.meta_by_ip.get(ip))
            network.imds.ifindex = ifindex

    def _remove_network(self, vpc: str) -> None:
        network = self.networks.pop(vpc)
        for cname, c in podman.containers(self.lab).items():
            if c.labels.get(f"{LABEL}.vpc") == vpc:
                podman.remove_container(cname)
        if vpc in self.db_networks:
            self.db_networks.discard(vpc)
            if self.db_networks:
                podman.podman("network", "disconnect", "-f", network.name, f"{self.lab}-db", check=False)
            else:
                podman.remove_container(f"{self.lab}-db")
        if network.imds:
            network.imds.stop()
        podman.podman("network", "rm", "-f", network.name, check=False)
        log.info("VPC %s is gone: removed network %s", vpc, network.name)

    def _service_ip(self, vpc: str, cname: str) -> str:
        """A fixed address for a service container, from the top of the VPC's CIDR (moto gives
        instances addresses from the bottom of each subnet)."""
        key = (vpc, cname)
        if key not in self.service_ips:
            taken = set(self.service_ips.values()) | set(self.instance_ips.values())
            net = ipaddress.ip_network(self.networks[vpc].cidr)
            candidate = net.broadcast_address - 1
            while str(candidate) in taken:
                candidate -= 1
            self.service_ips[key] = str(candidate)
        return self.service_ips[key]

    @staticmethod
    def _service_mac(ip: str) -> str:
        """A fixed MAC per service address, as an ENI keeps its MAC: a service restarted at the same
        address must not leave the hosts' ARP caches pointing at a MAC that no longer exists
        (they would wait about 8 s in DELAY/PROBE before they reach it again)."""
        return "0a:58:" + ":".join(f"{int(octet):02x}" for octet in ip.split("."))

    # --- instances ---------------------------------------------------------------------------------
    def _create_instance(self, inst: Instance) -> None:
        network = self.networks[inst.vpc_id]
        cname = f"{self.lab}-{inst.id}"
        podman.podman(
            "run",
            "-d",
            "--name",
            cname,
            "--hostname",
            "ip-" + inst.ip.replace(".", "-"),
            "--label",
            f"{LABEL}={self.lab}",
            "--label",
            f"{ROLE}=instance",
            "--label",
            f"{LABEL}.instance-id={inst.id}",
            "--label",
            f"{LABEL}.vpc={inst.vpc_id}",
            "--systemd=always",
            # A busy first boot: the image's ec2-fleet-busy-boot unit reads it from PID 1's environment.
            "--env",
            f"EC2_FLEET_LAB_BUSY_BOOT_SECONDS={self.config.busy_boot_seconds:g}",
            "--network",
            network.name,
            "--ip",
            inst.ip,
            self.config.host_image,
            "/lib/systemd/systemd",
        )
        public_key = self._public_key(inst.key_name)
        if public_key:  # as cloud-init does with the key pair
            script = (
                "install -d -m 0700 -o ubuntu -g ubuntu /home/ubuntu/.ssh && "
                "cat > /home/ubuntu/.ssh/authorized_keys && "
                "chown ubuntu:ubuntu /home/ubuntu/.ssh/authorized_keys && chmod 0600 /home/ubuntu/.ssh/authorized_keys"
            )
            podman.podman("exec", "-i", cname, "sh", "-c", script, stdin=public_key.strip() + "\n")
        log.info("Instance %s runs as %s at %s (key pair %s)", inst.id, cname, inst.ip, inst.key_name or "none")

    def _public_key(self, key_name: str | None) -> str | None:
        if not key_name:
            return None
        pair = moto_lab.backend("ec2", self.config.region).key_pairs.get(key_name)
        return pair.public_key if pair is not None else None

    # --- Redis -------------------------------------------------------------------------------------
    def _ensure_redis(self, group: CacheGroup, existing: podman.Container | None) -> None:
        assert group.vpc_id is not None
        cname = f"{self.lab}-redis-{group.id}"
        generation = self.faults.redis_generation
        # A failover (labctl fault redis-failover) puts the new primary at a new address.
        ip = self._service_ip(group.vpc_id, cname if not generation else f"{cname}#{generation}")
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
        self.redis[group.id] = {
            "endpoint": f"{'rediss' if group.tls else 'redis'}://{group.primary}:{group.port}",
            "ip": ip,
            "port": group.port,
            "container": cname,
            "tls": group.tls,
            "auth": bool(group.token),
            "generation": generation,
        }
        if self.faults.redis_stopped:  # labctl fault redis-stop: stopped, and left stopped
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
            f"{LABEL}={self.lab}",
            "--label",
            f"{ROLE}=redis",
            "--label",
            f"{LABEL}.group={group.id}",
            "--label",
            f"{LABEL}.vpc={group.vpc_id}",
            "--label",
            f"{LABEL}.fingerprint={fingerprint}",
            "--network",
            self.networks[group.vpc_id].name,
            "--ip",
            ip,
            "--mac-address",
            self._service_mac(ip),
            *aliases,
            "-v",
            f"{directory}:/lab:ro",
            self.config.services_image,
            "redis-server",
            "/lab/redis.conf",
        )
        log.info("Redis for %s at %s (%s, TLS %s, AUTH %s)", group.id, group.primary, ip, group.tls, bool(group.token))

    # --- database ----------------------------------------------------------------------------------
    def _ensure_db(self) -> None:
        cname = f"{self.lab}-db"
        c = podman.containers(self.lab).get(cname)
        if self.faults.db_stopped:  # labctl fault db-stop: stopped (data kept), and left stopped
            if c is not None and c.state == "running":
                self._stop_db(cname)
            return
        if c is not None and c.state != "running":
            # A stopped database keeps its data: start it again; a fresh one only if that fails.
            podman.podman("start", cname, check=False)
            c = podman.containers(self.lab).get(cname)
            if c is not None and c.state == "running":
                log.info("Database %s started again", cname)
        if c is not None and c.state != "running":
            podman.remove_container(cname)
            self.db_networks.clear()
            c = None
        for vpc, network in sorted(self.networks.items()):
            if vpc in self.db_networks:
                continue
            ip = self._service_ip(vpc, cname)
            if c is None:
                self._start_db(cname, network.name, ip)
                c = podman.Container(cname, "running", {})
            else:
                podman.podman("network", "connect", "--ip", ip, "--alias", self.config.db_alias, network.name, cname)
            self.db_networks.add(vpc)
            log.info("Database %s on %s at %s (%s)", cname, network.name, ip, self.config.db_alias)

    def _stop_db(self, cname: str) -> None:
        """A clean, fast shutdown (sessions ended, everything committed kept), then the container exits."""
        script = (
            'BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1); '
            'su postgres -s /bin/sh -c "$BIN/pg_ctl -D /var/lib/postgresql/lab -m fast -w -t 20 stop"'
        )
        podman.podman("exec", cname, "sh", "-c", script, check=False, timeout=60)
        podman.podman("stop", "-t", "10", cname, check=False, timeout=60)
        log.info("Fault: database %s stopped", cname)

    def _start_db(self, cname: str, network: str, ip: str) -> None:
        c = self.config
        directory = c.state_dir / "db"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        (directory / "password").write_text(self.db_password)
        (directory / "password").chmod(0o600)
        pw = shlex.quote(self.db_password)
        (directory / "start.sh").write_text(
            f"""#!/bin/sh
# Generated by the ec2-fleet lab: a fresh PostgreSQL cluster with the lab's role and database
# on first start; a restart of the container (labctl fault db-start) keeps the data.
set -eu
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
DATA=/var/lib/postgresql/lab
if [ ! -s "$DATA/PG_VERSION" ]; then
install -d -o postgres -g postgres -m 0700 "$DATA"
install -o postgres -m 0600 /lab/password /tmp/pgpass
su postgres -s /bin/sh -c "$BIN/initdb -D $DATA -U postgres --pwfile=/tmp/pgpass -A scram-sha-256 -E UTF8" >/dev/null
rm -f /tmp/pgpass
echo "host all all 0.0.0.0/0 scram-sha-256" >> "$DATA/pg_hba.conf"
su postgres -s /bin/sh -c "$BIN/pg_ctl -D $DATA -o \\"-c listen_addresses='' -k /tmp\\" -w start" >/dev/null
export PGPASSWORD={pw}
$BIN/psql -h /tmp -U postgres -v ON_ERROR_STOP=1 -q \\
  -c "CREATE ROLE {c.db_user} LOGIN PASSWORD '{self.db_password}'" -c "CREATE DATABASE {c.db_name} OWNER {c.db_user}"
su postgres -s /bin/sh -c "$BIN/pg_ctl -D $DATA -w stop" >/dev/null
fi
exec su postgres -s /bin/sh -c "exec $BIN/postgres -D $DATA -c listen_addresses='*' -k /tmp"
"""
        )
        podman.podman(
            "run",
            "-d",
            "--name",
            cname,
            "--label",
            f"{LABEL}={self.lab}",
            "--label",
            f"{ROLE}=db",
            "--network",
            network,
            "--ip",
            ip,
            "--mac-address",
            self._service_mac(ip),
            "--network-alias",
            c.db_alias,
            "-v",
            f"{directory}:/lab:ro",
            c.services_image,
            "sh",
            "/lab/start.sh",
        )

    # --- teardown ----------------------------------------------------------------------------------
    def teardown(self) -> None:
        for network in self.networks.values():
            if network.imds is not None:
                network.imds.stop()
        self.networks.clear()
        firewall.remove(self.lab)
        podman.sweep(self.lab)
