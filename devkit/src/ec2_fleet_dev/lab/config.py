"""The lab's settings: read once from the command line and EC2_FLEET_LAB_* environment variables."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ec2_fleet_dev.paths import ROOT

LABEL = "ec2-fleet-lab"  # every container and network carries LABEL=<name>
ACCOUNT_ID = "123456789012"  # moto's default account


@dataclass(frozen=True)
class LabConfig:
    name: str = "ec2fleet-lab"  # prefix of containers/networks and the value of their label
    state_dir: Path = ROOT / ".cache" / "lab"
    moto_host: str = "127.0.0.1"
    moto_port: int = 5000
    lb_host: str = "127.0.0.1"
    lb_port: int = 8080  # the ALB's HTTP listener (port 80 on AWS)
    lb_https_port: int = 8443  # the ALB's HTTPS listener (port 443 on AWS)
    edge_port: int = 9443  # the CloudFront edge (edge.py): HTTPS, the frontend's distribution
    region: str = "us-east-1"
    project: str = "ec2-fleet"  # tag:Project of the lab's instances
    environment: str = "lab"  # tag:Environment of the lab's instances
    host_image: str = "localhost/ec2-fleet-host:bookworm"
    services_image: str = "localhost/ec2-fleet-services:bookworm"
    imds_address: str = "169.254.169.254"
    imds_port: int = 80
    db_alias: str = "db.lab.internal"
    db_name: str = "orders"
    db_user: str = "app"
    # The database's pooler, as Supabase's (Supavisor): PgBouncer in transaction mode with TLS, its own name.
    pooler_alias: str = "pooler.lab.internal"
    pooler_port: int = 6543
    pooler_pool_size: int = 10  # server connections per database and user
    reconcile_seconds: float = 1.0
    balancer_seconds: float = 0.5
    # A busy first boot, as apt-daily and unattended-upgrades make one on a new Ubuntu AMI (the test
    # image's ec2-fleet-busy-boot unit): each new instance holds apt's and dpkg's locks from boot until
    # a package task first tries them, then this many seconds more; 0 = an idle boot.
    busy_boot_seconds: float = 10.0
    # Seconds a newly registered target stays `initial` with no health check and no traffic, as an
    # ALB spreads a registration to its nodes before their first check (tens of seconds on AWS).
    # 10 s: long enough that a wait without a margin fails here as it would on AWS, short enough
    # for the tests' many registrations; `<state dir>/balancer.json` changes it while the lab runs.
    registration_delay: float = 10.0
    # metrics.py publishes the load balancer's metrics to CloudWatch this often; alarms.py evaluates alarms.
    metrics_seconds: float = 5.0
    alarm_seconds: float = 5.0
    # An Auto Scaling group's instance gets its type's vCPUs and memory scaled to this machine (scaling.py): each
    # vCPU is this share of a host core (a CPU quota), each GiB this many MiB (a memory limit).
    cores_per_vcpu: float = 0.05
    mib_per_gib: int = 512
    # One CloudWatch period of target tracking's alarms (60 s on AWS): 3 above the target scale out, 15 below
    # 90 % of it scale in.
    scaling_period_seconds: float = 10.0

    @property
    def moto_url(self) -> str:
        return f"http://{self.moto_host}:{self.moto_port}"

    @property
    def lb_url(self) -> str:
        """Where the fleet serves: the HTTPS listener (certificate from the lab CA)."""
        return f"https://{self.lb_host}:{self.lb_https_port}"

    @property
    def lb_http_url(self) -> str:
        """The HTTP listener: a 301 to HTTPS once the ALB has an HTTPS listener."""
        return f"http://{self.lb_host}:{self.lb_port}"

    @property
    def edge_url(self) -> str:
        """Where the frontend's distribution is served (the lab's CloudFront edge, certificate from the lab CA)."""
        return f"https://{self.lb_host}:{self.edge_port}"

    @property
    def ssm_prefix(self) -> str:
        return f"/{self.project}/{self.environment}"

    def validate(self) -> None:
        problems = []
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}", self.name):
            problems.append(f"EC2_FLEET_LAB_NAME must be 1-31 lower-case letters, digits or '-' (got {self.name!r})")
        for field in ("moto_port", "lb_port", "lb_https_port", "imds_port", "edge_port"):
            value = getattr(self, field)
            if not 1 <= value <= 65535:
                problems.append(f"EC2_FLEET_LAB_{field.upper()} must be 1-65535 (got {value})")
        if len({self.moto_port, self.lb_port, self.lb_https_port, self.edge_port}) < 4:
            problems.append(
                "EC2_FLEET_LAB_MOTO_PORT, EC2_FLEET_LAB_LB_PORT, EC2_FLEET_LAB_LB_HTTPS_PORT and "
                "EC2_FLEET_LAB_EDGE_PORT must differ"
            )
        if not 0 <= self.busy_boot_seconds <= 3600:
            problems.append(f"EC2_FLEET_LAB_BUSY_BOOT_SECONDS must be 0-3600 seconds (got {self.busy_boot_seconds})")
        if not 0 <= self.registration_delay <= 600:
            problems.append(f"EC2_FLEET_LAB_REGISTRATION_DELAY must be 0-600 seconds (got {self.registration_delay})")
        for field in ("metrics_seconds", "alarm_seconds", "scaling_period_seconds"):
            if not 1 <= getattr(self, field) <= 60:
                problems.append(f"EC2_FLEET_LAB_{field.upper()} must be 1-60 seconds (got {getattr(self, field)})")
        if not 0.01 <= self.cores_per_vcpu <= 4:
            problems.append(f"EC2_FLEET_LAB_CORES_PER_VCPU must be 0.01-4 (got {self.cores_per_vcpu})")
        if not 64 <= self.mib_per_gib <= 1024:
            problems.append(f"EC2_FLEET_LAB_MIB_PER_GIB must be 64-1024 (got {self.mib_per_gib})")
        if problems:
            raise ValueError("; ".join(problems))

    def to_env(self) -> dict[str, str]:
        """The settings as EC2_FLEET_LAB_* variables (how `up` hands them to `run`)."""
        return {f"EC2_FLEET_LAB_{k.upper()}": str(v) for k, v in asdict(self).items()}


def load(overrides: dict[str, object] | None = None) -> LabConfig:
    """Defaults, then EC2_FLEET_LAB_* variables, then explicit overrides (command-line options)."""
    values: dict[str, object] = {}
    defaults = LabConfig()
    for key, default in asdict(defaults).items():
        raw = os.environ.get(f"EC2_FLEET_LAB_{key.upper()}")
        if raw is None or raw == "":
            continue
        if isinstance(default, bool):
            values[key] = raw.lower() in ("1", "true", "yes")
        elif isinstance(default, int):
            values[key] = int(raw)
        elif isinstance(default, float):
            values[key] = float(raw)
        elif isinstance(default, Path):
            values[key] = Path(raw)
        else:
            values[key] = raw
    if "host_image" not in values and os.environ.get("EC2_FLEET_TEST_IMAGE"):
        values["host_image"] = os.environ["EC2_FLEET_TEST_IMAGE"]
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if "state_dir" in values:
        values["state_dir"] = Path(values["state_dir"]).resolve()  # type: ignore[arg-type]
    config = LabConfig(**values)  # type: ignore[arg-type]
    config.validate()
    return config
