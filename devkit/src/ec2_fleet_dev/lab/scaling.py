"""CPU and memory of the Auto Scaling groups' instances, published as AWS does, and target tracking evaluated on
them as Auto Scaling does (moto stores the policies and evaluates none: docs/auto-scaling.md).

Resources. A group's instance runs with its instance type's vCPUs and memory, scaled to one build machine:
each vCPU is `cores_per_vcpu` of a host core (a CPU quota) and each GiB `mib_per_gib` MiB (a memory limit), so
a t3.small (2 vCPUs, 2 GiB) gets 0.1 of a core and 1 GiB by default (a request to the app's /version costs about
1 % of it: measured in tests/fleet/test_51_asg_scaling.py, which prints it). Utilization then means what it means on
EC2: load through the load balancer drives it to 100 %.

Metrics, every pass (`Scaling.step`, every `metrics_seconds`), read from each instance's cgroup:
- `AWS/EC2` `CPUUtilization` per `InstanceId` and per `AutoScalingGroupName` (the group's average), as EC2 does;
- `CWAgent` `mem_used_percent` per `AutoScalingGroupName` (and `InstanceId`): used memory (without the page
  cache) over the limit, as the CloudWatch agent on a host does with `aggregation_dimensions`.
They go to moto's CloudWatch, so `get-metric-statistics` shows them.

Target tracking, per group, on the averages of its InService instances past their warmup (the policy's
EstimatedInstanceWarmup): AWS makes two alarms per policy, high (3 datapoints of 1 minute above the target) and
low (15 datapoints below 90 % of it). The lab evaluates the same counts on `scaling_period_seconds` periods (10 s
by default instead of 60: a lab minute; say so where a figure depends on it). High: the desired capacity becomes
ceil(warm x value / target) where warm is the number of instances the period's average is of, when that is more than the
instances running (launching and warming ones included: a scale-out is not repeated while its instances warm up),
at most max. Low, only when every policy of the group is low and no instance is launching or warming up: the
largest of the policies' ceil(warm x value / target), at least min (a policy with DisableScaleIn never scales in).
"""

from __future__ import annotations

import logging
import math
import subprocess
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ec2_fleet_dev.lab import autoscaling, moto_lab
from ec2_fleet_dev.lab.config import LabConfig

log = logging.getLogger(__name__)

# Instance type -> (vCPUs, GiB), EC2's.
INSTANCE_TYPES: dict[str, tuple[int, float]] = {
    "t3.nano": (2, 0.5), "t3.micro": (2, 1), "t3.small": (2, 2), "t3.medium": (2, 4), "t3.large": (2, 8),
    "t3a.small": (2, 2), "t3a.medium": (2, 4), "m5.large": (2, 8), "m6i.large": (2, 8), "m7g.large": (2, 8),
    "c5.large": (2, 4), "c6i.large": (2, 4), "c7g.large": (2, 4), "r5.large": (2, 16),
    "m5.xlarge": (4, 16), "c5.xlarge": (4, 8), "c6i.xlarge": (4, 8),
}  # fmt: skip
CPU_METRIC = "ASGAverageCPUUtilization"
HIGH_PERIODS = 3  # AWS's target tracking AlarmHigh: 3 datapoints of a minute above the target
LOW_PERIODS = 15  # AlarmLow: 15 datapoints below 90 % of the target
LOW_FACTOR = 0.9
HISTORY_SECONDS = 900


def clock() -> float:
    """Now, for the samples and periods (a test moves it, with autoscaling.clock)."""
    return time.monotonic()


def resources(config: LabConfig, instance_type: str) -> tuple[float, int]:
    """(host cores, MiB) of a group's instance of this type (unknown types: a t3.small's)."""
    vcpus, gib = INSTANCE_TYPES.get(instance_type, INSTANCE_TYPES["t3.small"])
    return round(vcpus * config.cores_per_vcpu, 3), int(gib * config.mib_per_gib)


