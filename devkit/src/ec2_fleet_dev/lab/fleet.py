"""Materialise moto's resources as containers, one module per resource: networks.py (a podman network per
VPC, with the IMDS emulator on its bridge), instances.py (a systemd container per running lab instance),
cache.py (a Redis container per ElastiCache replication group) and database.py (one PostgreSQL container
on every lab network). The Fleet reads moto and reconciles them all on every pass."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ec2_fleet_dev.lab import aws_endpoints, faults, firewall, keys, podman
from ec2_fleet_dev.lab.cache import RedisGroups, cache_groups
from ec2_fleet_dev.lab.config import LABEL, LabConfig
from ec2_fleet_dev.lab.cpu import HostsFirst
from ec2_fleet_dev.lab.database import Database
from ec2_fleet_dev.lab.images import Images
from ec2_fleet_dev.lab.instances import ROLE, Instance, create_instance, lab_instances
from ec2_fleet_dev.lab.internet import add_hosts_entry
from ec2_fleet_dev.lab.networks import Network, Networks

log = logging.getLogger(__name__)

__all__ = ["ROLE", "Fleet", "Instance", "Network"]


class Fleet:
    """The lab's containers as moto describes them; errors per step (status shows them) are retried next pass."""

    def __init__(self, config: LabConfig, clients: dict[str, Any], ca: tuple[Path, Path], db_password: str) -> None:
        self.config = config
        self.clients = clients
        self.instance_ips: dict[str, str] = {}  # running lab instance -> private IP
        self.bastion_ips: dict[str, str] = {}  # the running bastions among them
        self.meta_by_ip: dict[str, dict[str, str]] = {}
        self.errors: dict[str, str] = {}
        self.faults = faults.Faults()  # `labctl.py fault`: wanted on purpose
        # AWS's public endpoints for the instances (aws_endpoints.py): a root CA of their own, trusted by
        # every instance from its first boot, and what each instance reaches of them.
        aws_ca = keys.ca(config.state_dir / "tls-aws", "ec2-fleet lab AWS root")
        self.aws_ca = aws_ca[0].read_bytes()
        self.aws_cert = keys.server_cert(*aws_ca, config.state_dir / "tls-aws" / "endpoints",
                                         [f"*.{config.region}.amazonaws.com"], [])
        self.instances: dict[str, Instance] = {}  # running lab instance id -> Instance
        self.net = Networks(config, lambda ip: self.meta_by_ip.get(ip), lambda: self.instance_ips.values(),
                            (self.aws_cert, self.aws_reach))
        self.cache = RedisGroups(config, ca, self.net)
        self.database = Database(config, db_password, self.net)
        self.images = Images(config)  # AMIs made from lab instances: committed containers
        self._warned: dict[str, float] = {}
        self._firewall: firewall.Firewall | None = None
        # Names every new instance gets in /etc/hosts (the internet Redis), as its DNS would answer them.
        self.extra_hosts: dict[str, str] = {}
        self.hosts_first = HostsFirst()  # the hosts before the control side on the cores (cpu.py)

    @property
    def lab(self) -> str:
        return self.config.name

    @property
    def networks(self) -> dict[str, Network]:
        """vpc id -> its network."""
        return self.net.by_vpc

    @property
    def service_ips(self) -> dict[tuple[str, str], str]:
        """(vpc id, container) -> the service container's IP."""
        return self.net.service_ips

    @property
    def redis(self) -> dict[str, dict[str, Any]]:
        """Replication group id -> what status shows of its Redis."""
        return self.cache.status

    def vpc_cidrs(self) -> dict[str, str]:
        return {v["VpcId"]: v["CidrBlock"] for v in self.clients["ec2"].describe_vpcs()["Vpcs"]}

    # --- reconcile ---------------------------------------------------------------------------------
    def reconcile(self) -> None:
        self.faults = faults.read(self.config.state_dir)
        instances = lab_instances(self.config, self.clients["ec2"])
        cidrs = self.vpc_cidrs()
        default_vpc = instances[0].vpc_id if len({i.vpc_id for i in instances}) == 1 else None
        groups = cache_groups(self.config, self.clients["elasticache"], default_vpc, self.errors)
        needed = {i.vpc_id for i in instances} | {g.vpc_id for g in groups if g.vpc_id}
        for vpc in sorted(needed):
            if vpc not in self.networks and vpc in cidrs:
                self._guard(f"network {vpc}", self.net.create, vpc, cidrs[vpc])
        if self.networks:
            self._guard("database", self.database.ensure, self.faults.db_stopped)
        # Before any instance starts: no private instance is ever reachable by SSH from this host.
        if self._firewall is None:
            self._firewall = firewall.Firewall(self.lab)
        self._guard("firewall", self._firewall.apply, [n.cidr for n in self.networks.values()],
                    [i.ip for i in instances if i.role == "bastion"])

        self._guard("images", self.images.reconcile)
        actual = podman.containers(self.lab)
        live = next((name for name, c in actual.items() if c.state == "running"), None)
        if live is not None:
            self._guard("hosts' CPU weight", self.hosts_first.apply, live)
        running = self._reconcile_instances(instances, actual)
        for network in self.networks.values():
            self._guard(f"imds {network.name}", self.net.ensure_imds, network)
        self.publish(list(running.values()), keep=False)
        self.instance_ips = {i.id: i.ip for i in running.values()}
        self.bastion_ips = {i.id: i.ip for i in running.values() if i.role == "bastion"}

        wanted_redis = set()
        for group in groups:
            if group.vpc_id in self.networks:
                cname = f"{self.lab}-redis-{group.id}"
                wanted_redis.add(cname)
                self._guard(f"redis {group.id}", self.cache.ensure, group, actual.get(cname),
                            self.faults.redis_generation, self.faults.redis_stopped)
        for cname, c in actual.items():
            if c.labels.get(ROLE) == "redis" and cname not in wanted_redis:
                log.info("Replication group of %s is gone: removing it", cname)
                podman.remove_container(cname)
                self.redis.pop(c.labels.get(f"{LABEL}.group", ""), None)

        for vpc in [v for v in self.networks if v not in cidrs]:  # the VPC was deleted
            self._guard(f"network {vpc}", self._remove_network, vpc)

    def publish(self, instances: list[Instance], keep: bool) -> None:
        """These instances' metadata (IMDS) and identity (aws_reach), with the ones published before (keep) or
        instead of them."""
        metadata = {i.ip: i.metadata(self.config.region) for i in instances}
        kept = {k: i for k, i in self.instances.items() if i.ip not in metadata} if keep else {}  # an IP reused
        self.instances = {**kept, **{i.id: i for i in instances}}
        self.meta_by_ip = {**(self.meta_by_ip if keep else {}), **metadata}

    def _reconcile_instances(
        self, instances: list[Instance], actual: dict[str, podman.Container]
    ) -> dict[str, Instance]:
        """A running container per running instance (a killed one stays dead); the others' removed."""
        # What an instance asks for at its first boot (IMDS; AWS's endpoints, which check who asks) is known before
        # its container starts, as EC2's metadata is: on a busy machine its user data ran before this pass ended,
        # and IMDS answered 404 for its instance-id (a rehearsal of 976dcf4, test_50's boot check).
        self.publish([i for i in instances if i.vpc_id in self.networks], keep=True)
        running: dict[str, Instance] = {}
        for inst in instances:
            if inst.vpc_id not in self.networks:
                continue
            cname = f"{self.lab}-{inst.id}"
            c = actual.get(cname)
            if inst.id in self.images.busy:  # shut down for its AMI's snapshot: EC2 starts it again
                running[inst.id] = inst
                continue
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
            if self._guard(f"instance {inst.id}", create_instance, self.config, inst, self.networks[inst.vpc_id].name,
                           self.images.image_of(inst.image_id), self.aws_ca):
                running[inst.id] = inst
                for name, ip in self.extra_hosts.items():
                    self._guard(f"instance {inst.id} /etc/hosts", add_hosts_entry, cname, ip, name)
        for cname, c in actual.items():
            if c.labels.get(ROLE) == "instance" and c.labels.get(f"{LABEL}.instance-id") not in running:
                instance_id = c.labels.get(f"{LABEL}.instance-id")
                log.info("Instance %s is no longer running: removing %s", instance_id, cname)
                self._keep_boot_log(instance_id, cname)
                podman.remove_container(cname)
        return running

    def _keep_boot_log(self, instance_id: str | None, cname: str) -> None:
        """Its user data's output (cloud-init-output.log: ec2-fleet-boot's steps), kept in the lab's state directory
        as boot-<id>.log once the instance is gone (EC2 keeps a console output a while), and after the lab is down
        as its other logs are: why a launch was abandoned stays readable after the group replaced the instance."""
        target = self.config.state_dir / f"boot-{instance_id}.log"
        podman.podman("cp", f"{cname}:/var/log/cloud-init-output.log", str(target), check=False)

    def aws_reach(self, ip: str) -> set[str] | None:
        """The AWS services the instance at ip reaches (aws_endpoints.py), or None for no running instance."""
        inst = next((i for i in list(self.instances.values()) if i.ip == ip), None)
        if inst is None:
            return None
        return aws_endpoints.reach_of_subnet(self.clients["ec2"], inst.vpc_id, inst.subnet_id, self.config.region)

    def _remove_network(self, vpc: str) -> None:
        network = self.networks.pop(vpc)
        self.net.remove_members(vpc)
        self.database.leave(vpc, network.name)
        self.net.delete(network)

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

    # --- teardown ----------------------------------------------------------------------------------
    def teardown(self) -> None:
        self.net.stop_imds()
        firewall.remove(self.lab)
        podman.sweep(self.lab)
