"""Instance refresh, as Auto Scaling runs it (moto answers StartInstanceRefresh with NotImplemented).

`StartInstanceRefresh` (strategy Rolling) with an optional `DesiredConfiguration` (a launch template version) and
`Preferences`: `MinHealthyPercentage` (90), `MaxHealthyPercentage` (100), `InstanceWarmup` (the group's grace
period), `SkipMatching`, `CheckpointPercentages` with `CheckpointDelay` (3600), `AutoRollback`. Each pass of the
lab's Auto Scaling loop (autoscaling.py) moves a refresh on:

- the instances to replace are the group's at the start (with SkipMatching, those not already on the desired
  version); new ones launch from the desired version (the lab sets the group on it at the start: a scale-out
  during the refresh launches it too, and a rollback sets the group back);
- MaxHealthyPercentage 100: a batch of old instances, as many as MinHealthyPercentage of the desired capacity
  allows (at least one), is drained and terminated, and the group launches its replacements; above 100: that many
  more new instances are launched first, and as many old ones leave once they are ready;
- the next batch starts only when every new instance is ready: InService, healthy in each target group (with
  ELB health checks) and past the warmup;
- at a checkpoint percentage the refresh waits CheckpointDelay seconds (StatusReason says so);
- a new instance that leaves before it was ever ready (its launch hook abandoned it, or it was replaced as
  unhealthy) is a failure; the second fails the refresh. With AutoRollback the group goes back to the version it
  ran before and the instances of the failed version are replaced the same way (RollbackInProgress, then
  RollbackSuccessful); without it the refresh is Failed and the group stays as it is;
- `AlarmSpecification` (up to 10 CloudWatch alarm names): while the refresh is InProgress or Baking, one of them
  in ALARM fails it, rolled back with AutoRollback as above (StatusReason names the alarms);
- `BakeTime`: once every instance is replaced, the refresh stays Baking that many seconds (the alarms still
  watched) before it is Successful;
- `CancelInstanceRefresh` stops it where it is (Cancelled); `RollbackInstanceRefresh` rolls an InProgress one back.

`DescribeInstanceRefreshes` shows Status, StatusReason, PercentageComplete and InstancesToUpdate, newest first.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from moto.autoscaling.exceptions import AutoscalingClientError
from moto.autoscaling.models import FakeAutoScalingGroup, InstanceState
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult

from ec2_fleet_dev.lab import autoscaling, moto_lab

log = logging.getLogger(__name__)

ACTIVE = ("Pending", "InProgress", "Baking", "Cancelling", "RollbackInProgress")
MAX_ALARMS = 10
FAILURES_TO_FAIL = 2


@dataclass
class Refresh:
    id: str
    group: str
    version: int  # the launch template version the instances are brought to
    previous: str  # the group's version before (what a rollback sets back)
    preferences: dict[str, Any]
    desired_configuration: dict[str, Any]
    to_replace: set[str] = field(default_factory=set)
    total: int = 0
    status: str = "Pending"
    reason: str = ""
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    ended: datetime | None = None
    fresh: set[str] = field(default_factory=set)  # launched by the refresh, not yet ready
    ready: set[str] = field(default_factory=set)
    failures: int = 0
    launched_first: int = 0  # MaxHealthyPercentage above 100: new instances launched before old ones leave
    ready_since_launch: int = 0  # of those, ready so far
    checkpoints_done: set[int] = field(default_factory=set)
    waiting_until: float = 0.0
    baking_until: float = 0.0
    cause: str = ""  # why it rolls back (the StatusReason it ends with)

    @property
    def percentage(self) -> int:
        if not self.total:
            return 100 if self.status in ("Successful", "RollbackSuccessful") else 0
        return int(100 * (self.total - len(self.to_replace)) / self.total)

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "InstanceRefreshId": self.id, "AutoScalingGroupName": self.group, "Status": self.status,
            "StatusReason": self.reason, "StartTime": self.started, "PercentageComplete": self.percentage,
            "InstancesToUpdate": len(self.to_replace), "Preferences": self.preferences,
        }  # fmt: skip
        if self.ended is not None:
            described["EndTime"] = self.ended
        if self.desired_configuration:
            described["DesiredConfiguration"] = self.desired_configuration
        return described


REFRESHES: dict[str, list[Refresh]] = {}  # group -> its refreshes, newest last


def active(group: str) -> Refresh | None:
    return next((r for r in reversed(REFRESHES.get(group, [])) if r.status in ACTIVE), None)


def extra(group: FakeAutoScalingGroup) -> int:
    """Instances above the desired capacity that a refresh launched first (autoscaling._fill keeps them)."""
    refresh = active(group.name)
    return refresh.launched_first if refresh is not None else 0


def _version(group: FakeAutoScalingGroup, spec: str) -> int:
    return int(group.ec2_launch_template.get_version(spec).number)


def _flag(value: Any) -> bool:
    """A boolean preference, as the query protocol may hand it over ("true"/"false") or as a bool."""
    return str(value).lower() == "true"


def _set_version(group: FakeAutoScalingGroup, spec: str) -> None:
    """The version the group launches (and DescribeAutoScalingGroups shows)."""
    group.launch_template_version = spec
    group.provided_launch_template_version = spec


def _preference(refresh: Refresh, key: str, default: Any) -> Any:
    value = refresh.preferences.get(key)
    return default if value is None else value


def _alarms(preferences: dict[str, Any]) -> list[str]:
    """AlarmSpecification.Alarms, as the query protocol may hand it over (a list, {"member": [...]} or one name)."""
    alarms = (preferences.get("AlarmSpecification") or {}).get("Alarms") or []
    if isinstance(alarms, dict):
        alarms = alarms.get("member") or list(alarms.values())
    if isinstance(alarms, str):
        alarms = [alarms]
    return [str(name) for name in alarms]


def _firing(region: str, names: list[str]) -> list[str]:
    """Those of the named alarms in ALARM in CloudWatch (moto's, which the lab's alarms.py evaluates)."""
    alarms = moto_lab.backend("cloudwatch", region).alarms
    return sorted(name for name in names if name in alarms and alarms[name].state_value == "ALARM")


def _ready(group: FakeAutoScalingGroup, state: InstanceState, warmup: float, now: float) -> bool:
    lab = autoscaling.lab_of(state)
    if state.lifecycle_state != "InService" or lab["in_service"] is None or now < lab["in_service"] + warmup:
        return False
    if group.health_check_type != "ELB":
        return True
    states = autoscaling.target_states(group, state)
    return len(states) == len(group.target_group_arns) and all(s == "healthy" for s in states.values())


def _end(refresh: Refresh, status: str, reason: str) -> None:
    refresh.status, refresh.reason, refresh.ended = status, reason, datetime.now(timezone.utc)
    refresh.launched_first = 0
    log.info("Instance refresh %s of %s: %s (%s)", refresh.id, refresh.group, status, reason)


def _roll_back(group: FakeAutoScalingGroup, refresh: Refresh, reason: str) -> None:
    """Back to the version the group ran before: the instances of the failed version are replaced."""
    failed = refresh.version
    _set_version(group, refresh.previous)
    refresh.version = _version(group, refresh.previous)
    refresh.to_replace = {s.instance.id for s in autoscaling.live_of(group)
                          if autoscaling.lab_of(s)["version"] == failed}  # fmt: skip
    refresh.total = len(refresh.to_replace)
    refresh.fresh, refresh.ready, refresh.failures = set(), set(), 0
    refresh.launched_first = refresh.ready_since_launch = 0
    refresh.status, refresh.reason, refresh.cause = "RollbackInProgress", reason, reason
    log.info("Instance refresh %s of %s: rolling back to version %s (%s)", refresh.id, group.name, refresh.version,
             reason)  # fmt: skip


def step(group: FakeAutoScalingGroup, now: float) -> None:
    """Move the group's active refresh on (under autoscaling.LOCK, before its capacity is filled)."""
    refresh = active(group.name)
    if refresh is None:
        return
    if refresh.status == "Pending":
        refresh.status = "InProgress"
    if refresh.status == "Cancelling":
        _end(refresh, "Cancelled", "Cancelled by CancelInstanceRefresh")
        return
    firing = _firing(group.region, _alarms(refresh.preferences)) if refresh.status in ("InProgress", "Baking") else []
    if firing:
        reason = f"Alarm(s) in ALARM state: {', '.join(firing)}"
        if _flag(_preference(refresh, "AutoRollback", False)):
            _roll_back(group, refresh, reason)
        else:
            _end(refresh, "Failed", reason)
        return
    if refresh.status == "Baking":
        if now >= refresh.baking_until:
            _end(refresh, "Successful", "")
        return
    warmup = float(_preference(refresh, "InstanceWarmup", group.health_check_grace_period or 0))
    live = {s.instance.id: s for s in autoscaling.live_of(group)}
    refresh.to_replace &= set(live)  # terminated, or left otherwise
    # New instances: ready, still coming, or gone before they were ready (a failure).
    for instance_id in list(refresh.fresh):
        state = live.get(instance_id)
        if state is None:
            refresh.fresh.discard(instance_id)
            refresh.failures += 1
            log.info("Instance refresh %s: %s left before it was ready (%d failures)", refresh.id, instance_id,
                     refresh.failures)  # fmt: skip
        elif _ready(group, state, warmup, now):
            refresh.fresh.discard(instance_id)
            refresh.ready.add(instance_id)
            refresh.ready_since_launch += 1
    for instance_id, state in live.items():
        if (instance_id not in refresh.to_replace and instance_id not in refresh.ready
                and autoscaling.lab_of(state)["version"] == refresh.version
                and not _ready(group, state, warmup, now)):  # fmt: skip
            refresh.fresh.add(instance_id)
    if refresh.failures >= FAILURES_TO_FAIL:
        reason = (f"{refresh.failures} new instances of launch template version {refresh.version} failed to become "
                  "ready (launch abandoned or unhealthy)")  # fmt: skip
        if refresh.status == "InProgress" and _flag(_preference(refresh, "AutoRollback", False)):
            _roll_back(group, refresh, reason)
        else:
            _end(refresh, "RollbackFailed" if refresh.status == "RollbackInProgress" else "Failed", reason)
        return
    if refresh.fresh:
        refresh.reason = f"Waiting for {len(refresh.fresh)} new instances to be ready"
        return
    if now < refresh.waiting_until:
        return
    if refresh.launched_first:
        if refresh.ready_since_launch < refresh.launched_first:  # one failed: the group launches another
            return
        # The new ones are ready: as many old ones leave.
        batch = autoscaling.scale_in_order(group, [live[i] for i in refresh.to_replace])[:refresh.launched_first]
        for state in batch:
            autoscaling.start_terminating(group, state, f"instance refresh {refresh.id}")
        refresh.to_replace -= {s.instance.id for s in batch}
        refresh.launched_first = refresh.ready_since_launch = 0
        return
    for checkpoint in sorted(int(c) for c in _preference(refresh, "CheckpointPercentages", []) or []):
        passed = refresh.percentage >= checkpoint and checkpoint not in refresh.checkpoints_done
        if refresh.status == "InProgress" and passed:
            refresh.checkpoints_done.add(checkpoint)
            if checkpoint < 100:
                delay = float(_preference(refresh, "CheckpointDelay", 3600))
                refresh.waiting_until = now + delay
                refresh.reason = f"Checkpoint {checkpoint}% reached: waiting {delay:g} s"
                return
    if not refresh.to_replace:
        bake = float(_preference(refresh, "BakeTime", 0))
        if refresh.status == "RollbackInProgress":
            _end(refresh, "RollbackSuccessful", refresh.cause or refresh.reason)
        elif bake > 0:
            refresh.status, refresh.baking_until = "Baking", now + bake
            refresh.reason = f"Baking for {bake:g} s"
        else:
            _end(refresh, "Successful", "")
        return
    desired = group.desired_capacity or 0
    min_healthy = math.ceil(desired * float(_preference(refresh, "MinHealthyPercentage", 90)) / 100)
    max_healthy = math.floor(desired * float(_preference(refresh, "MaxHealthyPercentage", 100)) / 100)
    if max_healthy > desired:
        refresh.launched_first = min(max_healthy - desired, len(refresh.to_replace))
        refresh.ready_since_launch = 0
        refresh.reason = f"Launching {refresh.launched_first} new instances before replacing old ones"
        return
    ready_now = sum(1 for s in live.values() if _ready(group, s, warmup, now))
    batch_size = max(min(ready_now - min_healthy, len(refresh.to_replace)), 1)
    batch = autoscaling.scale_in_order(group, [live[i] for i in refresh.to_replace])[:batch_size]
    for state in batch:
        autoscaling.start_terminating(group, state, f"instance refresh {refresh.id}")
    refresh.to_replace -= {s.instance.id for s in batch}
    refresh.reason = f"Replacing {len(batch)} instances"


