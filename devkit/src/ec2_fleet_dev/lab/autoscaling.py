"""Auto Scaling groups as AWS runs them, where moto does not (docs/auto-scaling.md lists what moto 5.2.5 does).

moto stores a group and launches its desired instances, all InService and registered with its target groups at
once, from the template's image only, and terminates instances on scale-in at once. The lab's patches and its
`AutoScaling.step` pass (every second, in the lab's process, beside moto) do what AWS does instead:

- Launch: an instance gets the whole launch template version the group runs (image, type, user data, instance
  profile, metadata options, security groups, key pair), in the group's zone with the fewest of its instances,
  in the group's subnet there.
- Launch lifecycle hooks: the instance waits in Pending:Wait until each hook is completed
  (CompleteLifecycleAction, by instance id or token; RecordLifecycleActionHeartbeat restarts its timeout) or
  times out into its default result. CONTINUE: InService. ABANDON: terminated, and a new one launched.
- Only InService instances are registered with the group's target groups; the load balancer's health checks
  (the lab's target health) then decide when they get traffic.
- Scale-in (a lower desired capacity, or TerminateInstanceInAutoScalingGroup): the instance is deregistered
  first and drains for the target groups' deregistration delay (Terminating), then waits in Terminating:Wait
  for any terminate hook, then is terminated. The default termination policy picks it: the zone with the
  most instances, then an instance of an older template version, then the newest.
- Health: with ELB health checks, an InService instance that a target group sees unhealthy after the group's
  grace period is marked Unhealthy and replaced (terminated through the same draining, a new one launched); an
  instance that is no longer running is replaced too. Deleting the group terminates its instances at once.
- Capacity: the group launches until its live instances (Pending*, InService) match the desired capacity.

Instance refresh: refresh.py (moved on by the same pass); target tracking and the instances' metrics: scaling.py.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from moto.autoscaling.exceptions import AutoscalingClientError
from moto.autoscaling.models import ASG_NAME_TAG, AutoScalingBackend, FakeAutoScalingGroup, InstanceState
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult
from moto.ec2.utils import parse_user_data

from ec2_fleet_dev.lab import moto_lab

log = logging.getLogger(__name__)

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
LIVE = ("Pending", "Pending:Wait", "Pending:Proceed", "InService")
# moto's request threads and the lab's pass change the same groups.
LOCK = threading.RLock()


def clock() -> float:
    """Now, for every wait here (a test moves it)."""
    return time.monotonic()


class Wait:
    """The lifecycle hooks an instance waits on: hook name -> deadline (monotonic)."""

    def __init__(self, hooks: list[Any]) -> None:
        now = clock()
        self.hooks = {h.name: h for h in hooks}
        self.deadlines = {h.name: now + float(h.heartbeat_timeout) for h in hooks}
        self.token = str(uuid.uuid4())
        self.abandoned = False

    def complete(self, hook: str, result: str) -> None:
        self.deadlines.pop(hook, None)
        if result.upper() == "ABANDON":
            self.abandoned = True

    def expire(self, now: float) -> None:
        for name, deadline in list(self.deadlines.items()):
            if now >= deadline:
                log.info("Lifecycle hook %s timed out: %s", name, self.hooks[name].default_result)
                self.complete(name, self.hooks[name].default_result)

    @property
    def done(self) -> bool:
        return self.abandoned or not self.deadlines


def _lab(state: InstanceState) -> dict[str, Any]:
    """What the lab keeps of an instance beside moto's state."""
    if not hasattr(state, "lab"):
        state.lab = {"since": clock(), "version": None, "wait": None, "in_service": None, "cause": ""}
    return state.lab  # type: ignore[no-any-return]


lab_of = _lab  # for scaling.py and refresh.py: when each instance went in service, its version


def _hooks(group: FakeAutoScalingGroup, transition: str) -> list[Any]:
    hooks = group.autoscaling_backend.lifecycle_hooks.values()
    return [h for h in hooks if h.auto_scaling_group_name == group.name and h.lifecycle_transition == transition]


