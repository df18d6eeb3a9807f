# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""Filters of the rolling role: its input checks, the batch plan, the health floor before each batch,
a host's step timings, the run's per-host results, its summary lines and its record in SSM.

The role's tasks only select and format; every rule, plan and message assembled from several facts
is here, with unit tests (tests/unit/test_rolling_*.py).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.ec2_fleet.fleet.plugins.plugin_utils.input_checks import as_int, matches

_PERCENT = re.compile(r"^\s*([0-9]{1,3})\s*%\s*$")
# A release version: what the app role and the releases/ directory accept.
VERSION_RE = r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$"
HOOKS = ("before_drain", "after_deploy", "after_register")
_BOOL_WORDS = {"true", "false", "yes", "no", "1", "0"}


# --- The batch plan -------------------------------------------------------------------------------

def _batch_size(step: Any, total: int) -> int:
    """One step of rolling_batch as a host count: N, "N" or "N%" (of every host, at least 1), as `serial`."""
    if isinstance(step, bool):
        raise AnsibleFilterError(f"rolling_batch: {step!r} is not a count or a percentage")
    if isinstance(step, int):
        if step < 1:
            raise AnsibleFilterError(f"rolling_batch: a count must be 1 or more (got {step})")
        return step
    text = str(step).strip()
    if text.isdigit():
        return _batch_size(int(text), total)
    match = _PERCENT.match(text)
    if not match or not 1 <= int(match.group(1)) <= 100:
        raise AnsibleFilterError(
            f"rolling_batch: {step!r} is not a count (1, 2, ...) or a percentage (1%-100%); "
            'give one of them, or a list for a canary such as [1, "50%", "100%"]'
        )
    return max(1, math.floor(total * int(match.group(1)) / 100))


def rolling_batches(hosts: list[str], spec: Any = 1, zones: Mapping[str, str] | None = None) -> list[list[str]]:
    """Split hosts into batches the way `serial` does: each step in turn, the last one repeated.

    spec: a count, a percentage ("25%") or a list of them (a canary: [1, "50%", "100%"]).
    zones: optional {host: availability zone}: hosts go zone by zone (sorted, stable within a zone)
    and no batch spans two zones.
    """
    hosts = list(hosts)
    steps = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    if not steps:
        raise AnsibleFilterError("rolling_batch: an empty list; give a count, a percentage or a non-empty list")
    sizes = [_batch_size(step, len(hosts)) for step in steps]
    if zones:
        groups: dict[str, list[str]] = {}
        for host in hosts:
            groups.setdefault(str(zones.get(host, "")), []).append(host)
        groups_in_order = [groups[zone] for zone in sorted(groups)]
    else:
        groups_in_order = [hosts]
    batches: list[list[str]] = []
    step = 0
    for group in groups_in_order:
        start = 0
        while start < len(group):
            size = sizes[min(step, len(sizes) - 1)]
            batches.append(group[start:start + size])
            start += size
            step += 1
    return batches


# --- Input checks -----------------------------------------------------------------------------------

def rolling_release_errors(given: Mapping[str, Any]) -> list[str]:
    """What is wrong with the release the playbooks rolling_update.yml and rollback.yml were given with -e.

    given: rolling_action, app_version, rollback_to, app_rollback and app_rollback_to; one that is absent
    or None was not given. Each message names the variable and what is allowed.
    """
    given = {key: value for key, value in given.items() if value is not None}
    action = given.get("rolling_action", "deploy")
    errors = []
    if action == "deploy" and "app_version" not in given:
        errors.append("rolling_update.yml needs -e app_version=V, a release version such as 2.0.0")
    if "app_version" in given and not matches(VERSION_RE, str(given["app_version"])):
        errors.append("app_version must be a release version such as 2.0.0 (letters, digits, . _ -; "
                      f"got {given['app_version']})")
    rollback_to = str(given.get("rollback_to", "") or "")
    if rollback_to and not matches(VERSION_RE, rollback_to):
        errors.append(f"rollback_to must be a release version such as 1.0.0 (got {rollback_to})")
    if "app_rollback" in given or "app_rollback_to" in given:
        errors.append("app_rollback and app_rollback_to are for site.yml; roll back the fleet with "
                      "playbooks/rollback.yml [-e rollback_to=V]")
    return errors


