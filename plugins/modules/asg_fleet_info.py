#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An Auto Scaling fleet as verify.yml shows it: the group's sizes and the launch template version a scale-out
would launch, each instance's lifecycle state, launch template version, image and release, its health in the
group's target groups, and the instance refresh in progress; in one module run (the amazon.aws _info modules
would take four, and the join in Jinja)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: asg_fleet_info
short_description: An Auto Scaling group's instances with their release and target health, and its refresh
description:
  - Reads the group, its instances, the launch template versions they were launched from and the images of those
    versions, the health of each instance in the group's target groups, and the latest instance refresh.
  - The release of an image is its C(Release) tag (bake.yml tags every image it makes with it); empty when the
    image has none or is gone.
  - Changes nothing.
options:
  name:
    description: The Auto Scaling group.
    type: str
    required: true
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author: ec2-fleet contributors
"""

EXAMPLES = r"""
- name: Read the group as verify.yml shows it
  ec2_fleet.fleet.asg_fleet_info:
    name: ec2-fleet-production-web
  register: fleet
"""

RETURN = r"""
exists:
  description: Whether the group exists (the rest is empty when it does not).
  returned: always
  type: bool
group:
  description:
    - The group - C(name), C(min_size), C(max_size), C(desired_capacity), C(launch_template_id),
      C(launch_template_version) (the version a scale-out launches, as a number), C(image_id), C(release),
      C(target_group_arns).
  returned: always
  type: dict