def _live(group: FakeAutoScalingGroup) -> list[InstanceState]:
    return [s for s in group.instance_states if s.lifecycle_state in LIVE]


def _set_state(state: InstanceState, lifecycle: str) -> None:
    if state.lifecycle_state != lifecycle:
        log.info("%s %s: %s -> %s", state.auto_scaling_group_name, state.instance.id, state.lifecycle_state, lifecycle)
    state.lifecycle_state = lifecycle
    _lab(state)["since"] = clock()


# --- launch ----------------------------------------------------------------------------------------------
def _zones(group: FakeAutoScalingGroup) -> list[tuple[str, str | None]]:
    """(zone, subnet) the group launches in: its subnets', else its zones."""
    ec2 = group.autoscaling_backend.ec2_backend
    subnets = [s for s in (group.vpc_zone_identifier or "").split(",") if s]
    if subnets:
        return [(ec2.get_subnet(s).availability_zone, s) for s in subnets]
    return [(z, None) for z in group.availability_zones]


def _placement(group: FakeAutoScalingGroup) -> tuple[str, str | None]:
    """The zone with the fewest of the group's live instances (AWS balances zones), first listed on a tie."""
    live = _live(group)
    return min(_zones(group), key=lambda place: sum(1 for s in live if s.availability_zone == place[0]))


def _launch(group: FakeAutoScalingGroup) -> None:
    template = group.ec2_launch_template
    if template is None:  # a launch configuration: moto's own launch
        group.replace_autoscaling_group_instances(1, group.get_propagated_tags())
        return
    version = template.get_version(group.launch_template_version)
    data = version.data
    ec2 = group.autoscaling_backend.ec2_backend
    zone, subnet = _placement(group)
    tags = group.get_propagated_tags()
    tags[ASG_NAME_TAG] = group.name
    tags.update(version.instance_tags)
    user_data = data.get("UserData")
    if isinstance(user_data, str):  # moto parses it only for a template's first version
        user_data = parse_user_data(user_data)
    reservation = ec2.run_instances(
        data.get("ImageId", ""),
        1,
        user_data,
        data.get("SecurityGroups", []),
        instance_type=data.get("InstanceType") or "t3.micro",
        is_instance_type_default=False,
        tags={"instance": tags},
        placement=zone,
        subnet_id=subnet,
        key_name=data.get("KeyName"),
        security_group_ids=data.get("SecurityGroupIds", []),
        metadata_options=data.get("MetadataOptions") or {},
        launch_template={"LaunchTemplateId": template.id, "Version": str(version.number)},
    )
    instance = reservation.instances[0]
    profile = data.get("IamInstanceProfile") or {}
    if profile.get("Arn") or profile.get("Name"):
        ec2.associate_iam_instance_profile(instance.id, iam_instance_profile_name=profile.get("Name"),
                                           iam_instance_profile_arn=profile.get("Arn"))  # fmt: skip
    instance.autoscaling_group = group
    state = InstanceState(instance, protected_from_scale_in=group.new_instances_protected_from_scale_in)
    lab = _lab(state)
    lab["version"] = version.number
    hooks = _hooks(group, LAUNCHING)
    state.lifecycle_state = "Pending:Wait" if hooks else "Pending"
    lab["wait"] = Wait(hooks) if hooks else None
    group.instance_states.append(state)
    log.info("%s launched %s in %s from %s version %s (%s)", group.name, instance.id, zone, template.name,
             version.number, state.lifecycle_state)  # fmt: skip


# --- scale-in and termination ------------------------------------------------------------------------------
def _scale_in_order(group: FakeAutoScalingGroup, live: list[InstanceState]) -> list[InstanceState]:
    """AWS's default termination policy: unprotected instances of the zone with the most, then of an older
    template version, then the newest."""
    unprotected = [s for s in live if not s.protected_from_scale_in]
    chosen: list[InstanceState] = []
    current = group.ec2_launch_template.get_version(group.launch_template_version).number \
        if group.ec2_launch_template else None  # fmt: skip
    while unprotected:
        counts: dict[str, int] = {}
        for s in [s for s in live if s not in chosen]:
            counts[s.availability_zone] = counts.get(s.availability_zone, 0) + 1
        pick = max(unprotected, key=lambda s: (counts.get(s.availability_zone, 0), _lab(s)["version"] != current,
                                               _lab(s)["since"]))  # fmt: skip
        chosen.append(pick)
        unprotected.remove(pick)
    return chosen


