#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start an Auto Scaling group's instance refresh to a launch template version and follow it to its end, in one
module run: the deploy of an Auto Scaling fleet (rolling_update.yml in asg mode).

amazon.aws.autoscaling_instance_refresh starts or cancels a refresh but takes no desired configuration, no
checkpoints and no automatic rollback, and does not wait; a wait written as its _info module with until/retries
starts a module for every poll.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: asg_instance_refresh
short_description: Refresh an Auto Scaling group's instances to a launch template version and wait for the end
description:
  - C(state=started) starts an instance refresh (strategy Rolling) whose desired configuration is the group's
    launch template at I(launch_template_version), with the given preferences, and, with I(wait), follows it
    until it ends; the result has the refresh's timeline. The group runs that version once the refresh succeeds.
  - With I(auto_rollback), new instances that fail their health checks roll the group back to the version it ran
    before; the module then fails, saying so (C(status=RollbackSuccessful)).
  - A refresh already in progress is not interrupted; the module fails naming it, unless I(follow_existing), in
    which case it follows that refresh instead of starting one.
  - C(state=cancelled) cancels the refresh in progress, if any, and waits until it has stopped.
  - In check mode nothing is started or cancelled; the result says whether it would be.
options:
  name:
    description: The Auto Scaling group.
    type: str
    required: true
  state:
    description: C(started) or C(cancelled).
    type: str
    choices: [started, cancelled]
    default: started
  launch_template_version:
    description: The version of the group's launch template to bring every instance to (C($Latest) allowed).
    type: str
  image_id:
    description:
      - Instead of I(launch_template_version), the image to bring every instance to - a new version of the group's
        launch template is made from the version the group runs, with this image and nothing else changed
        (unless that version already has the image), and the refresh brings the instances to it. The template's
        default version is left as it is.
    type: str
  version_description:
    description: The description of the version made for I(image_id) (the release it carries).
    type: str
    default: ""
  min_healthy_percentage:
    description: Percent of the desired capacity kept in service and healthy throughout (0-100).
    type: int
    default: 100
  max_healthy_percentage:
    description:
      - Percent of the desired capacity the group may reach while replacing (100-200); above 100 new instances
        are launched before old ones leave. At most 100 more than I(min_healthy_percentage).
    type: int
    default: 200
  instance_warmup:
    description: Seconds a new instance needs after it is in service before the refresh goes on; 0 the group's.
    type: int
    default: 0
  skip_matching:
    description: Leave instances already on the desired version.
    type: bool
    default: true
  checkpoint_percentages:
    description: Percentages of replaced instances at which the refresh waits I(checkpoint_delay) seconds (a canary).
    type: list
    elements: int
    default: []
  checkpoint_delay:
    description: Seconds the refresh waits at each checkpoint.
    type: int
    default: 0
  alarms:
    description:
      - CloudWatch alarms (at most 10) watched throughout the refresh and its bake; one in ALARM fails it (and, with
        I(auto_rollback), rolls it back). AWS's C(AlarmSpecification).
    type: list
    elements: str
    default: []
  bake_time:
    description:
      - Seconds the refresh waits once every instance is replaced before it is successful (status C(Baking)),
        the I(alarms) still watched; 0 none.
    type: int
    default: 0
  auto_rollback:
    description: Roll back to the version the group ran before when the refresh fails or one of I(alarms) fires.
    type: bool
    default: true
  follow_existing:
    description: Follow a refresh already in progress instead of failing.
    type: bool
    default: false
  wait:
    description: Follow the refresh until it ends.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to follow it; the module then fails (the refresh goes on).
    type: int
    default: 3600
  poll_interval:
    description: Seconds between two reads of the refresh.
    type: float
    default: 5.0
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author: ec2-fleet contributors
"""

EXAMPLES = r"""
- name: Bring every instance of the group to the release's template version, a canary first
  ec2_fleet.fleet.asg_instance_refresh:
    name: ec2-fleet-production-web
    launch_template_version: "7"
    min_healthy_percentage: 100
    max_healthy_percentage: 200
    checkpoint_percentages: [20, 100]
    checkpoint_delay: 300