class Cgroups:
    """A container's CPU time and used memory from its cgroup (v1, as on the build machines, or v2)."""

    def __init__(self) -> None:
        self.v1 = Path("/sys/fs/cgroup/cpuacct").is_dir()
        self._paths: dict[str, str] = {}

    def _path(self, container: str) -> str | None:
        if container not in self._paths:
            found = subprocess.run(["podman", "inspect", "--format", "{{.State.CgroupPath}}", container],
                                   capture_output=True, text=True, timeout=30)  # fmt: skip
            if found.returncode != 0 or not found.stdout.strip():
                return None
            self._paths[container] = found.stdout.strip()
        return self._paths[container]

    def forget(self, container: str) -> None:
        self._paths.pop(container, None)

    def read(self, container: str) -> tuple[float, int] | None:
        """(CPU seconds used, bytes of memory used without the page cache), or None when it is not running."""
        path = self._path(container)
        if path is None:
            return None
        try:
            if self.v1:
                cpu = int(Path(f"/sys/fs/cgroup/cpuacct{path}/cpuacct.usage").read_text()) / 1e9
                memory = Path(f"/sys/fs/cgroup/memory{path}")
                usage = int((memory / "memory.usage_in_bytes").read_text())
                stat = _stat((memory / "memory.stat").read_text())
                cache = stat.get("total_active_file", 0) + stat.get("total_inactive_file", 0)
            else:
                base = Path(f"/sys/fs/cgroup{path}")
                cpu = _stat((base / "cpu.stat").read_text())["usage_usec"] / 1e6
                usage = int((base / "memory.current").read_text())
                cache = _stat((base / "memory.stat").read_text()).get("file", 0)
        except (OSError, ValueError, KeyError):
            self.forget(container)
            return None
        return cpu, max(usage - cache, 0)


def _stat(text: str) -> dict[str, int]:
    pairs = (line.split() for line in text.splitlines())
    return {p[0]: int(p[1]) for p in pairs if len(p) == 2 and p[1].isdigit()}


@dataclass
class Tracker:
    """One target-tracking policy's consecutive high and low periods."""

    high: int = 0
    low: int = 0
    last_period: int = -1
    values: list[float] = field(default_factory=list)
    warm: int = 0  # how many instances the last value is the average of


