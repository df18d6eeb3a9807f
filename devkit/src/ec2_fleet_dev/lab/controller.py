"""The lab controller process (`labctl.py run`): moto, the fleet reconcile loop, HAProxy, IMDS, the load
balancer's CloudWatch metrics (metrics.py) and the evaluation of alarms (alarms.py).
On SIGTERM/SIGINT it removes everything it started."""

from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import boto3
import moto

from ec2_fleet_dev.lab import alarms, faults, keys, moto_lab, podman, services_image, state
from ec2_fleet_dev.lab.autoscaling import AutoScaling
from ec2_fleet_dev.lab.balancer import Balancer
from ec2_fleet_dev.lab.config import LabConfig
from ec2_fleet_dev.lab.database import pooler_url as database_pooler_url
from ec2_fleet_dev.lab.edge import Edge
from ec2_fleet_dev.lab.fleet import Fleet
from ec2_fleet_dev.lab.internet import NAME as EXTERNAL_REDIS_NAME
from ec2_fleet_dev.lab.internet import InternetRedis
from ec2_fleet_dev.lab.metrics import Metrics, MetricStore
from ec2_fleet_dev.lab.scaling import Scaling

log = logging.getLogger(__name__)
POOLER_CA_ON_HOSTS = "/usr/local/share/ca-certificates/ec2-fleet-cache-ca.crt"


def clients(config: LabConfig) -> dict[str, Any]:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=config.region
    )
    services = ("ec2", "elasticache", "ssm", "elbv2", "acm", "cloudwatch", "sns")
    return {s: session.client(s, endpoint_url=config.moto_url) for s in services}


def ubuntu_ami() -> str:
    """The newest Ubuntu AMI among those moto ships (the lab's stand-in for Canonical's parameter)."""
    path = Path(moto.__file__).parent / "ec2" / "resources" / "amis.json.gz"
    with gzip.open(path) as f:
        amis = json.load(f)
    ubuntu = sorted((a["name"], a["ami_id"]) for a in amis if a.get("name", "").startswith("ubuntu/images/"))
    return ubuntu[-1][1]