def _start_terminating(group: FakeAutoScalingGroup, state: InstanceState, cause: str) -> None:
    """Out of the target groups first: it drains for their deregistration delay (Terminating)."""
    _lab(state)["cause"] = cause
    _lab(state)["wait"] = None
    _set_state(state, "Terminating")
    elbv2 = group.autoscaling_backend.elbv2_backend
    for arn in group.target_group_arns:
        tg = elbv2.target_groups.get(arn)
        if tg is not None and state.instance.id in tg.targets:
            elbv2.deregister_targets(arn, [{"Id": state.instance.id, "Port": tg.targets[state.instance.id]["Port"]}])
    log.info("%s terminating %s: %s", group.name, state.instance.id, cause)


def _finish(group: FakeAutoScalingGroup, state: InstanceState) -> None:
    _set_state(state, "Terminating:Proceed")
    group.autoscaling_backend.ec2_backend.terminate_instances([state.instance.id])
    group.instance_states = [s for s in group.instance_states if s is not state]
    log.info("%s terminated %s (%s)", group.name, state.instance.id, _lab(state)["cause"])


def _draining(group: FakeAutoScalingGroup, instance_id: str) -> bool:
    return any(key[1] == instance_id for arn in group.target_group_arns for key in moto_lab.BOOK.draining_of(arn))


def target_states(group: FakeAutoScalingGroup, state: InstanceState) -> dict[str, str | None]:
    """The instance's state in each of the group's target groups (name -> state as the load balancer's checks
    decided it; None: registered, not checked yet), for those it is registered in."""
    elbv2 = group.autoscaling_backend.elbv2_backend
    found: dict[str, str | None] = {}
    for arn in group.target_group_arns:
        tg = elbv2.target_groups.get(arn)
        registered = tg.targets.get(state.instance.id) if tg is not None else None
        if registered is None:
            continue
        with moto_lab.BOOK.lock:
            health = moto_lab.BOOK.health.get((arn, state.instance.id, int(registered["Port"])))
        found[tg.name] = health.state if health is not None else None
    return found


# for refresh.py
live_of = _live
scale_in_order = _scale_in_order
start_terminating = _start_terminating


# --- the group's capacity and targets ----------------------------------------------------------------------
def _fill(group: FakeAutoScalingGroup) -> None:
    from ec2_fleet_dev.lab import refresh  # it reads this module's

    live = _live(group)
    delta = (group.desired_capacity or 0) + refresh.extra(group) - len(live)
    for _ in range(max(delta, 0)):
        _launch(group)
    if delta < 0:
        for state in _scale_in_order(group, live)[:-delta]:
            _start_terminating(group, state, "scale in")


def _sync_targets(group: FakeAutoScalingGroup) -> None:
    """Every InService instance registered with each of the group's target groups (and only those: the others
    were deregistered on their way out)."""
    backend = group.autoscaling_backend
    if group.name not in backend.autoscaling_groups:
        return
    elbv2 = backend.elbv2_backend
    for arn in group.target_group_arns:
        tg = elbv2.target_groups.get(arn)
        if tg is None:
            continue
        new = [{"Id": s.instance.id, "Port": tg.port} for s in group.instance_states
               if s.lifecycle_state == "InService" and s.instance.id not in tg.targets]  # fmt: skip
        if new:
            elbv2.register_targets(arn, new)


# --- moto, patched --------------------------------------------------------------------------------------
def _set_desired_capacity(self: FakeAutoScalingGroup, new_capacity: int | None) -> None:
    with LOCK:
        self.desired_capacity = self.min_size if new_capacity is None else new_capacity
        _fill(self)
        _sync_targets(self)


def _update_attached_target_groups(self: AutoScalingBackend, group_name: str) -> None:
    with LOCK:
        _sync_targets(self.autoscaling_groups[group_name])


