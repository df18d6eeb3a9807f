"""moto, in-process, with the lab's patches: describe_target_health tells what the load balancer
sees (initial, healthy, unhealthy, draining, unused) and deregistration drains for the target
group's delay; ElastiCache keeps the AUTH token so the lab's Redis can require it; CreateImage
leaves the AMI pending until the lab has committed the instance's container, and RebootInstances
restarts it (images.py)."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from moto.backends import get_backend
from moto.core.responses import ActionResult
from moto.ec2.models.amis import AmiBackend
from moto.ec2.models.instances import InstanceBackend
from moto.ec2.models.launch_templates import LaunchTemplateBackend
from moto.ec2.responses.amis import AmisResponse
from moto.ec2.responses.launch_templates import LaunchTemplates
from moto.elasticache.models import ElastiCacheBackend
from moto.elbv2.exceptions import ELBClientError
from moto.elbv2.models import ELBv2Backend, FakeHealthStatus, FakeTargetGroup
from moto.server import ThreadedMotoServer

from ec2_fleet_dev.lab.config import ACCOUNT_ID

Key = tuple[str, str, int]  # (target group ARN, target id, port)


@dataclass(frozen=True)
class Health:
    state: str
    reason: str | None = None
    description: str | None = None


INITIAL = Health("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
DRAINING = Health("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")
NOT_REGISTERED = Health("unused", "Target.NotRegistered", "Target is not registered to the target group")
NOT_RUNNING = Health("unused", "Target.InvalidState", "Target is in the stopped state")


@dataclass
class HealthBook:
    """Shared between moto's request threads (readers) and the balancer (writer)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    health: dict[Key, Health] = field(default_factory=dict)  # registered targets, as HAProxy sees them
    draining: dict[Key, float] = field(default_factory=dict)  # deregistered targets -> monotonic deadline
    auth_tokens: dict[tuple[str, str], str | None] = field(default_factory=dict)  # (region, group id) -> token

    def start_draining(self, key: Key, delay: float) -> None:
        with self.lock:
            self.draining.setdefault(key, time.monotonic() + delay)
            self.health.pop(key, None)

    def cancel_draining(self, key: Key) -> None:
        with self.lock:
            self.draining.pop(key, None)
            self.health.pop(key, None)

    def draining_of(self, arn: str) -> list[Key]:
        now = time.monotonic()
        with self.lock:
            return [k for k, deadline in self.draining.items() if k[0] == arn and deadline > now]


BOOK = HealthBook()  # moto's backends are process-wide, so is the book their patches read


@dataclass(frozen=True)
class ImageRequest:
    ami_id: str
    instance_id: str
    reboot: bool  # CreateImage without NoReboot: EC2 shuts the instance down for the snapshot