# --- moto's API ------------------------------------------------------------------------------------------
def _group(self: AutoScalingResponse) -> FakeAutoScalingGroup:
    name = self._get_param("AutoScalingGroupName")
    group = self.autoscaling_backend.autoscaling_groups.get(name)
    if group is None:
        raise AutoscalingClientError("ValidationError", f"AutoScalingGroup name not found - {name}")
    return group


def _start_instance_refresh(self: AutoScalingResponse) -> ActionResult:
    with autoscaling.LOCK:
        group = _group(self)
        if active(group.name) is not None:
            raise AutoscalingClientError("InstanceRefreshInProgress",
                                         f"An Instance Refresh is already in progress for {group.name}")  # fmt: skip
        if group.ec2_launch_template is None:
            raise AutoscalingClientError("ValidationError", "The lab refreshes groups with a launch template only")
        preferences = self._get_param("Preferences") or {}
        if len(_alarms(preferences)) > MAX_ALARMS:
            raise AutoscalingClientError("ValidationError", f"AlarmSpecification takes at most {MAX_ALARMS} alarms")
        if not 0 <= float(preferences.get("BakeTime") or 0) <= 172800:
            raise AutoscalingClientError("ValidationError", "BakeTime must be 0-172800 seconds")
        desired_configuration = self._get_param("DesiredConfiguration") or {}
        previous = str(group.launch_template_version)
        spec = (desired_configuration.get("LaunchTemplate") or {}).get("Version")
        if spec is not None:
            _set_version(group, str(spec))
        version = _version(group, group.launch_template_version)
        skip = _flag(preferences.get("SkipMatching", False))
        to_replace = {s.instance.id for s in autoscaling.live_of(group)
                      if not (skip and autoscaling.lab_of(s)["version"] == version)}  # fmt: skip
        refresh = Refresh(str(uuid.uuid4()), group.name, version, previous, preferences, desired_configuration,
                          to_replace, len(to_replace))  # fmt: skip
        REFRESHES.setdefault(group.name, []).append(refresh)
        log.info("Instance refresh %s of %s to version %s: %d instances (%s)", refresh.id, group.name, version,
                 len(to_replace), preferences)  # fmt: skip
    return ActionResult({"InstanceRefreshId": refresh.id})