def _terminate_instance(self: AutoScalingBackend, instance_id: str, should_decrement: bool) -> Any:
    """TerminateInstanceInAutoScalingGroup: drained and terminated like a scale-in; replaced unless the desired
    capacity is decremented."""
    from moto.autoscaling.models import TerminateInstanceActivity

    with LOCK:
        for group in self.autoscaling_groups.values():
            for state in group.instance_states:
                if state.instance.id == instance_id and state.lifecycle_state in LIVE:
                    original = group.desired_capacity
                    if should_decrement:
                        group.desired_capacity = max((group.desired_capacity or 0) - 1, group.min_size)
                    _start_terminating(group, state, "TerminateInstanceInAutoScalingGroup")
                    _fill(group)
                    return TerminateInstanceActivity(state.instance, original)
    raise AutoscalingClientError("ValidationError", f"Instance Id not found - No managed instance found for "
                                                    f"instance ID: {instance_id}")  # fmt: skip


def _notify_terminate_instances(self: AutoScalingBackend, instance_ids: list[str]) -> None:
    """TerminateInstances of a group's instance (EC2's, not the group's): the group replaces it on its next pass."""
    with LOCK:
        for group in self.autoscaling_groups.values():
            group.instance_states = [s for s in group.instance_states if s.instance.id not in instance_ids]


_orig_delete_group = AutoScalingBackend.delete_auto_scaling_group


def _delete_auto_scaling_group(self: AutoScalingBackend, group_name: str) -> None:
    """As ForceDelete: the group's instances are terminated with it, without waiting on hooks."""
    with LOCK:
        group = self.autoscaling_groups.get(group_name)
        states = list(group.instance_states) if group is not None else []
        _orig_delete_group(self, group_name)
        ids = [s.instance.id for s in states if s.instance.state != "terminated"]
        if ids:
            self.ec2_backend.terminate_instances(ids)


def _launch_template_of(self: InstanceState) -> dict[str, Any] | None:
    """The template version the instance was launched from (moto: the group's default)."""
    group = self.auto_scaling_group
    if group is None or group.ec2_launch_template is None:
        return None
    version = _lab(self)["version"] or group.ec2_launch_template.default_version_number
    return {"LaunchTemplateId": group.ec2_launch_template.id, "LaunchTemplateName": group.ec2_launch_template.name,
            "Version": str(version)}  # fmt: skip


def _waiting(backend: AutoScalingBackend, group_name: str, hook: str, instance_id: str | None,
             token: str | None) -> Wait:
    group = backend.autoscaling_groups.get(group_name)
    for state in group.instance_states if group is not None else []:
        wait = _lab(state)["wait"]
        if wait is None or hook not in wait.deadlines:
            continue
        if (instance_id and state.instance.id == instance_id) or (token and wait.token == token):
            return wait
    raise AutoscalingClientError("ValidationError", f"No active Lifecycle Action found with instance ID "
                                                    f"{instance_id or token}")  # fmt: skip


def _complete_lifecycle_action(self: AutoScalingResponse) -> ActionResult:
    result = self._get_param("LifecycleActionResult") or ""
    if result.upper() not in ("CONTINUE", "ABANDON"):
        raise AutoscalingClientError("ValidationError", "LifecycleActionResult must be CONTINUE or ABANDON")
    with LOCK:
        wait = _waiting(self.autoscaling_backend, self._get_param("AutoScalingGroupName"),
                        self._get_param("LifecycleHookName"), self._get_param("InstanceId"),
                        self._get_param("LifecycleActionToken"))  # fmt: skip
        wait.complete(self._get_param("LifecycleHookName"), result)
    return ActionResult({})


def _record_lifecycle_action_heartbeat(self: AutoScalingResponse) -> ActionResult:
    hook = self._get_param("LifecycleHookName")
    with LOCK:
        wait = _waiting(self.autoscaling_backend, self._get_param("AutoScalingGroupName"), hook,
                        self._get_param("InstanceId"), self._get_param("LifecycleActionToken"))  # fmt: skip
        wait.deadlines[hook] = clock() + float(wait.hooks[hook].heartbeat_timeout)
    return ActionResult({})