"""

RETURN = r"""
launch_template_version:
  description: The version the refresh brings the instances to (with I(image_id), the version made for it).
  returned: when state is started
  type: str
version_made:
  description: With I(image_id), whether a new version was made for it (in check mode, would be).
  returned: when image_id is given
  type: bool
previous_version:
  description: The version the group ran before (the one an automatic rollback goes back to).
  returned: when state is started
  type: str
instance_refresh_id:
  description: The refresh started (or followed, or cancelled); empty when there was none.
  returned: always
  type: str
status:
  description: Its last status (C(Successful), C(Failed), C(RollbackSuccessful), C(Cancelled), ...).
  returned: always
  type: str
status_reason:
  description: Auto Scaling's reason for the last status.
  returned: always
  type: str
percentage_complete:
  description: Percent of the instances replaced.
  returned: always
  type: int
timeline:
  description: Each change seen while following it - seconds from the start, status, percentage, reason.
  returned: always
  type: list
  elements: dict
waited_s:
  description: Seconds spent following it.
  returned: always
  type: float
"""

import time  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry  # noqa: E402
from ansible_collections.ec2_fleet.fleet.plugins.module_utils.fleet_aws import REFRESH_ACTIVE, aws_errors  # noqa: E402

ENDED_WELL = ("Successful",)


def _latest(client, name: str) -> dict:
    found = client.describe_instance_refreshes(AutoScalingGroupName=name, MaxRecords=1)["InstanceRefreshes"]
    return found[0] if found else {}


def _follow(module: AnsibleAWSModule, client, name: str, refresh_id: str) -> tuple[dict, list[dict], float]:
    p = module.params
    started = time.monotonic()
    deadline = started + p["wait_timeout"]
    timeline: list[dict] = []
    while True:
        found = client.describe_instance_refreshes(AutoScalingGroupName=name, InstanceRefreshIds=[refresh_id])
        refresh = found["InstanceRefreshes"][0]
        seen = {"status": refresh.get("Status", ""), "percentage": refresh.get("PercentageComplete", 0),
                "reason": refresh.get("StatusReason", "")}  # fmt: skip
        if not timeline or {k: timeline[-1][k] for k in seen} != seen:
            timeline.append({"t": round(time.monotonic() - started, 1), **seen})
        if refresh.get("Status") not in REFRESH_ACTIVE or not p["wait"]:
            return refresh, timeline, time.monotonic() - started
        if time.monotonic() >= deadline:
            done = refresh.get("PercentageComplete", 0)
            module.fail_json(msg=f"The instance refresh {refresh_id} of {name} is still {refresh.get('Status')} "
                                 f"({done} %) after wait_timeout {p['wait_timeout']} s; it goes on",
                             instance_refresh_id=refresh_id, status=refresh.get("Status", ""),
                             status_reason=refresh.get("StatusReason", ""), timeline=timeline,
                             percentage_complete=refresh.get("PercentageComplete", 0))  # fmt: skip
        time.sleep(p["poll_interval"])


def _version_of_image(module: AnsibleAWSModule, ec2, template: dict, image_id: str,
                      description: str) -> tuple[str, bool]:
    """The template version with image_id: the group's own when it has that image, else a new one made from it
    (SourceVersion: every other parameter kept), unless in check mode ("(new)"). Returns (version, made)."""
    running = str(template.get("Version", ""))
    found = ec2.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"], Versions=[running])
    current = found["LaunchTemplateVersions"][0]
    data = current.get("LaunchTemplateData") or {}
    if data.get("ImageId") == image_id:
        return str(current["VersionNumber"]), False
    if module.check_mode:
        return "(new)", True
    made = ec2.create_launch_template_version(
        LaunchTemplateId=template["LaunchTemplateId"], SourceVersion=str(current["VersionNumber"]),
        VersionDescription=description[:255], LaunchTemplateData={"ImageId": image_id},
    )["LaunchTemplateVersion"]  # fmt: skip
    return str(made["VersionNumber"]), True


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["started", "cancelled"], "default": "started"},
            "launch_template_version": {"type": "str"},
            "image_id": {"type": "str"},
            "version_description": {"type": "str", "default": ""},
            "min_healthy_percentage": {"type": "int", "default": 100},
            "max_healthy_percentage": {"type": "int", "default": 200},
            "instance_warmup": {"type": "int", "default": 0},
            "skip_matching": {"type": "bool", "default": True},
            "checkpoint_percentages": {"type": "list", "elements": "int", "default": []},
            "checkpoint_delay": {"type": "int", "default": 0},
            "alarms": {"type": "list", "elements": "str", "default": []},
            "bake_time": {"type": "int", "default": 0},
            "auto_rollback": {"type": "bool", "default": True},
            "follow_existing": {"type": "bool", "default": False},
            "wait": {"type": "bool", "default": True},
            "wait_timeout": {"type": "int", "default": 3600},
            "poll_interval": {"type": "float", "default": 5.0},
        },
        required_if=[["state", "started", ["launch_template_version", "image_id"], True]],
        mutually_exclusive=[["launch_template_version", "image_id"]],
        supports_check_mode=True,
    )
    p = module.params
    errors = []
    if not 0 <= p["min_healthy_percentage"] <= 100:
        errors.append(f"min_healthy_percentage must be 0-100 (got {p['min_healthy_percentage']})")
    if not 100 <= p["max_healthy_percentage"] <= 200:
        errors.append(f"max_healthy_percentage must be 100-200 (got {p['max_healthy_percentage']})")
    elif p["max_healthy_percentage"] - p["min_healthy_percentage"] > 100:
        errors.append("max_healthy_percentage may be at most 100 more than min_healthy_percentage (got "
                      f"{p['min_healthy_percentage']} and {p['max_healthy_percentage']})")  # fmt: skip
    if p["min_healthy_percentage"] == 100 and p["max_healthy_percentage"] == 100:
        errors.append("min_healthy_percentage 100 needs max_healthy_percentage above 100: the refresh could not "
                      "replace an instance without going below the minimum")  # fmt: skip
    if any(not 1 <= c <= 100 for c in p["checkpoint_percentages"]) or p["checkpoint_percentages"] != sorted(
            set(p["checkpoint_percentages"])):  # fmt: skip
        errors.append(f"checkpoint_percentages must rise, each 1-100 (got {p['checkpoint_percentages']})")
    if len(p["alarms"]) > 10:
        errors.append(f"alarms takes at most 10 CloudWatch alarms, as AWS's instance refresh does (got "
                      f"{len(p['alarms'])})")  # fmt: skip
    if not 0 <= p["bake_time"] <= 172800:
        errors.append(f"bake_time must be 0-172800 seconds (got {p['bake_time']})")
    for name in ("instance_warmup", "checkpoint_delay", "wait_timeout"):
        if p[name] < 0:
            errors.append(f"{name} must be 0 or more seconds (got {p[name]})")
    if p["poll_interval"] <= 0:
        errors.append(f"poll_interval must be more than 0 seconds (got {p['poll_interval']})")
    if errors:
        module.fail_json(msg="; ".join(errors))
    client = module.client("autoscaling", retry_decorator=AWSRetry.jittered_backoff(retries=10))
    ec2 = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff(retries=10)) if p["image_id"] else None
    name = p["name"]
    try:
        groups = client.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
        if not groups:
            module.fail_json(msg=f"Auto Scaling group {name} not found")
        current = _latest(client, name)
        in_progress = current if current.get("Status") in REFRESH_ACTIVE else {}
        result = {"changed": False, "instance_refresh_id": in_progress.get("InstanceRefreshId", ""),
                  "status": current.get("Status", ""), "status_reason": current.get("StatusReason", ""),
                  "percentage_complete": current.get("PercentageComplete", 0), "timeline": [],
                  "waited_s": 0.0}  # fmt: skip
        if p["state"] == "cancelled":
            if not in_progress:
                module.exit_json(**result)
            result["changed"] = True
            if not module.check_mode:
                client.cancel_instance_refresh(AutoScalingGroupName=name)
                refresh, timeline, waited = _follow(module, client, name, in_progress["InstanceRefreshId"])
                result.update(status=refresh["Status"], status_reason=refresh.get("StatusReason", ""),
                              timeline=timeline, waited_s=round(waited, 1))  # fmt: skip
            module.exit_json(**result)
        if in_progress and not p["follow_existing"]:
            module.fail_json(msg=f"An instance refresh of {name} is in progress ({in_progress['InstanceRefreshId']}, "
                                 f"{in_progress['Status']}, {in_progress.get('PercentageComplete', 0)} %): wait for "
                                 "it or cancel it", **result)  # fmt: skip
        template = groups[0].get("LaunchTemplate") or {}
        spec = {k: template[k] for k in ("LaunchTemplateId",) if template.get(k)}
        if not spec and not in_progress:
            module.fail_json(msg=f"Auto Scaling group {name} has no launch template to refresh to")
        previous = str(template.get("Version", ""))
        version = p["launch_template_version"]
        if p["image_id"] and not in_progress:
            version, made = _version_of_image(module, ec2, template, p["image_id"], p["version_description"])
            result["version_made"] = made
            on_it = [i for i in groups[0].get("Instances", []) if i.get("LifecycleState") == "InService"
                     and str((i.get("LaunchTemplate") or {}).get("Version", "")) == version]  # fmt: skip
            if not made and len(on_it) == len(groups[0].get("Instances", [])):
                # Every instance already runs the image's version: nothing to refresh.
                module.exit_json(**{**result, "launch_template_version": version, "previous_version": previous})
        result.update(launch_template_version=version or "", previous_version=previous)
        if module.check_mode:
            module.exit_json(**{**result, "changed": not in_progress})
        if in_progress:
            refresh_id = in_progress["InstanceRefreshId"]
        else:
            preferences = {
                "MinHealthyPercentage": p["min_healthy_percentage"],
                "MaxHealthyPercentage": p["max_healthy_percentage"],
                "SkipMatching": p["skip_matching"],
                "AutoRollback": p["auto_rollback"],
            }
            if p["instance_warmup"]:
                preferences["InstanceWarmup"] = p["instance_warmup"]
            if p["checkpoint_percentages"]:
                preferences["CheckpointPercentages"] = p["checkpoint_percentages"]
                preferences["CheckpointDelay"] = p["checkpoint_delay"]
            if p["alarms"]:
                preferences["AlarmSpecification"] = {"Alarms": p["alarms"]}
            if p["bake_time"]:
                preferences["BakeTime"] = p["bake_time"]
            refresh_id = client.start_instance_refresh(
                AutoScalingGroupName=name, Strategy="Rolling", Preferences=preferences,
                DesiredConfiguration={"LaunchTemplate": {**spec, "Version": version}},
            )["InstanceRefreshId"]  # fmt: skip
        refresh, timeline, waited = _follow(module, client, name, refresh_id)
    except aws_errors() as exc:
        module.fail_json_aws(exc, msg=f"Could not refresh the instances of {name}")
    result.update(changed=True, instance_refresh_id=refresh_id, status=refresh.get("Status", ""),
                  status_reason=refresh.get("StatusReason", ""),
                  percentage_complete=refresh.get("PercentageComplete", 0), timeline=timeline,
                  waited_s=round(waited, 1))  # fmt: skip
    if p["wait"] and refresh.get("Status") not in ENDED_WELL:
        rolled_back = refresh.get("Status") == "RollbackSuccessful"
        module.fail_json(msg=f"The instance refresh {refresh_id} of {name} ended {refresh.get('Status')}: "
                             f"{refresh.get('StatusReason', '')}"
                             + (" The group runs the version it ran before." if rolled_back else ""),
                         **result)  # fmt: skip
    module.exit_json(**result)


if __name__ == "__main__":
    main()