def rolling_hook_paths(hooks: Any, base: str = "") -> dict[str, str]:
    """rolling_hooks with every relative task file made absolute against base (the operator's directory)."""
    if not isinstance(hooks, Mapping):
        return {}
    return {str(name): os.path.join(base, str(path)) if base and not str(path).startswith("/") else str(path)
            for name, path in hooks.items()}


def _settings_error(inputs: Mapping[str, Any]) -> str:
    """The settings' rule as one sentence (the one operators know), or "" when every setting is allowed."""
    percent = inputs.get("rolling_min_healthy_percent")
    bake = inputs.get("rolling_bake_seconds")
    ok = (
        re.fullmatch(r"[0-9]{1,3}", str(percent)) is not None and int(str(percent)) <= 100
        and inputs.get("rolling_on_failure") in ("stop", "rollback_all")
        and inputs.get("rolling_order") in ("inventory", "az")
        and re.fullmatch(r"[0-9]{1,5}", str(bake).strip()) is not None
        and str(inputs.get("rolling_break_lock")).lower() in _BOOL_WORDS
    )
    if ok:
        return ""
    return (
        f"rolling_min_healthy_percent must be 0-100 (got {percent}), rolling_on_failure stop or rollback_all "
        f"(got {inputs.get('rolling_on_failure')}), rolling_order inventory or az (got {inputs.get('rolling_order')}), "
        f"rolling_bake_seconds a number of seconds (got {bake}) and rolling_break_lock true or false "
        f"(got {inputs.get('rolling_break_lock')})."
    )