@dataclass
class ImageBook:
    """CreateImage calls (moto's request threads) waiting for the lab's fleet loop (images.py)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[ImageRequest] = field(default_factory=list)
    reboots: list[str] = field(default_factory=list)  # RebootInstances: instance ids

    def add(self, request: ImageRequest) -> None:
        with self.lock:
            self.requests.append(request)

    def take(self) -> list[ImageRequest]:
        with self.lock:
            taken, self.requests = self.requests, []
        return taken

    def reboot(self, instance_ids: list[str]) -> None:
        with self.lock:
            self.reboots.extend(instance_ids)

    def take_reboots(self) -> list[str]:
        with self.lock:
            taken, self.reboots = self.reboots, []
        return taken


IMAGES = ImageBook()


def deregistration_delay(tg: FakeTargetGroup) -> float:
    return float(tg.attributes.get("deregistration_delay.timeout_seconds", 300))


def _port_of(tg: FakeTargetGroup, target: dict[str, Any]) -> int:
    registered = tg.targets.get(target["Id"])
    return int(target.get("Port") or (registered or {}).get("Port") or tg.port)


def _instance_running(ec2_backend: Any, target_id: str) -> bool:
    if not target_id.startswith("i-"):
        return True
    try:
        instance = ec2_backend.get_instance_by_id(target_id)
    except Exception:
        return False
    return instance is not None and instance.state == "running"


_orig_register = FakeTargetGroup.register
_orig_deregister = FakeTargetGroup.deregister


def _register(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
    _orig_register(self, targets)
    for target in targets:
        BOOK.cancel_draining((self.arn, target["Id"], _port_of(self, target)))


def _deregister(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
    keys = [(self.arn, t["Id"], _port_of(self, t)) for t in targets if t["Id"] in self.targets]
    _orig_deregister(self, targets)
    for key in keys:
        BOOK.start_draining(key, deregistration_delay(self))


def _health_for(self: FakeTargetGroup, target: dict[str, Any], ec2_backend: Any) -> FakeHealthStatus:
    port = _port_of(self, target)
    key = (self.arn, target["Id"], port)
    registered = self.targets.get(target["Id"])
    if registered is not None and int(registered["Port"]) == port:
        if not _instance_running(ec2_backend, target["Id"]):
            health = NOT_RUNNING
        elif not self.health_check_enabled:
            health = Health("unavailable", "Target.HealthCheckDisabled", "Health checks are disabled")
        else:
            with BOOK.lock:
                health = BOOK.health.get(key, INITIAL)
    elif key in BOOK.draining_of(self.arn):
        health = DRAINING
    else:
        health = NOT_REGISTERED
    return FakeHealthStatus(
        target["Id"], str(port), self.health_check_port, health.state, health.reason, health.description
    )


_orig_describe_target_health = ELBv2Backend.describe_target_health


def _describe_target_health(self: ELBv2Backend, target_group_arn: str, targets: list[dict[str, Any]]) -> list:
    if not targets and target_group_arn in self.target_groups:
        tg = self.target_groups[target_group_arn]
        targets = [{"Id": t["Id"], "Port": t["Port"]} for t in tg.targets.values()]
        targets += [{"Id": k[1], "Port": k[2]} for k in BOOK.draining_of(target_group_arn)]
    return _orig_describe_target_health(self, target_group_arn, targets)


_orig_delete_load_balancer = ELBv2Backend.delete_load_balancer


def _delete_load_balancer(self: ELBv2Backend, arn: str) -> None:
    """As AWS (moto deletes anyway): a load balancer with deletion protection on is not deleted."""
    lb = self.load_balancers.get(arn)
    if lb is not None and str(lb.attrs.get("deletion_protection.enabled", "false")).lower() == "true":
        raise ELBClientError(
            "OperationNotPermitted",
            f"Load balancer '{arn}' cannot be deleted because deletion protection is enabled",
        )
    _orig_delete_load_balancer(self, arn)


_orig_create_replication_group = ElastiCacheBackend.create_replication_group


def _create_replication_group(self: ElastiCacheBackend, *args: Any, **kwargs: Any) -> Any:
    # Kept before moto stores the group, so the fleet loop never sees the group without its token.
    key = (self.region_name, kwargs.get("replication_group_id", ""))
    with BOOK.lock:
        BOOK.auth_tokens[key] = kwargs.get("auth_token")
    return _orig_create_replication_group(self, *args, **kwargs)


_orig_create_image = AmisResponse.create_image


def _create_image(self: AmisResponse) -> Any:
    """As EC2: the AMI is pending until its snapshot is taken (moto: available at once)."""
    result = _orig_create_image(self)
    ami_id = result.result["ImageId"]
    self.ec2_backend.amis[ami_id].state = "pending"
    IMAGES.add(ImageRequest(ami_id, self._get_param("InstanceId"), not self._get_bool_param("NoReboot", False)))
    return result


_orig_reboot_instances = InstanceBackend.reboot_instances


def _reboot_instances(self: InstanceBackend, instance_ids: list[str]) -> list:
    """As EC2: the instance reboots (moto only records it); the lab restarts its container (images.py)."""
    rebooted = _orig_reboot_instances(self, instance_ids)
    IMAGES.reboot([i.id for i in rebooted])
    return rebooted


_orig_backend_create_image = AmiBackend.create_image


def _backend_create_image(
    self: AmiBackend, instance_id: str, name: str, description: str, tag_specifications: list[dict[str, Any]]
) -> Any:
    """As EC2: tags for the image's snapshot too (amazon.aws.ec2_ami sends them; moto raises NotImplemented)."""
    snapshot_tags = {t["Key"]: t["Value"] for spec in tag_specifications if spec.get("ResourceType") == "snapshot"
                     for t in spec.get("Tags", [])}  # fmt: skip
    others = [spec for spec in tag_specifications if spec.get("ResourceType") != "snapshot"]
    ami = _orig_backend_create_image(self, instance_id, name, description, others)
    if snapshot_tags:
        self.create_tags([ami.ebs_snapshot.id], snapshot_tags)  # type: ignore[attr-defined]
    return ami


_orig_create_launch_template = LaunchTemplateBackend.create_launch_template