# (class, attribute, the lab's): what patch() sets; a test sets them with monkeypatch, which undoes them.
PATCHES: list[tuple[type, str, Any]] = [
    (FakeAutoScalingGroup, "set_desired_capacity", _set_desired_capacity),
    (AutoScalingBackend, "update_attached_target_groups", _update_attached_target_groups),
    (AutoScalingBackend, "terminate_instance", _terminate_instance),
    (AutoScalingBackend, "notify_terminate_instances", _notify_terminate_instances),
    (AutoScalingBackend, "delete_auto_scaling_group", _delete_auto_scaling_group),
    (InstanceState, "launch_template", property(_launch_template_of)),
    (AutoScalingResponse, "complete_lifecycle_action", _complete_lifecycle_action),
    (AutoScalingResponse, "record_lifecycle_action_heartbeat", _record_lifecycle_action_heartbeat),
]


def patches() -> list[tuple[type, str, Any]]:
    """Every patch of the lab's Auto Scaling: this module's and instance refresh's (refresh.py)."""
    from ec2_fleet_dev.lab import refresh

    return [*PATCHES, *refresh.PATCHES]


def patch() -> None:
    for cls, name, value in patches():
        setattr(cls, name, value)


# --- the lab's pass ---------------------------------------------------------------------------------------
class AutoScaling:
    """Moves every group's instances through their lifecycle, one pass a second (the controller's loop)."""

    def __init__(self, region: str) -> None:
        self.region = region

    def step(self) -> None:
        from ec2_fleet_dev.lab import refresh

        backend = moto_lab.backend("autoscaling", self.region)
        with LOCK:
            now = clock()
            for group in list(backend.autoscaling_groups.values()):
                for state in list(group.instance_states):
                    self._advance(group, state, now)
                refresh.step(group, now)
                _fill(group)
                _sync_targets(group)

    def _advance(self, group: FakeAutoScalingGroup, state: InstanceState, now: float) -> None:
        lab = _lab(state)
        lifecycle = state.lifecycle_state
        running = state.instance.state == "running"
        if state.instance.state == "terminated":
            group.instance_states = [s for s in group.instance_states if s is not state]
            return
        if lifecycle in LIVE and not running:  # stopped, or on its way out of EC2: EC2 health check
            state.health_status = "Unhealthy"
            _start_terminating(group, state, "EC2 health check: not running")
            return
        if lifecycle == "Pending":
            self._in_service(state, now)
        elif lifecycle == "Pending:Wait":
            wait: Wait = lab["wait"]
            wait.expire(now)
            if wait.done and wait.abandoned:
                _start_terminating(group, state, "launch lifecycle hook: ABANDON")
            elif wait.done:
                lab["wait"] = None
                _set_state(state, "Pending:Proceed")
                self._in_service(state, now)
        elif lifecycle == "InService":
            self._health_check(group, state, now)
        elif lifecycle == "Terminating":
            if not _draining(group, state.instance.id):
                hooks = _hooks(group, TERMINATING)
                if hooks:
                    lab["wait"] = Wait(hooks)
                    _set_state(state, "Terminating:Wait")
                else:
                    _finish(group, state)
        elif lifecycle == "Terminating:Wait":
            wait = lab["wait"]
            wait.expire(now)
            if wait.done:
                _finish(group, state)

    @staticmethod
    def _in_service(state: InstanceState, now: float) -> None:
        _set_state(state, "InService")
        _lab(state)["in_service"] = now

    @staticmethod
    def _health_check(group: FakeAutoScalingGroup, state: InstanceState, now: float) -> None:
        """ELB health checks: unhealthy in a target group after the grace period (from InService) replaces it."""
        if group.health_check_type != "ELB":
            return
        since = _lab(state)["in_service"]
        if since is None or now - since < float(group.health_check_grace_period or 0):
            return
        for name, health in target_states(group, state).items():
            if health == "unhealthy":
                state.health_status = "Unhealthy"
                _start_terminating(group, state, f"ELB health check: unhealthy in {name}")
                return