instances:
  description:
    - One per instance, sorted by id - C(instance_id), C(lifecycle_state), C(health_status), C(availability_zone),
      C(launch_template_version), C(image_id), C(release) and C(target_health) (the state in each target group,
      C(not registered) when absent; the first target group's in C(target)).
  returned: always
  type: list
  elements: dict
refresh:
  description:
    - The latest instance refresh when it is still active (Pending, InProgress, Baking, Cancelling,
      RollbackInProgress), else empty - C(instance_refresh_id), C(status), C(status_reason),
      C(percentage_complete), C(instances_to_update), C(launch_template_version) (where it brings the group).
  returned: always
  type: dict
last_refresh:
  description: The latest instance refresh whatever its status (C(instance_refresh_id), C(status)), else empty.
  returned: always
  type: dict
"""

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry  # noqa: E402
from ansible_collections.ec2_fleet.fleet.plugins.module_utils.fleet_aws import REFRESH_ACTIVE, aws_errors  # noqa: E402

# The template or version gone, the image deregistered: shown as unknown, not an error.
GONE = (
    "InvalidLaunchTemplateId.NotFound",
    "InvalidLaunchTemplateId.VersionNotFound",
    "InvalidLaunchTemplateName.NotFoundException",
    "InvalidAMIID.NotFound",
    "InvalidAMIID.Unavailable",
)



class Templates:
    """Launch template versions and the images they name, each read once."""

    def __init__(self, ec2) -> None:
        self.ec2 = ec2
        self.versions: dict[tuple[str, str], dict] = {}
        self.images: dict[str, dict] = {}

    def version(self, template_id: str, version: str) -> dict:
        """{number, image_id} of a version ("$Latest" and "$Default" resolved); empty when it is gone."""
        key = (template_id, str(version))
        if key not in self.versions:
            try:
                found = self.ec2.describe_launch_template_versions(
                    LaunchTemplateId=template_id, Versions=[str(version)]
                )["LaunchTemplateVersions"]
            except is_boto3_error_code(list(GONE)):
                found = []
            self.versions[key] = ({"number": str(found[0]["VersionNumber"]),
                                   "image_id": (found[0].get("LaunchTemplateData") or {}).get("ImageId", "")}
                                  if found else {})  # fmt: skip
        return self.versions[key]

    def release(self, image_id: str) -> str:
        if image_id and image_id not in self.images:
            try:
                found = self.ec2.describe_images(ImageIds=[image_id])["Images"]
            except is_boto3_error_code(list(GONE)):
                found = []
            self.images[image_id] = found[0] if found else {}
        tags = {t["Key"]: t["Value"] for t in self.images.get(image_id, {}).get("Tags", [])}
        return tags.get("Release", "")


def _template_of(item: dict) -> dict:
    """The launch template of a group or instance ({} when it has none: a launch configuration or mixed policy)."""
    template = item.get("LaunchTemplate") or (item.get("MixedInstancesPolicy") or {}).get(
        "LaunchTemplate", {}).get("LaunchTemplateSpecification") or {}  # fmt: skip
    return template if template.get("LaunchTemplateId") else {}


def main() -> None:
    module = AnsibleAWSModule(argument_spec={"name": {"type": "str", "required": True}}, supports_check_mode=True)
    name = module.params["name"]
    retry = AWSRetry.jittered_backoff(retries=10)
    autoscaling = module.client("autoscaling", retry_decorator=retry)
    ec2 = module.client("ec2", retry_decorator=retry)
    elbv2 = module.client("elbv2", retry_decorator=retry)
    try:
        found = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
        if not found:
            module.exit_json(changed=False, exists=False, group={}, instances=[], refresh={}, last_refresh={})
        raw = found[0]
        templates = Templates(ec2)
        template = _template_of(raw)
        group_version = templates.version(template["LaunchTemplateId"], template["Version"]) if template else {}
        target_groups = list(raw.get("TargetGroupARNs", []))
        health: dict[str, dict[str, str]] = {}
        for arn in target_groups:
            for described in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]:
                health.setdefault(described["Target"]["Id"], {})[arn] = described["TargetHealth"]["State"]
        instances = []
        for item in sorted(raw.get("Instances", []), key=lambda i: i["InstanceId"]):
            own = _template_of(item)
            version = templates.version(own["LaunchTemplateId"], own["Version"]) if own else {}
            states = {arn: health.get(item["InstanceId"], {}).get(arn, "not registered") for arn in target_groups}
            instances.append({
                "instance_id": item["InstanceId"], "lifecycle_state": item.get("LifecycleState", ""),
                "health_status": item.get("HealthStatus", ""), "availability_zone": item.get("AvailabilityZone", ""),
                "launch_template_version": version.get("number", ""), "image_id": version.get("image_id", ""),
                "release": templates.release(version.get("image_id", "")), "target_health": states,
                "target": states[target_groups[0]] if target_groups else "no target group",
            })  # fmt: skip
        refreshes = autoscaling.describe_instance_refreshes(AutoScalingGroupName=name, MaxRecords=1)[
            "InstanceRefreshes"]  # fmt: skip
        last = refreshes[0] if refreshes else {}
        refresh = {}
        if last.get("Status") in REFRESH_ACTIVE:
            desired = (last.get("DesiredConfiguration") or {}).get("LaunchTemplate") or {}
            refresh = {"instance_refresh_id": last["InstanceRefreshId"], "status": last["Status"],
                       "status_reason": last.get("StatusReason", ""),
                       "percentage_complete": last.get("PercentageComplete", 0),
                       "instances_to_update": last.get("InstancesToUpdate", 0),
                       "launch_template_version": str(desired.get("Version", ""))}  # fmt: skip
    except aws_errors() as error:
        module.fail_json_aws(error, msg=f"Could not read the Auto Scaling group {name}")
    module.exit_json(
        changed=False, exists=True, instances=instances, refresh=refresh,
        last_refresh={"instance_refresh_id": last.get("InstanceRefreshId", ""), "status": last.get("Status", "")}
        if last else {},
        group={"name": name, "min_size": raw["MinSize"], "max_size": raw["MaxSize"],
               "desired_capacity": raw["DesiredCapacity"], "launch_template_id": template.get("LaunchTemplateId", ""),
               "launch_template_version": group_version.get("number", ""),
               "image_id": group_version.get("image_id", ""),
               "release": templates.release(group_version.get("image_id", "")), "target_group_arns": target_groups},
    )  # fmt: skip


if __name__ == "__main__":
    main()