def _describe_instance_refreshes(self: AutoScalingResponse) -> ActionResult:
    with autoscaling.LOCK:
        name = self._get_param("AutoScalingGroupName")
        ids = self._get_param("InstanceRefreshIds") or []
        found = [r.describe() for r in reversed(REFRESHES.get(name, [])) if not ids or r.id in ids]
    return ActionResult({"InstanceRefreshes": found})


def _cancel_instance_refresh(self: AutoScalingResponse) -> ActionResult:
    with autoscaling.LOCK:
        group = _group(self)
        refresh = active(group.name)
        if refresh is None:
            raise AutoscalingClientError(
                "ActiveInstanceRefreshNotFound", f"No in progress or pending Instance Refresh found for {group.name}")
        refresh.status = "Cancelling"
    return ActionResult({"InstanceRefreshId": refresh.id})


def _rollback_instance_refresh(self: AutoScalingResponse) -> ActionResult:
    with autoscaling.LOCK:
        group = _group(self)
        refresh = active(group.name)
        if refresh is None or refresh.status != "InProgress":
            raise AutoscalingClientError("ActiveInstanceRefreshNotFound",
                                         f"No in progress Instance Refresh found for {group.name}")  # fmt: skip
        _roll_back(group, refresh, "Rolled back by RollbackInstanceRefresh")
    return ActionResult({"InstanceRefreshId": refresh.id})


PATCHES: list[tuple[type, str, Any]] = [
    (AutoScalingResponse, "start_instance_refresh", _start_instance_refresh),
    (AutoScalingResponse, "describe_instance_refreshes", _describe_instance_refreshes),
    (AutoScalingResponse, "cancel_instance_refresh", _cancel_instance_refresh),
    (AutoScalingResponse, "rollback_instance_refresh", _rollback_instance_refresh),
]



def patch_describe() -> None:
    """DescribeInstanceRefreshes only, for tests/aws's moto, where nothing starts a refresh: a group never refreshed
    answers an empty list, as on AWS (moto answers NotImplemented)."""
    AutoScalingResponse.describe_instance_refreshes = _describe_instance_refreshes