def _create_launch_template(self: LaunchTemplateBackend, name: str, description: str, template_data: dict[str, Any],
                            tag_spec: dict[str, Any]) -> Any:
    """As EC2: the template's own tags are the template's, not part of its first version's data (moto adds them to
    the data's TagSpecifications, so amazon.aws.ec2_launch_template sees a difference and makes a new version on
    every run)."""
    specs = [s for s in template_data.get("TagSpecifications", []) if s.get("ResourceType") != "launch-template"]
    data = {k: v for k, v in template_data.items() if k != "TagSpecifications"} | (
        {"TagSpecifications": specs} if specs else {})
    return _orig_create_launch_template(self, name, description, data, tag_spec)


def _delete_launch_template_versions(self: LaunchTemplates) -> ActionResult:
    """DeleteLaunchTemplateVersions (moto: NotImplemented; amazon.aws.ec2_launch_template calls it before it deletes a
    template): the default version is refused as EC2 refuses it, the others are answered deleted. moto numbers a
    template's versions by their place in a list, so they stay until the template is deleted (DeleteLaunchTemplate,
    which follows it)."""
    name, template_id = self._get_param("LaunchTemplateName"), self._get_param("LaunchTemplateId")
    template = (self.ec2_backend.get_launch_template_by_name(name) if name
                else self.ec2_backend.get_launch_template(template_id))  # fmt: skip
    done, refused = [], []
    for number in self._get_param("LaunchTemplateVersions", []):
        entry = {"LaunchTemplateId": template.id, "LaunchTemplateName": template.name, "VersionNumber": int(number)}
        if int(number) == template.default_version_number:
            refused.append({**entry, "ResponseError": {"Code": "launchTemplateVersionIsDefault",
                                                       "Message": "Cannot delete the default version"}})
        else:
            done.append(entry)
    return ActionResult({"SuccessfullyDeletedLaunchTemplateVersions": done,
                         "UnsuccessfullyDeletedLaunchTemplateVersions": refused})


_orig_create_launch_template_version = LaunchTemplates.create_launch_template_version


def _create_launch_template_version(self: LaunchTemplates) -> ActionResult:
    """CreateLaunchTemplateVersion with SourceVersion, as EC2: the new version has the source version's parameters
    except those LaunchTemplateData gives (moto ignores SourceVersion: a version of only the new image would launch
    instances with no user data, profile or security group)."""
    source = self._get_param("SourceVersion")
    if source:
        name, template_id = self._get_param("LaunchTemplateName"), self._get_param("LaunchTemplateId")
        template = (self.ec2_backend.get_launch_template_by_name(name) if name
                    else self.ec2_backend.get_launch_template(template_id))  # fmt: skip
        base = template.get_version(source).data
        given = self._get_param("LaunchTemplateData", {})
        original = self._get_param

        def _get_param(key: str, default: Any = None) -> Any:
            return {**base, **given} if key == "LaunchTemplateData" else original(key, default)

        self._get_param = _get_param  # type: ignore[method-assign]
    return _orig_create_launch_template_version(self)


def patch_image_tags() -> None:
    """Only the snapshot tags of CreateImage (tests/aws's moto, where no lab commits an image: available at once),
    the launch templates' tags kept out of their data and a new version made from a source version."""
    AmiBackend.create_image = _backend_create_image
    LaunchTemplateBackend.create_launch_template = _create_launch_template
    LaunchTemplates.delete_launch_template_versions = _delete_launch_template_versions
    LaunchTemplates.create_launch_template_version = _create_launch_template_version


# The target groups' draining (what autoscaling.py's scale-in waits on), for a test to set with monkeypatch.
DRAIN_PATCHES: list[tuple[type, str, Any]] = [
    (FakeTargetGroup, "register", _register),
    (FakeTargetGroup, "deregister", _deregister),
    (FakeTargetGroup, "health_for", _health_for),
    (ELBv2Backend, "describe_target_health", _describe_target_health),
]


def patch() -> None:
    from ec2_fleet_dev.lab import autoscaling  # it patches moto's Auto Scaling on top of this module's

    autoscaling.patch()
    for cls, name, value in DRAIN_PATCHES:
        setattr(cls, name, value)
    ELBv2Backend.delete_load_balancer = _delete_load_balancer
    ElastiCacheBackend.create_replication_group = _create_replication_group
    AmisResponse.create_image = _create_image
    patch_image_tags()
    InstanceBackend.reboot_instances = _reboot_instances


def start(host: str, port: int) -> ThreadedMotoServer:
    patch()
    # AWS's managed policies (AmazonSSMManagedInstanceCore for the hosts' role) exist, as on AWS.
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    return server


def backend(service: str, region: str) -> Any:
    return get_backend(service)[ACCOUNT_ID][region]  # type: ignore[index]