def rolling_input_errors(inputs: Mapping[str, Any], base: str = "") -> list[str]:
    """What is wrong with the rolling role's inputs: a list of messages, each naming the variable and what
    is allowed; empty when every input is fine.

    inputs: the role's rolling_* variables. base: the directory relative hook files are found in.
    """
    errors = []
    action = inputs.get("rolling_action", "deploy")
    version = str(inputs.get("rolling_version", "") or "")
    if action not in ("deploy", "rollback"):
        errors.append(f"rolling_action must be deploy or rollback (got {action})")
    if action == "deploy" and not version:
        errors.append("rolling_version is required to deploy: a release version such as 2.0.0")
    if version and not matches(VERSION_RE, version):
        errors.append(f"rolling_version must be a release version such as 2.0.0 (letters, digits, . _ -; "
                      f"got {version})")
    settings = _settings_error(inputs)
    if settings:
        errors.append(settings)
    hooks = inputs.get("rolling_hooks", {})
    paths = rolling_hook_paths(hooks, base)
    missing = [path for path in paths.values() if not os.path.isfile(path)]
    if not isinstance(hooks, Mapping) or set(map(str, hooks)) - set(HOOKS) or missing:
        errors.append(
            "rolling_hooks must map before_drain, after_deploy and after_register to task files that exist "
            f"(got {hooks}; missing: {', '.join(missing)})."
        )
    try:
        rolling_batches(["host"], inputs.get("rolling_batch", 1))
    except AnsibleFilterError as error:
        errors.append(str(error))
    if not matches(r"^(/[A-Za-z0-9_.-]+)+$", inputs.get("rolling_ssm_prefix", "")):
        errors.append("rolling_ssm_prefix must be an SSM parameter path such as /ec2-fleet/staging/deploy "
                      f"(got '{inputs.get('rolling_ssm_prefix', '')}')")
    if not str(inputs.get("rolling_audit_dir", "") or ""):
        errors.append("rolling_audit_dir must name a directory on the control node for the runs' records")
    if not matches(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?$", inputs.get("rolling_target_group_name", "")):
        errors.append("rolling_target_group_name must name the target group the hosts serve in "
                      f"(got '{inputs.get('rolling_target_group_name', '')}')")
    errors.extend(rolling_alarm_errors(inputs))
    errors.extend(rolling_canary_errors(inputs))
    if not str(inputs.get("rolling_app_root", "")).startswith("/"):
        errors.append("rolling_app_root must be the absolute directory of the app's releases "
                      f"(got '{inputs.get('rolling_app_root', '')}')")
    errors.extend(rolling_asg_errors(inputs))
    return errors


ASG_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{2,124}$"
AMI_RE = r"^ami-[0-9a-f]{8,17}$"


# An instance refresh watches at most 10 CloudWatch alarms (AlarmSpecification).
REFRESH_ALARMS_MAX = 10


def rolling_asg_errors(inputs: Mapping[str, Any]) -> list[str]:
    """What is wrong with rolling_capacity and the rolling_asg_* settings (an Auto Scaling group's deploy: an
    instance refresh to a new launch template version of the release's image)."""
    capacity = inputs.get("rolling_capacity", "static")
    if capacity not in ("static", "asg"):
        return [f"rolling_capacity must be static (the hosts are updated in place) or asg (the hosts are an Auto "
                f"Scaling group's: an instance refresh replaces them) (got {capacity})"]
    if capacity == "static":
        return []
    errors = []
    if not matches(ASG_NAME_RE, str(inputs.get("rolling_asg_name", "") or "")):
        errors.append("rolling_capacity asg needs rolling_asg_name, the Auto Scaling group of the hosts "
                      f"(got '{inputs.get('rolling_asg_name', '')}')")
    image = str(inputs.get("rolling_asg_image_id", "") or "")
    tags = inputs.get("rolling_asg_image_tags", {})
    if image and not matches(AMI_RE, image):
        errors.append(f"rolling_asg_image_id must be an image id like ami-0123456789abcdef0, or empty to find the "
                      f"release's image by its tags (got '{image}')")
    if not image and not (isinstance(tags, Mapping) and tags):
        errors.append("rolling_capacity asg finds the release's image by rolling_asg_image_tags and its Release "
                      "tag: give the tags bake.yml puts on it, such as {Project: ec2-fleet, App: orders-api} "
                      f"(got {tags!r})")
    low = as_int(inputs.get("rolling_min_healthy_percent", 50))
    high = as_int(inputs.get("rolling_asg_max_healthy_percent", 200))
    if high is None or not 100 <= high <= 200 or (low is not None and high - low > 100):
        errors.append(f"rolling_asg_max_healthy_percent must be 100-200 and at most 100 above "
                      f"rolling_min_healthy_percent (got {inputs.get('rolling_asg_max_healthy_percent')}): the "
                      "group's size during the refresh, in percent of its desired capacity")
    for name in ("rolling_asg_instance_warmup", "rolling_asg_wait_timeout"):
        value = as_int(inputs.get(name, 0))
        if value is None or value < 0:
            errors.append(f"{name} must be a number of seconds, 0 or more (got {inputs.get(name)})")
    alarms = inputs.get("rolling_alarms") or []
    if isinstance(alarms, list) and len(set(map(str, alarms))) > REFRESH_ALARMS_MAX:
        errors.append(f"rolling_alarms names {len(set(map(str, alarms)))} alarms; in rolling_capacity asg the "
                      f"instance refresh watches them itself and takes at most {REFRESH_ALARMS_MAX}: name the "
                      "deploy's gates only")
    if inputs.get("rolling_hooks"):
        errors.append("rolling_hooks run on hosts updated in place; in rolling_capacity asg the refresh launches new "
                      "instances from the image (checks belong to their readiness): set rolling_hooks to {}")
    if inputs.get("rolling_action", "deploy") == "rollback" and not str(inputs.get("rolling_version", "") or ""):
        errors.append("a rollback in rolling_capacity asg needs the release to go back to (rollback_to): the "
                      "group's instances all run one release, whose image the rollback refreshes them to")
    return errors


# CloudWatch: an alarm name is 1-255 characters; one DescribeAlarms call takes at most 100 names.
ALARM_NAME_MAX = 255
ALARMS_MAX = 100


def rolling_alarm_errors(inputs: Mapping[str, Any]) -> list[str]:
    """What is wrong with rolling_alarms and rolling_alarm_poll_seconds (whether the alarms exist is asked
    of CloudWatch by the plan step, tasks/plan.yml)."""
    errors = []
    alarms = inputs.get("rolling_alarms", [])
    if alarms is None:
        alarms = []
    if not isinstance(alarms, (list, tuple)):
        errors.append(f"rolling_alarms must be a list of CloudWatch alarm names, [] for none (got {alarms!r})")
    else:
        bad = [a for a in alarms if not isinstance(a, str) or not 1 <= len(a.strip()) <= ALARM_NAME_MAX]
        if bad:
            errors.append(f"rolling_alarms must be a list of CloudWatch alarm names (strings of 1-{ALARM_NAME_MAX} "
                          f"characters), [] for none (not: {', '.join(repr(a) for a in bad)})")
        if len(set(map(str, alarms))) > ALARMS_MAX:
            errors.append(f"rolling_alarms: at most {ALARMS_MAX} alarms (got {len(set(map(str, alarms)))})")
    poll = inputs.get("rolling_alarm_poll_seconds", 5)
    if isinstance(poll, bool) or re.fullmatch(r"[0-9]{1,4}", str(poll).strip()) is None or int(str(poll)) < 1:
        errors.append(f"rolling_alarm_poll_seconds must be a number of seconds, 1 or more (got {poll})")
    return errors


# --- The weighted canary (rolling_strategy: canary) ----------------------------------------------------

STRATEGIES = ("rolling", "canary")
TARGET_GROUP_RE = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?$"


def _whole(value: Any) -> int | None:
    """A whole number given as a number or as text (-e passes text), else None (booleans are not numbers)."""
    if isinstance(value, bool) or re.fullmatch(r"\s*-?[0-9]{1,6}\s*", str(value)) is None:
        return None
    return int(str(value))


def rolling_canary_count(spec: Any, total: int) -> int:
    """How many hosts rolling_canary_hosts (a count, or a percentage of the fleet rounded up) picks of total."""
    found = _PERCENT.match(str(spec))
    if found:
        return math.ceil(total * int(found.group(1)) / 100)
    count = _whole(spec)
    if count is None:
        raise AnsibleFilterError(f"rolling_canary_hosts must be a count or a percentage such as 10% (got {spec!r})")
    return count


def rolling_canary_errors(inputs: Mapping[str, Any], fleet_size: Any = None) -> list[str]:
    """What is wrong with rolling_strategy and the rolling_canary_* settings.

    The shapes are checked whatever the strategy (a wrong default is found before it is needed); what a canary
    needs from the environment (a load balancer whose listener weights the canary target group, that group)
    only with rolling_strategy canary. fleet_size (the hosts of the run, known once the plan has them): the
    canary must be fewer hosts than the fleet.
    """
    errors = []
    strategy = inputs.get("rolling_strategy", "rolling")
    if strategy not in STRATEGIES:
        errors.append(f"rolling_strategy must be rolling or canary (got {strategy})")
    weights = inputs.get("rolling_canary_weights", [5, 25, 100])
    steps = [_whole(w) for w in weights] if isinstance(weights, (list, tuple)) else None
    if (
        not steps
        or None in steps
        or any(not 1 <= w <= 100 for w in steps)  # type: ignore[operator]
        or any(b <= a for a, b in itertools.pairwise(steps))  # type: ignore[operator]
        or steps[-1] != 100
    ):
        errors.append(
            "rolling_canary_weights must be a list of percentages of the requests sent to the canary, each 1-100, "
            f"strictly increasing, the last one 100, such as [5, 25, 100] (got {weights!r})"
        )
    hosts = inputs.get("rolling_canary_hosts", 1)
    percent = _PERCENT.match(str(hosts))
    count = _whole(hosts)
    if not (1 <= int(percent.group(1)) <= 99 if percent else count is not None and count >= 1):
        errors.append(
            "rolling_canary_hosts must be a count of hosts (1 or more) or a percentage of the fleet (1%-99%, "
            f"rounded up), fewer than the fleet (got {hosts!r})"
        )
    elif fleet_size is not None and rolling_canary_count(hosts, int(fleet_size)) >= int(fleet_size):
        errors.append(
            f"rolling_canary_hosts must pick fewer hosts than the fleet: {hosts!r} is "
            f"{rolling_canary_count(hosts, int(fleet_size))} of {int(fleet_size)} hosts; the canary needs hosts left "
            "in the main target group"
        )
    step = inputs.get("rolling_canary_step_seconds", 60)
    if (_whole(step) or 0) < 0 or _whole(step) is None:
        errors.append(f"rolling_canary_step_seconds must be a number of seconds, 0 or more (got {step})")
    alarms = inputs.get("rolling_canary_alarms", [])
    errors.extend(e.replace("rolling_alarms", "rolling_canary_alarms")
                  for e in rolling_alarm_errors({"rolling_alarms": alarms}))
    if strategy != "canary":
        return errors
    load_balancer = str(inputs.get("rolling_load_balancer_name", "") or "")
    if not load_balancer:
        errors.append(
            "rolling_strategy canary needs a load balancer listener to weight, and rolling_load_balancer_name is "
            "empty (this environment has no load balancer): give the load balancer's name, or use "
            "rolling_strategy rolling"
        )
    canary_group = str(inputs.get("rolling_canary_target_group_name", "") or "")
    if not matches(TARGET_GROUP_RE, canary_group) or canary_group == inputs.get("rolling_target_group_name"):
        errors.append(
            "rolling_strategy canary needs rolling_canary_target_group_name, the target group the listener weights "
            f"for the canary hosts, not the main one rolling_target_group_name (got '{canary_group}')"
        )
    return errors


def rolling_alarm_halt(alarm: Mapping[str, Any], when: str) -> dict[str, Any]:
    """The run's stop on an alarm (an entry of the halts the report lists), from rolling_alarm_watch's alarm.

    when: where the run was ("before batch 2 (web-3)", "during the bake of batch 1 (web-1)").
    """
    name = str(alarm.get("name", "?"))
    metric = str(alarm.get("metric", "?"))
    reason = str(alarm.get("reason", "") or "no reason given")
    seen = str(alarm.get("seen_at", "?"))
    return {
        "pass": "forward",
        "msg": f"Stopped {when}: alarm {name} in ALARM ({metric}), seen at {seen}: {reason}",
        "alarm": {"name": name, "metric": metric, "reason": reason, "seen_at": seen,
                  "state_updated": str(alarm.get("state_updated", ""))},
    }


# --- During the run ---------------------------------------------------------------------------------

def rolling_health_floor(
    targets: list[Mapping[str, Any]],
    hosts: list[str],
    instance_ids: Mapping[str, str],
    todo: list[str],
    min_healthy_percent: Any,
    batch_name: str,
) -> str:
    """Why a batch must not go out, or "" when it may.

    targets: the target group's targets_health_description (elb_target_group_info). hosts: every host of
    the run; instance_ids: {host: instance id}. todo: the batch's hosts still to update. The targets that
    stay healthy while the batch is out must be at least min_healthy_percent of the hosts, rounded up.
    batch_name: how the message names the batch ("batch 2", "revert batch 1").
    """
    states = {str(t.get("target", {}).get("id", "")): str(t.get("target_health", {}).get("state", ""))
              for t in targets or []}
    healthy = [h for h in hosts if states.get(str(instance_ids.get(h, ""))) == "healthy"]
    not_healthy = [f"{h} {states.get(str(instance_ids.get(h, '')), 'not registered')}"
                   for h in hosts if h not in healthy]
    out = [h for h in todo if h in healthy]
    percent = as_int(min_healthy_percent) or 0
    needed = math.ceil(len(hosts) * percent / 100)
    if len(healthy) - len(out) >= needed:
        return ""
    unhealthy = f" ({', '.join(not_healthy)})" if not_healthy else ""
    return (
        f"Stopped before {batch_name} ({', '.join(todo)}): {len(healthy)} of {len(hosts)} target(s) healthy"
        f"{unhealthy}; taking {len(out)} out would leave {len(healthy) - len(out)}, fewer than "
        f"rolling_min_healthy_percent={percent}% of {len(hosts)} ({needed})."
    )


def rolling_timings(marks: Mapping[str, Any], end: Any, staged_s: Any = 0) -> dict[str, float]:
    """A host's step durations in seconds (one decimal) from the times its steps began.

    marks: start (the before_drain hook), drain, deploy, register, as epoch seconds; end: when the host
    was healthy again. staged_s: the seconds the host took to stage the release before the first batch,
    while it still served (every host of the run at once).
    """
    t = {key: float(value) for key, value in marks.items()}
    last = float(end)
    stage = round(float(staged_s or 0), 1)
    return {
        "stage_s": stage,
        "hook_s": round(t["drain"] - t["start"], 1),
        "drain_s": round(t["deploy"] - t["drain"], 1),
        "deploy_s": round(t["register"] - t["deploy"], 1),
        "register_s": round(last - t["register"], 1),
        "out_of_service_s": round(last - t["drain"], 1),
        "total_s": round(stage + last - t["start"], 1),
    }


# --- The end of the run -----------------------------------------------------------------------------

def rolling_results(
    hosts: list[str],
    results: Mapping[str, Any],
    instance_ids: Mapping[str, str],
    version: str,
    lost: list[str],
) -> list[dict[str, Any]]:
    """Every host's result at the end of the run, in plan order.

    results: {host: its rolling_result} (a host that never planned has none: it is still pending).
    lost: hosts that became unreachable. A lost host that had not failed is `lost`; a host still
    pending was `not updated`.
    """
    out = []
    for host in hosts:
        result = results.get(host)
        if not isinstance(result, Mapping):
            result = {"host": host, "instance_id": instance_ids.get(host, ""), "from": "", "to": version,
                      "status": "pending", "timings": {}, "step": "gathering facts"}
        result = dict(result)
        if host in lost and result.get("status") in ("pending", "in progress", "updated", "reverted"):
            result.update({
                "status": "lost",
                "error": f"unreachable during {result.get('step') or 'the run'} (the last release it reported: "
                         f"{result.get('from') or '?'} -> {result.get('to') or '?'})",
            })
        elif result.get("status") == "pending":
            result["status"] = "not updated"
        out.append(result)
    return out


def rolling_asg_results(
    asg: Mapping[str, Any], after: list[Mapping[str, Any]], refresh: Mapping[str, Any], version: str
) -> list[dict[str, Any]]:
    """Every instance's result of an Auto Scaling group's deploy (rolling_capacity asg), in the shape of
    rolling_results': the group's instances before the refresh (asg.instances, autoscaling_group_info's), those
    after it, and the refresh (asg_instance_refresh's result; {} when it did not run).

    Before and gone: replaced. Before and still there: updated when on the refresh's version, else not updated
    (failed when the refresh did not succeed). New: launched on the release, or, when the refresh did not succeed,
    launched by the rollback on the version the group ran."""
    target = str(refresh.get("launch_template_version", "") or "")
    succeeded = refresh.get("status") == "Successful" or bool(refresh and not refresh.get("msg"))
    before = {str(i.get("instance_id")): i for i in asg.get("instances", [])}
    now = {str(i.get("instance_id")): i for i in after}
    previous = f"template version {asg.get('from_version', '?')}"

    def on(instance: Mapping[str, Any]) -> str:
        return str((instance.get("launch_template") or {}).get("version", ""))

    out = []
    for instance_id, instance in before.items():
        result = {"host": instance_id, "instance_id": instance_id, "from": f"template version {on(instance)}",
                  "to": version, "timings": {}, "step": ""}  # fmt: skip
        if instance_id not in now:
            result["status"] = "replaced"
        elif target and on(now[instance_id]) == target:
            result["status"] = "updated"
        else:
            result.update(status="not updated", to=f"template version {on(now[instance_id])}")
        out.append(result)
    for instance_id, instance in now.items():
        if instance_id in before:
            continue
        release = version if target and on(instance) == target else previous
        out.append({"host": instance_id, "instance_id": instance_id, "from": "", "to": release, "timings": {},
                    "status": "launched", "step": ""})  # fmt: skip
    if refresh and not succeeded:
        reason = refresh.get("status_reason") or refresh.get("msg", "")
        out.append({"host": str(asg.get("name", "")), "instance_id": "", "from": previous, "to": version,
                    "timings": {}, "step": "instance refresh", "status": "failed",
                    "error": f"{refresh.get('status') or 'not started'}: {reason}"[:3000],
                    "restored": previous if refresh.get("status") == "RollbackSuccessful" else ""})  # fmt: skip
    return out


def rolling_outcome(results: list[Mapping[str, Any]], halts: list[Mapping[str, Any]]) -> str:
    """refused (the plan stopped the run), failed (a host failed or was lost), stopped, or succeeded."""
    if any(h.get("pass") == "plan" for h in halts):
        return "refused"
    if any(r.get("status") in ("failed", "revert failed", "lost") for r in results):
        return "failed"
    return "stopped" if halts else "succeeded"


def rolling_report_lines(
    run: Mapping[str, Any],
    outcome: str,
    results: list[Mapping[str, Any]],
    halts: list[Mapping[str, Any]],
    record: str,
) -> list[str]:
    """The run's summary: a headline, why it stopped, and one line per host with its timings and fate."""
    lines = [
        f"{str(run.get('action', '')).capitalize()} {run.get('version') or 'to each previous release'} on "
        f"{len(run.get('hosts', []))} host(s): {outcome.upper()} (run {run.get('run_id', '')}, record {record})"
    ]
    lines.extend(str(h.get("msg", "")) for h in halts)
    for r in results:
        t = (r.get("timings") or {}).get("forward") or {}
        line = f"{r.get('host')}: {r.get('status')} {r.get('from') or '-'} -> {r.get('to') or '-'}"
        if "total_s" in t:
            line += (f" (stage {t['stage_s']} s; out of service {t['out_of_service_s']} s: drain {t['drain_s']} s, "
                     f"switch {t['deploy_s']} s, register {t['register_s']} s)")
        if r.get("error"):
            line += f" {r['error']}"
        if r.get("restored"):
            line += f" Back on {r['restored']} and healthy in the target group."
        if r.get("restore_error"):
            line += f" NOT brought back: {r['restore_error']}"
        lines.append(line)
    return lines


# A Standard-tier SSM parameter holds at most 4 KB. The summary stays below it at any fleet size:
# counts of every status, the first problem hosts that fit, how many there were, and where the
# full audit record is.
SUMMARY_LIMIT = 4096
# Host statuses that need no attention.
_FINE = {"updated", "unchanged", "not updated", "reverted"}


def rolling_summary(run: dict, hosts: list, record: str = "", limit: int = SUMMARY_LIMIT) -> str:
    """The run's summary as JSON of at most `limit` bytes (UTF-8), valid at any fleet size.

    run: run_id, action, version, who, started, result (longer strings are cut, never the JSON), and alarm
    (the alarm that stopped the run, if one did: name, metric, reason, seen_at).
    hosts: the per-host results ({host, status, ...}). record: where the full audit record is.
    """
    counts: dict[str, int] = {}
    for host in hosts:
        status = str(host.get("status", "unknown"))
        counts[status] = counts.get(status, 0) + 1
    problems = [str(h.get("host", "")) for h in hosts if str(h.get("status", "unknown")) not in _FINE]
    fields = ("run_id", "action", "version", "who", "started", "result")
    summary: dict = {key: str(run.get(key, "") or "")[:200] for key in fields}
    alarm = run.get("alarm") or {}
    if alarm:
        # The alarm that stopped the run: name, metric, reason (with the value) and when it was seen.
        summary["alarm"] = {key: str(alarm.get(key, "") or "")[:300] for key in ("name", "metric", "reason", "seen_at")}
    summary.update({
        "hosts": len(hosts),
        "counts": counts,
        "problems": problems,
        "problems_total": len(problems),
        "record": str(record)[:512],
    })

    def encoded() -> str:
        return json.dumps(summary, separators=(",", ":"), ensure_ascii=False)

    # Keep the longest head of the problem list that fits (problems_total keeps the true number).
    text = encoded()
    if len(text.encode()) > limit:
        low, high = 0, len(problems)  # a head of `low` names fits; one of `high` may not
        while low < high:
            middle = (low + high + 1) // 2
            summary["problems"] = problems[:middle]
            if len(encoded().encode()) <= limit:
                low = middle
            else:
                high = middle - 1
        summary["problems"] = problems[:low]
        text = encoded()
    if len(text.encode()) > limit:  # only with absurd statuses: keep the counts' total
        summary["counts"] = {"total": len(hosts)}
        text = encoded()
    return text


def rolling_summary_parse(text: Any) -> dict:
    """A summary read back from SSM as a dict; {} when there is none, with `unreadable` when it is not JSON.

    Records written before the summary was kept valid may have been cut mid-JSON: readers show
    that instead of failing.
    """
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {"unreadable": f"not valid JSON ({len(str(text))} characters)"}
    return value if isinstance(value, dict) else {"unreadable": "not a JSON object"}


class FilterModule:
    """The rolling role's filters, called as ec2_fleet.fleet.rolling_*."""

    def filters(self) -> dict[str, Any]:
        return {
            "rolling_batches": rolling_batches,
            "rolling_release_errors": rolling_release_errors,
            "rolling_input_errors": rolling_input_errors,
            "rolling_alarm_errors": rolling_alarm_errors,
            "rolling_canary_errors": rolling_canary_errors,
            "rolling_canary_count": rolling_canary_count,
            "rolling_alarm_halt": rolling_alarm_halt,
            "rolling_hook_paths": rolling_hook_paths,
            "rolling_health_floor": rolling_health_floor,
            "rolling_timings": rolling_timings,
            "rolling_results": rolling_results,
            "rolling_outcome": rolling_outcome,
            "rolling_asg_errors": rolling_asg_errors,
            "rolling_asg_results": rolling_asg_results,
            "rolling_report_lines": rolling_report_lines,
            "rolling_summary": rolling_summary,
            "rolling_summary_parse": rolling_summary_parse,
        }