class Scaling:
    def __init__(self, config: LabConfig, cloudwatch: Any, cgroups: Cgroups | None = None) -> None:
        self.config = config
        self.cloudwatch = cloudwatch
        self.cgroups = cgroups or Cgroups()
        self._last: dict[str, tuple[float, float]] = {}  # instance -> (monotonic, CPU seconds) of the last read
        # instance -> (monotonic, CPU %, memory %) samples
        self.samples: dict[str, deque[tuple[float, float, float]]] = {}
        self.trackers: dict[tuple[str, str], Tracker] = {}  # (group, policy) -> its periods
        self.decisions: list[dict[str, Any]] = []  # what status and a test read: every scaling decision

    # --- metrics -------------------------------------------------------------------------------------
    def _sample(self, instance_id: str, instance_type: str, now: float) -> tuple[float, float] | None:
        cname = f"{self.config.name}-{instance_id}"
        read = self.cgroups.read(cname)
        if read is None:
            self._last.pop(instance_id, None)
            return None
        cpu_seconds, used = read
        cores, mib = resources(self.config, instance_type)
        last = self._last.get(instance_id)
        self._last[instance_id] = (now, cpu_seconds)
        if last is None or now <= last[0]:
            return None
        cpu = min(100.0, max(0.0, (cpu_seconds - last[1]) / ((now - last[0]) * cores) * 100))
        memory = min(100.0, used / (mib * 1024 * 1024) * 100)
        self.samples.setdefault(instance_id, deque()).append((now, cpu, memory))
        return cpu, memory

    def step(self) -> None:
        backend = moto_lab.backend("autoscaling", self.config.region)
        now = clock()
        with autoscaling.LOCK:
            groups = {g.name: [(s.instance.id, s.instance.instance_type, s.lifecycle_state, autoscaling.lab_of(s))
                               for s in g.instance_states] for g in backend.autoscaling_groups.values()}  # fmt: skip
        datums: list[dict[str, Any]] = []
        stamp = datetime.now(timezone.utc)
        seen = set()
        for group, members in groups.items():
            values = []
            for instance_id, instance_type, lifecycle, _ in members:
                seen.add(instance_id)
                if lifecycle not in autoscaling.LIVE:
                    continue
                sample = self._sample(instance_id, instance_type, now)
                if sample is None:
                    continue
                values.append(sample)
                dims = [{"Name": "InstanceId", "Value": instance_id}]
                group_dim = {"Name": "AutoScalingGroupName", "Value": group}
                datums += [
                    {"MetricName": "CPUUtilization", "Dimensions": dims, "Value": sample[0], "Unit": "Percent",
                     "Timestamp": stamp, "_ns": "AWS/EC2"},
                    {"MetricName": "mem_used_percent", "Dimensions": [*dims, group_dim], "Value": sample[1],
                     "Unit": "Percent", "Timestamp": stamp, "_ns": "CWAgent"},
                ]  # fmt: skip
            if values:
                group_dim = [{"Name": "AutoScalingGroupName", "Value": group}]
                datums += [
                    {"MetricName": "CPUUtilization", "Dimensions": group_dim, "Unit": "Percent", "Timestamp": stamp,
                     "Value": sum(v[0] for v in values) / len(values), "_ns": "AWS/EC2"},
                    {"MetricName": "mem_used_percent", "Dimensions": group_dim, "Unit": "Percent", "Timestamp": stamp,
                     "Value": sum(v[1] for v in values) / len(values), "_ns": "CWAgent"},
                ]  # fmt: skip
        for gone in set(self.samples) - seen:
            self.samples.pop(gone, None)
            self._last.pop(gone, None)
        for series in self.samples.values():
            while series and series[0][0] < now - HISTORY_SECONDS:
                series.popleft()
        self._publish(datums)
        self._track(backend, now)

    def _publish(self, datums: list[dict[str, Any]]) -> None:
        for namespace in ("AWS/EC2", "CWAgent"):
            batch = [{k: v for k, v in d.items() if k != "_ns"} for d in datums if d["_ns"] == namespace]
            for start in range(0, len(batch), 500):
                self.cloudwatch.put_metric_data(Namespace=namespace, MetricData=batch[start:start + 500])

    # --- target tracking ---------------------------------------------------------------------------
    def average(self, group: Any, kind: int, start: float, end: float) -> tuple[float, int] | None:
        """The group's average of `kind` (0 CPU, 1 memory) over [start, end) on its InService instances past
        their warmup at the start, and how many they are; None without one."""
        values, instances = [], 0
        for state in group.instance_states:
            lab = autoscaling.lab_of(state)
            warm = lab["in_service"] is not None and lab["in_service"] + self._warmup(group) <= start
            if state.lifecycle_state != "InService" or not warm:
                continue
            mine = [s[1 + kind] for s in self.samples.get(state.instance.id, ()) if start <= s[0] < end]
            values += mine
            instances += 1 if mine else 0
        return (sum(values) / len(values), instances) if values else None

    @staticmethod
    def _warmup(group: Any) -> float:
        policies = [p for p in group.autoscaling_backend.policies.values()
                    if p.auto_scaling_group_name == group.name and p.estimated_instance_warmup is not None]  # fmt: skip
        return float(max((int(p.estimated_instance_warmup) for p in policies), default=0))

    def _track(self, backend: Any, now: float) -> None:
        period = self.config.scaling_period_seconds
        index = int(now // period) - 1  # the last complete period
        start, end = index * period, (index + 1) * period
        with autoscaling.LOCK:
            for group in list(backend.autoscaling_groups.values()):
                policies = [p for p in backend.policies.values() if p.auto_scaling_group_name == group.name
                            and p.policy_type == "TargetTrackingScaling"
                            and p.target_tracking_configuration]  # fmt: skip
                if policies:
                    self._track_group(group, policies, index, start, end, now)

    def _track_group(self, group: Any, policies: list[Any], index: int, start: float, end: float,
                     now: float) -> None:
        live = [s for s in group.instance_states if s.lifecycle_state in autoscaling.LIVE]
        warming = [s for s in live if s.lifecycle_state != "InService"
                   or (autoscaling.lab_of(s)["in_service"] or now) + self._warmup(group) > now]  # fmt: skip
        capacity = len(live)
        outs, ins, all_low = [], [], True
        for policy in policies:
            config = policy.target_tracking_configuration
            target = float(getattr(config, "TargetValue", 0) or 0)
            kind = self._kind(config)
            if kind is None or target <= 0:
                all_low = False
                continue
            tracker = self.trackers.setdefault((group.name, policy.name), Tracker())
            if index != tracker.last_period:
                tracker.last_period = index
                averaged = self.average(group, kind, start, end)
                if averaged is None:
                    tracker.high = tracker.low = 0
                else:
                    value, tracker.warm = averaged
                    tracker.values = [*tracker.values[-(LOW_PERIODS - 1):], value]
                    tracker.high = tracker.high + 1 if value > target else 0
                    tracker.low = tracker.low + 1 if value < target * LOW_FACTOR else 0
            value = tracker.values[-1] if tracker.values else None
            warm = tracker.warm  # the instances the last period's average is of
            # What the warm instances' load needs at the target; the warming ones count towards it.
            if value is not None and tracker.high >= HIGH_PERIODS and warm:
                outs.append((math.ceil(warm * value / target), policy.name, value, target))
            scale_in = str(getattr(config, "DisableScaleIn", "false")).lower() != "true"
            if value is not None and tracker.low >= LOW_PERIODS and scale_in and warm:
                ins.append((math.ceil(warm * value / target), policy.name, value, target))
            else:
                all_low = False
        desired = group.desired_capacity or 0
        if outs:
            wanted, name, value, target = max(outs)
            wanted = min(wanted, group.max_size)
            if wanted > max(desired, capacity):
                self._set(group, desired, wanted, f"{name}: {value:.1f} above its target {target:g} for "
                                                  f"{HIGH_PERIODS} periods")  # fmt: skip
            return
        if all_low and ins and not warming:
            wanted, name, value, target = max(ins)
            wanted = max(wanted, group.min_size)
            if wanted < desired:
                self._set(group, desired, wanted, f"every policy below 90 % of its target for {LOW_PERIODS} periods "
                                                  f"({name}: {value:.1f}, target {target:g})")  # fmt: skip

    @staticmethod
    def _kind(config: Any) -> int | None:
        predefined = getattr(config, "PredefinedMetricSpecification", None) or {}
        if predefined.get("PredefinedMetricType") == CPU_METRIC:
            return 0
        custom = getattr(config, "CustomizedMetricSpecification", None) or {}
        if custom.get("MetricName") == "mem_used_percent":
            return 1
        if custom.get("MetricName") == "CPUUtilization" and custom.get("Namespace") == "AWS/EC2":
            return 0
        return None

    def _set(self, group: Any, before: int, after: int, cause: str) -> None:
        log.info("%s: target tracking sets the desired capacity %d -> %d (%s)", group.name, before, after, cause)
        self.decisions.append({"group": group.name, "from": before, "to": after, "cause": cause,
                               "at": time.time()})  # fmt: skip
        for (name, _), tracker in self.trackers.items():
            if name == group.name:
                tracker.high = tracker.low = 0
        group.set_desired_capacity(after)