class Controller:
    def __init__(self, config: LabConfig) -> None:
        self.config = config
        self.paths = state.Paths(config.state_dir)
        self.stop_event = threading.Event()
        self.balancer = Balancer(config, self.paths.root / "haproxy" / "lb.pem")
        self.metric_store = MetricStore()
        self.metrics = Metrics(self.metric_store)
        self.fleet: Fleet | None = None
        self.scaling: Scaling | None = None
        self.internet: InternetRedis | None = None
        self.edge: Edge | None = None
        self.threads: list[threading.Thread] = []

    def run(self) -> int:
        c, p = self.config, self.paths
        p.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        state.cleanup(c, keep_logs=True)  # leftovers of a controller that was killed
        p.pid.write_text(f"{os.getpid()}\n")
        signal.signal(signal.SIGTERM, lambda *_: self.stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop_event.set())
        try:
            self._start()
            while not self.stop_event.wait(0.5):
                for t in self.threads:
                    if not t.is_alive():
                        raise RuntimeError(f"thread {t.name} died; see the log")
            return 0
        except Exception:
            log.exception("The lab controller failed")
            return 1
        finally:
            self._shutdown()

    def _start(self) -> None:
        c, p = self.config, self.paths
        started = time.monotonic()
        ssh_key = keys.ssh_key(p.root / "ssh")
        ca = keys.ca(p.root / "tls")
        db_password = keys.password(p.root / "db" / "password")
        moto_lab.start(c.moto_host, c.moto_port)
        aws = clients(c)
        for _ in range(100):
            try:
                aws["ec2"].describe_regions()
                break
            except Exception:
                time.sleep(0.1)
        db_url = f"postgresql://{c.db_user}:{db_password}@{c.db_alias}:5432/{c.db_name}"
        # The database through its pooler (database.py), TLS verified against the lab CA as site.yml
        # installs it on the hosts (playbooks/vars/fleet_app.yml, __fleet_redis_ca_path).
        pooler_url = database_pooler_url(c, db_password, POOLER_CA_ON_HOSTS)
        certificate_arn = self._lb_certificate(aws["acm"], ca)
        parameters = {
            f"{c.ssm_prefix}/ubuntu-ami-id": ("String", ubuntu_ami()),
            f"{c.ssm_prefix}/database_url": ("SecureString", db_url),
            f"{c.ssm_prefix}/database_pooler_url": ("SecureString", pooler_url),
            f"{c.ssm_prefix}/alb-certificate-arn": ("String", certificate_arn),
        }
        for name, (kind, value) in parameters.items():
            aws["ssm"].put_parameter(Name=name, Type=kind, Value=value, Overwrite=True)
        log.info("moto at %s (SSM: %s)", c.moto_url, ", ".join(parameters))
        services_image.ensure(c)
        self.balancer.log_target = self.metrics.start()  # before HAProxy: its first request is counted
        self.balancer.start()
        self.edge = self._start_edge(ca)
        # The internet Redis before the first instance: every instance gets its name in /etc/hosts.
        self.internet = InternetRedis(c, ca)
        external = self.internet.start()
        self.fleet = Fleet(c, aws, ca, db_password)
        self.fleet.extra_hosts[EXTERNAL_REDIS_NAME] = external.ip
        self._loop("fleet", c.reconcile_seconds, self._reconcile)
        self._loop(
            "balancer", c.balancer_seconds, lambda: self.balancer.sync(self.fleet.instance_ips if self.fleet else {})
        )
        elbv2 = moto_lab.backend("elbv2", c.region)
        self._loop("metrics", c.metrics_seconds, lambda: self.metrics.publish(
            aws["cloudwatch"], elbv2, dict(self.balancer.specs), dict(moto_lab.BOOK.health)))
        # Evaluated data is what metrics.py has published: a period counts once it ended a pass ago.
        self._loop("alarms", c.alarm_seconds,
                   lambda: alarms.evaluate_all(aws["cloudwatch"], self.metric_store, lag=c.metrics_seconds + 1,
                                               sns=aws["sns"], region=c.region))
        # Auto Scaling groups' lifecycle, health replacement and capacity (autoscaling.py), every second.
        self._loop("autoscaling", 1.0, AutoScaling(c.region).step)
        # Their instances' CPU and memory to CloudWatch, and target tracking on them (scaling.py).
        self.scaling = Scaling(c, aws["cloudwatch"])
        self._loop("scaling", c.metrics_seconds, self.scaling.step)
        internet = self.internet
        self._loop("internet", c.reconcile_seconds, lambda: internet.ensure(faults.read(c.state_dir).ext_redis_stopped))
        endpoints = {
            "pid": os.getpid(),
            "name": c.name,
            "aws_url": c.moto_url,
            "region": c.region,
            "lb_url": c.lb_url,
            "lb_http_url": c.lb_http_url,
            "edge_url": self.edge.url,
            "lb_ca_file": str(ca[0]),
            "lb_certificate_arn": certificate_arn,
            "registration_delay": c.registration_delay,
            "imds_url": f"http://{c.imds_address}" + ("" if c.imds_port == 80 else f":{c.imds_port}"),
            "redis_ca_file": str(ca[0]),
            "ssh_private_key_file": str(ssh_key),
            "ssh_public_key_file": f"{ssh_key}.pub",
            "ssm_parameters": sorted(parameters),
            "db_alias": c.db_alias,
            # The pooler (PgBouncer, transaction mode): its URL without the password (in SSM, with it).
            "db_pooler_url": pooler_url.replace(f":{db_password}@", "@"),
            "db_pooler_url_ssm_parameter": f"{c.ssm_prefix}/database_pooler_url",
            # A managed Redis outside the VPC (Upstash, Redis Cloud): its URL carries the password.
            "external_redis_url": external.url,
            "external_redis_ca_file": external.ca_file,
            "external_redis_ip": external.ip,
            "log": str(p.log),
        }
        state.write_json(p.endpoints, endpoints)
        shown = {**endpoints, "external_redis_url": external.url.replace(f":{self.internet.password}@", ":***@")}
        log.info("Lab ready in %.1f s: %s", time.monotonic() - started, json.dumps(shown))

    def _start_edge(self, ca: tuple[Path, Path]) -> Edge:
        """The CloudFront edge (edge.py) on EC2_FLEET_LAB_EDGE_PORT, its certificate from the lab CA; on a port
        taken (another lab), a free one: `edge_url` says which."""
        c = self.config
        cert, key = keys.server_cert(ca[0], ca[1], self.paths.root / "tls" / "edge", ["localhost"], ["127.0.0.1"])
        edge = Edge(c.lb_host, c.edge_port, cert, key, environment=c.environment)
        try:
            edge.start()
        except OSError as exc:
            log.warning("Edge port %d: %s; taking a free port", c.edge_port, exc)
            edge = Edge(c.lb_host, 0, cert, key, environment=c.environment)
            edge.start()
        return edge

    def _lb_certificate(self, acm: Any, ca: tuple[Path, Path]) -> str:
        """The load balancer's certificate, signed by the lab CA for 127.0.0.1, localhost and any ALB DNS
        name of the region; written for HAProxy and imported into ACM (its ARN is the HTTPS listener's)."""
        c = self.config
        names = ["localhost", f"*.{c.region}.elb.amazonaws.com"]
        ips = sorted({"127.0.0.1", c.lb_host})
        cert, key = keys.server_cert(ca[0], ca[1], self.paths.root / "tls" / "lb", names, ips)
        pem = self.paths.root / "haproxy" / "lb.pem"
        pem.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        pem.write_text(cert.read_text() + key.read_text())
        pem.chmod(0o600)
        imported = acm.import_certificate(
            Certificate=cert.read_bytes(),
            PrivateKey=key.read_bytes(),
            CertificateChain=ca[0].read_bytes(),
            Tags=[{"Key": "Project", "Value": c.project}, {"Key": "Environment", "Value": c.environment}],
        )
        return imported["CertificateArn"]

    def _loop(self, name: str, period: float, step: Any) -> None:
        def body() -> None:
            failures = 0
            while not self.stop_event.is_set():
                try:
                    step()
                    failures = 0
                except Exception:
                    failures += 1
                    if failures in (1, 10) or failures % 100 == 0:
                        log.exception("%s pass failed (%d in a row)", name, failures)
                self.stop_event.wait(period)

        thread = threading.Thread(target=body, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _reconcile(self) -> None:
        assert self.fleet is not None
        self.fleet.reconcile()
        state.write_json(self.paths.status, self._status())

    def _status(self) -> dict[str, Any]:
        assert self.fleet is not None
        elbv2 = moto_lab.backend("elbv2", self.config.region)
        health: dict[str, list[str]] = {}
        for arn, tg in list(elbv2.target_groups.items()):
            for h in elbv2.describe_target_health(arn, []):
                health.setdefault(h.instance_id, []).append(f"{tg.name}:{h.status}")
        containers = podman.containers(self.config.name)
        instances = []
        bastions = [
            {"id": iid, "ip": ip, "container": getattr(containers.get(f"{self.config.name}-{iid}"), "state", "absent")}
            for iid, ip in sorted(self.fleet.bastion_ips.items())
        ]
        for iid, ip in sorted(self.fleet.instance_ips.items()):
            if iid in self.fleet.bastion_ips:  # not an app host: listed on its own line
                continue
            c = containers.get(f"{self.config.name}-{iid}")
            instances.append(
                {"id": iid, "ip": ip, "container": c.state if c else "absent", "health": health.pop(iid, [])}
            )
        for iid, states in sorted(health.items()):  # registered but not running in the lab
            instances.append({"id": iid, "ip": "-", "container": "absent", "health": states})
        redis = []
        for gid, info in sorted(self.fleet.redis.items()):
            c = containers.get(info["container"])
            redis.append({"group": gid, **info, "state": c.state if c else "absent"})
        db_name = f"{self.config.name}-db"
        db = containers.get(db_name)
        db_ips = sorted(ip for (_, name), ip in self.fleet.service_ips.items() if name == db_name)
        return {
            "lb_url": self.config.lb_url,
            "aws_url": self.config.moto_url,
            "instances": instances,
            "bastions": bastions,
            "redis": redis,
            "db": {"alias": self.config.db_alias, "state": db.state if db else "absent", "ips": db_ips},
            "pooler": self._pooler_status(containers),
            "external_redis": dict(self.internet.status) if self.internet else {},
            "images": [{"ami": ami, "image": image, "seconds": self.fleet.images.seconds.get(ami)}
                       for ami, image in sorted(self.fleet.images.committed.items())],
            "faults": asdict(self.fleet.faults),
            # Target tracking's decisions (scaling.py), the newest last.
            "scaling": list(self.scaling.decisions[-20:]) if self.scaling else [],
            "errors": dict(self.fleet.errors),
            "updated": time.time(),
        }

    def _pooler_status(self, containers: dict[str, podman.Container]) -> dict[str, Any]:
        assert self.fleet is not None
        name = self.fleet.database.pooler.cname
        pooler = containers.get(name)
        ips = sorted(ip for (_, cname), ip in self.fleet.service_ips.items() if cname == name)
        return {"alias": self.config.pooler_alias, "port": self.config.pooler_port,
                "state": pooler.state if pooler else "absent", "ips": ips}

    def _shutdown(self) -> None:
        log.info("Stopping the lab: containers, networks, IMDS, HAProxy")
        self.stop_event.set()
        for t in self.threads:
            t.join(15)
        try:
            if self.fleet:
                self.fleet.teardown()
        finally:
            self.balancer.stop()
            self.metrics.stop()
            if self.edge:
                self.edge.stop()
            if self.internet:
                self.internet.stop()
            state.cleanup(self.config, keep_logs=True)
            log.info("Lab stopped")
