"""Check AWS calls recorded by api_recorder against an IAM policy document, the way IAM would.

Each recorded call becomes one or more authorizations (action, resource ARN, condition context), as the
service authorization reference describes the action: the resource types it touches, the resources it
creates (with the tags of the request), and the permissions AWS checks implicitly (ec2:CreateTags and
elasticloadbalancing:AddTags / elasticache:AddTagsToResource / ssm:AddTagsToResource when a create call
carries tags, iam:PassRole for an instance profile, cloudfront:TagResource for CreateDistributionWithTags).
S3 operations are authorized as the IAM actions of the S3_ACTIONS table where the names differ (HeadObject
is s3:GetObject), on the bucket's or the object's ARN. An authorization is allowed when an Allow statement
matches its action, its resource and all its conditions, and no Deny statement matches.

The tags of the resources a call acts on are read from moto just before the call reaches it (annotate),
so `aws:ResourceTag/...` conditions are evaluated on the state AWS would have seen.
The evaluator knows the condition operators StringEquals, StringLike and Null; any other makes it fail loudly
rather than guess.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from api_recorder import ApiCall

# Where the policy test leaves its summary for the end of the pytest run (conftest prints it).
REPORT_KEY = pytest.StashKey[list[str]]()
# A resource that the call creates: its id is not known when IAM authorizes the call.
NEW = "(new)"
# Needs no permission (AWS: "No permissions are required to perform this operation").
ALWAYS_ALLOWED = {"sts:GetCallerIdentity"}


@dataclass(frozen=True)
class Authorization:
    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = field(default=())

    def describe(self) -> str:
        ctx = ", ".join(f"{k}={v}" for k, v in self.context)
        return f"{self.action} on {self.resource}" + (f" [{ctx}]" if ctx else "")


# --- reading the request -------------------------------------------------------------------------------


def _indexed(params: dict[str, Any], prefix: str) -> list[str]:
    """Values of Prefix.1, Prefix.2, ... (query protocol lists)."""
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)$")
    found = sorted((int(m.group(1)), v) for k, v in params.items() if (m := pattern.match(k)))
    return [str(v) for _, v in found]


def _ec2_request_tags(params: dict[str, Any]) -> dict[str, dict[str, str]]:
    """TagSpecification.N.ResourceType / .Tag.M.Key/Value -> {resource type: tags}."""
    specs: dict[str, dict[str, str]] = {}
    for n in range(1, 20):
        rtype = params.get(f"TagSpecification.{n}.ResourceType")
        if rtype is None:
            break
        specs[str(rtype)] = _member_tags(params, f"TagSpecification.{n}.Tag")
    return specs


def _member_tags(params: dict[str, Any], prefix: str) -> dict[str, str]:
    """Tags.member.N.Key/Value (ELBv2) or Tags.Tag.N.Key/Value (ElastiCache) -> dict."""
    tags = {}
    for n in range(1, 60):
        key = params.get(f"{prefix}.{n}.Key")
        if key is None:
            break
        tags[key] = str(params.get(f"{prefix}.{n}.Value", ""))
    return tags


def _tag_context(kind: str, tags: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((f"aws:{kind}/{k}", v) for k, v in tags.items()))


# --- EC2 ----------------------------------------------------------------------------------------------

_EC2_PREFIX = {
    "vpc-": "vpc",
    "subnet-": "subnet",
    "sg-": "security-group",
    "rtb-": "route-table",
    "igw-": "internet-gateway",
    "i-": "instance",
    "nat-": "natgateway",
    "eipalloc-": "elastic-ip",
    "vpce-": "vpc-endpoint",
    "ami-": "image",
    "snap-": "snapshot",
    "lt-": "launch-template",
}

# Existing resources each EC2 action acts on: (resource type, how to find its id in the request).
_EC2_TARGETS: dict[str, list[tuple[str, Callable[[dict[str, Any]], list[str]]]]] = {}


def _param(name: str) -> Callable[[dict[str, Any]], list[str]]:
    return lambda p: [str(p[name])] if name in p else []


def _list(prefix: str) -> Callable[[dict[str, Any]], list[str]]:
    return lambda p: _indexed(p, prefix)


def _association(key: str) -> Callable[[dict[str, Any]], list[str]]:
    return lambda p: [str(p["__association"][key])] if p.get("__association", {}).get(key) else []


def _run_subnets(p: dict[str, Any]) -> list[str]:
    return [str(p[k]) for k in ("SubnetId", "NetworkInterface.1.SubnetId") if k in p]


def _run_groups(p: dict[str, Any]) -> list[str]:
    return _indexed(p, "SecurityGroupId") + _indexed(p, "NetworkInterface.1.SecurityGroupId")


_EC2_TARGETS.update(
    {
        "CreateSubnet": [("vpc", _param("VpcId"))],
        "CreateRouteTable": [("vpc", _param("VpcId"))],
        "CreateSecurityGroup": [("vpc", _param("VpcId"))],
        "ModifyVpcAttribute": [("vpc", _param("VpcId"))],
        "DeleteVpc": [("vpc", _param("VpcId"))],
        "ModifySubnetAttribute": [("subnet", _param("SubnetId"))],
        "DeleteSubnet": [("subnet", _param("SubnetId"))],
        "AttachInternetGateway": [("internet-gateway", _param("InternetGatewayId")), ("vpc", _param("VpcId"))],
        "DetachInternetGateway": [("internet-gateway", _param("InternetGatewayId")), ("vpc", _param("VpcId"))],
        "DeleteInternetGateway": [("internet-gateway", _param("InternetGatewayId"))],
        "CreateRoute": [("route-table", _param("RouteTableId"))],
        "DeleteRoute": [("route-table", _param("RouteTableId"))],
        "ReplaceRoute": [("route-table", _param("RouteTableId"))],
        "DeleteRouteTable": [("route-table", _param("RouteTableId"))],
        "AssociateRouteTable": [("route-table", _param("RouteTableId")), ("subnet", _param("SubnetId"))],
        # DisassociateRouteTable names only the association: annotate() looks up its table and subnet.
        "DisassociateRouteTable": [("route-table", _association("RouteTableId")), ("subnet", _association("SubnetId"))],
        "AuthorizeSecurityGroupIngress": [("security-group", _param("GroupId"))],
        "AuthorizeSecurityGroupEgress": [("security-group", _param("GroupId"))],
        "RevokeSecurityGroupIngress": [("security-group", _param("GroupId"))],
        "RevokeSecurityGroupEgress": [("security-group", _param("GroupId"))],
        "UpdateSecurityGroupRuleDescriptionsIngress": [("security-group", _param("GroupId"))],
        "UpdateSecurityGroupRuleDescriptionsEgress": [("security-group", _param("GroupId"))],
        "DeleteSecurityGroup": [("security-group", _param("GroupId"))],
        "TerminateInstances": [("instance", _list("InstanceId"))],
        "ModifyInstanceAttribute": [("instance", _param("InstanceId")), ("security-group", _list("GroupId"))],
        "AssociateIamInstanceProfile": [("instance", _param("InstanceId"))],
        "DeleteKeyPair": [("key-pair", _param("KeyName"))],
        "RunInstances": [
            ("subnet", _run_subnets),
            ("security-group", _run_groups),
            ("key-pair", _param("KeyName")),
            ("image", _param("ImageId")),
        ],
        "CreateNatGateway": [("subnet", _param("SubnetId")), ("elastic-ip", _param("AllocationId"))],
        "DeleteNatGateway": [("natgateway", _param("NatGatewayId"))],
        "ReleaseAddress": [("elastic-ip", _param("AllocationId"))],
        "CreateVpcEndpoint": [
            ("vpc", _param("VpcId")),
            ("subnet", _list("SubnetId")),
            ("security-group", _list("SecurityGroupId")),
        ],
        "DeleteVpcEndpoints": [("vpc-endpoint", _list("VpcEndpointId"))],
        "CreateTags": [("*", _list("ResourceId"))],
        "DeleteTags": [("*", _list("ResourceId"))],
        # bake.yml (roles/aws_image): the image of a builder instance, then the pruning of old images.
        "CreateImage": [("instance", _param("InstanceId"))],
        "DeregisterImage": [("image", _param("ImageId"))],
        "DeleteSnapshot": [("snapshot", _param("SnapshotId"))],
        # roles/aws_asg: the group's launch template (amazon.aws.ec2_launch_template names it by id).
        "CreateLaunchTemplateVersion": [("launch-template", _param("LaunchTemplateId"))],
        "ModifyLaunchTemplate": [("launch-template", _param("LaunchTemplateId"))],
        "DeleteLaunchTemplateVersions": [("launch-template", _param("LaunchTemplateId"))],
        "DeleteLaunchTemplate": [("launch-template", _param("LaunchTemplateId"))],
    }
)

# Resources an EC2 create call makes (their tags come from TagSpecification).
_EC2_CREATES = {
    "CreateVpc": ["vpc"],
    "CreateSubnet": ["subnet"],
    "CreateInternetGateway": ["internet-gateway"],
    "CreateRouteTable": ["route-table"],
    "CreateSecurityGroup": ["security-group"],
    "ImportKeyPair": ["key-pair"],
    "CreateKeyPair": ["key-pair"],
    "RunInstances": ["instance", "volume", "network-interface"],
    "CreateNatGateway": ["natgateway"],
    "AllocateAddress": ["elastic-ip"],
    "CreateVpcEndpoint": ["vpc-endpoint"],
    "CreateImage": ["image", "snapshot"],
    "CreateLaunchTemplate": ["launch-template"],
}


def _ec2_arn(call: ApiCall, rtype: str, rid: str) -> str:
    if rtype == "*":
        rtype = next((t for p, t in _EC2_PREFIX.items() if rid.startswith(p)), "unknown")
    if rtype in ("image", "snapshot"):  # no account in their ARNs
        return f"arn:aws:ec2:{call.region}::{rtype}/{rid}"
    return f"arn:aws:ec2:{call.region}:{ACCOUNT}:{rtype}/{rid}"


def _ec2(call: ApiCall) -> Iterator[Authorization]:
    p, action = call.params, call.action
    existing_tags: dict[str, dict[str, str]] = p.get("__tags", {})
    request_tags = _ec2_request_tags(p)
    for rtype in _EC2_CREATES.get(action, []):
        name = str(p["KeyName"]) if rtype == "key-pair" else NEW
        tags = request_tags.get(rtype, {})
        yield Authorization(call.iam_action, _ec2_arn(call, rtype, name), _tag_context("RequestTag", tags))
        if rtype in request_tags:
            # Tagging on creation needs ec2:CreateTags too, with ec2:CreateAction naming the create call.
            context = (("ec2:CreateAction", action), *_tag_context("RequestTag", tags))
            yield Authorization("ec2:CreateTags", _ec2_arn(call, rtype, name), tuple(sorted(context)))
    for rtype, ids in _EC2_TARGETS.get(action, []):
        for rid in ids(p):
            context = _tag_context("ResourceTag", existing_tags.get(rid, {}))
            if action in ("CreateTags", "DeleteTags"):
                context = tuple(sorted(context + _tag_context("RequestTag", _member_tags(p, "Tag"))))
            yield Authorization(call.iam_action, _ec2_arn(call, rtype, rid), context)
    if action == "RunInstances" and p.get("__instance_profile_role"):
        yield Authorization(
            "iam:PassRole",
            f"arn:aws:iam::{ACCOUNT}:role/{p['__instance_profile_role']}",
            (("iam:PassedToService", "ec2.amazonaws.com"),),
        )
    if action not in _EC2_CREATES and action not in _EC2_TARGETS:
        yield Authorization(call.iam_action, "*")


# --- Auto Scaling -------------------------------------------------------------------------------------


def _autoscaling(call: ApiCall) -> Iterator[Authorization]:
    """A group's ARN (its id is unknown to the request: NEW), with the request's tags on a create and the group's
    tags otherwise. Making or updating a group with a launch template is also ec2:RunInstances on the template and
    iam:PassRole of its instance profile's role (annotate reads both), as Auto Scaling checks the caller's right to
    launch what the template says."""
    p, action = call.params, call.action
    names = ([str(p["AutoScalingGroupName"])] if "AutoScalingGroupName" in p
             else sorted({str(v) for k, v in p.items() if k.startswith("Tags.member.") and k.endswith(".ResourceId")}))
    if action.startswith("Describe") or not names:
        yield Authorization(call.iam_action, "*")
        return
    request_tags = _member_tags(p, "Tags.member")
    existing: dict[str, dict[str, str]] = p.get("__tags", {})
    for name in names:
        arn = f"arn:aws:autoscaling:{call.region}:{ACCOUNT}:autoScalingGroup:{NEW}:autoScalingGroupName/{name}"
        if action == "CreateAutoScalingGroup":
            yield Authorization(call.iam_action, arn, _tag_context("RequestTag", request_tags))
            if request_tags:
                yield Authorization("autoscaling:CreateOrUpdateTags", arn, _tag_context("RequestTag", request_tags))
        else:
            context = _tag_context("ResourceTag", existing.get(name, {}))
            if action in ("CreateOrUpdateTags", "DeleteTags"):
                context = tuple(sorted(context + _tag_context("RequestTag", request_tags)))
            yield Authorization(call.iam_action, arn, context)
    template = p.get("__launch_template")
    if template:
        yield Authorization("ec2:RunInstances", f"arn:aws:ec2:{call.region}:{ACCOUNT}:launch-template/{template['id']}",
                            _tag_context("ResourceTag", template["tags"]))
        if template.get("role"):
            yield Authorization("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/{template['role']}",
                                (("iam:PassedToService", "ec2.amazonaws.com"),))


def _autoscaling_notes(call: ApiCall, client: Callable[[str], Any]) -> dict[str, Any]:
    """The tags of the group a call acts on; for a group made or updated with a launch template, the template's id,
    tags and instance profile's role."""
    p = call.params
    notes: dict[str, Any] = {}
    name = p.get("AutoScalingGroupName")
    if name and not call.action.startswith("Describe"):
        groups = client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[str(name)])[
            "AutoScalingGroups"]  # fmt: skip
        notes["__tags"] = {str(name): {t["Key"]: t["Value"] for t in groups[0]["Tags"]}} if groups else {}
    template_id, template_name = p.get("LaunchTemplate.LaunchTemplateId"), p.get("LaunchTemplate.LaunchTemplateName")
    if call.action in ("CreateAutoScalingGroup", "UpdateAutoScalingGroup") and (template_id or template_name):
        ec2 = client("ec2")
        found = ec2.describe_launch_templates(**({"LaunchTemplateIds": [str(template_id)]} if template_id
                                                 else {"LaunchTemplateNames": [str(template_name)]}))  # fmt: skip
        template = found["LaunchTemplates"][0]
        version = str(p.get("LaunchTemplate.Version") or "$Default")
        data = ec2.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"], Versions=[version])[
            "LaunchTemplateVersions"][0]["LaunchTemplateData"]  # fmt: skip
        profile = data.get("IamInstanceProfile", {})
        role = ""
        if profile:
            profile_name = profile.get("Name") or profile["Arn"].rsplit("/", 1)[-1]
            roles = client("iam").get_instance_profile(InstanceProfileName=profile_name)["InstanceProfile"]["Roles"]
            role = roles[0]["RoleName"] if roles else ""
        notes["__launch_template"] = {"id": template["LaunchTemplateId"], "role": role,
                                      "tags": {t["Key"]: t["Value"] for t in template.get("Tags", [])}}
    return notes


# --- ELBv2, ElastiCache, SSM, IAM ---------------------------------------------------------------------


def _elb(call: ApiCall) -> Iterator[Authorization]:
    p, action = call.params, call.action
    base = f"arn:aws:elasticloadbalancing:{call.region}:{ACCOUNT}"
    tags = _member_tags(p, "Tags.member")
    created = {
        "CreateTargetGroup": f"{base}:targetgroup/{p.get('Name')}/{NEW}",
        "CreateLoadBalancer": f"{base}:loadbalancer/app/{p.get('Name')}/{NEW}",
    }
    arns = [str(p[k]) for k in ("TargetGroupArn", "LoadBalancerArn", "ListenerArn", "RuleArn") if k in p]
    arns += _indexed(p, "ResourceArns.member")
    if action in created:
        yield Authorization(call.iam_action, created[action], _tag_context("RequestTag", tags))
        if tags:
            context = (("elasticloadbalancing:CreateAction", action), *_tag_context("RequestTag", tags))
            yield Authorization("elasticloadbalancing:AddTags", created[action], tuple(sorted(context)))
    elif action == "CreateListener":
        lb = str(p["LoadBalancerArn"])
        yield Authorization(call.iam_action, lb)
        yield Authorization(call.iam_action, lb.replace(":loadbalancer/", ":listener/") + f"/{NEW}")
    elif arns:
        for arn in arns:
            yield Authorization(call.iam_action, arn, _tag_context("RequestTag", tags) if tags else ())
    else:
        yield Authorization(call.iam_action, "*")


def _elasticache(call: ApiCall) -> Iterator[Authorization]:
    p, action = call.params, call.action
    base = f"arn:aws:elasticache:{call.region}:{ACCOUNT}"
    resources = []
    if "ReplicationGroupId" in p and not action.startswith("Describe"):
        resources.append(f"{base}:replicationgroup:{p['ReplicationGroupId']}")
    if "CacheSubnetGroupName" in p and not action.startswith("Describe"):
        resources.append(f"{base}:subnetgroup:{p['CacheSubnetGroupName']}")
    if "ResourceName" in p:
        resources.append(str(p["ResourceName"]))
    tags = _member_tags(p, "Tags.Tag")
    for arn in resources:
        yield Authorization(call.iam_action, arn, _tag_context("RequestTag", tags))
    if action == "CreateReplicationGroup" and tags:
        yield Authorization("elasticache:AddTagsToResource", resources[0], _tag_context("RequestTag", tags))
    if not resources:
        yield Authorization(call.iam_action, "*")


def _ssm(call: ApiCall) -> Iterator[Authorization]:
    """A parameter's ARN: Name (or ResourceId), each of Names (GetParameters, DeleteParameters), or the Path of
    GetParametersByPath (IAM checks the path's own ARN); "*" for a call that names none (DescribeParameters)."""
    p = call.params
    names = [str(n) for n in p.get("Names") or []] or [str(p.get("Name") or p.get("ResourceId") or p.get("Path") or "")]
    names = [n for n in names if n]
    if not names:
        yield Authorization(call.iam_action, "*")
        return
    tags = {t["Key"]: t["Value"] for t in p.get("Tags", [])}
    for name in names:
        # Public parameters (/aws/service/...) belong to no account.
        account = "" if name.startswith("/aws/") else ACCOUNT
        arn = f"arn:aws:ssm:{call.region}:{account}:parameter{name if name.startswith('/') else '/' + name}"
        yield Authorization(call.iam_action, arn, _tag_context("RequestTag", tags))
        if call.action == "PutParameter" and tags:
            yield Authorization("ssm:AddTagsToResource", arn, _tag_context("RequestTag", tags))


def _acm(call: ApiCall) -> Iterator[Authorization]:
    """ACM's reads and RequestCertificate name no resource IAM could scope (a new certificate has no ARN yet):
    "*", with the request's tags; requesting with tags needs acm:AddTagsToCertificate too."""
    tags = {t["Key"]: t["Value"] for t in call.params.get("Tags", [])}
    yield Authorization(call.iam_action, "*", _tag_context("RequestTag", tags))
    if call.action == "RequestCertificate" and tags:
        yield Authorization("acm:AddTagsToCertificate", "*", _tag_context("RequestTag", tags))


def _iam(call: ApiCall) -> Iterator[Authorization]:
    """A role's or an instance profile's ARN (an action naming both, like AddRoleToInstanceProfile, is checked on
    both); AttachRolePolicy carries the policy's ARN (iam:PolicyARN); creating with tags needs the Tag action too."""
    p = call.params
    resources = []
    if "InstanceProfileName" in p:
        resources.append(f"arn:aws:iam::{ACCOUNT}:instance-profile/{p['InstanceProfileName']}")
    if "RoleName" in p:
        resources.append(f"arn:aws:iam::{ACCOUNT}:role/{p['RoleName']}")
    context = (("iam:PolicyARN", str(p["PolicyArn"])),) if "PolicyArn" in p else ()
    for arn in resources:
        yield Authorization(call.iam_action, arn, context)
    tag_action = {"CreateRole": "iam:TagRole", "CreateInstanceProfile": "iam:TagInstanceProfile"}.get(call.action)
    if tag_action and _member_tags(p, "Tags.member") and resources:
        yield Authorization(tag_action, resources[-1])
    if not resources:
        yield Authorization(call.iam_action, "*")


# --- S3 and CloudFront (REST) -------------------------------------------------------------------------

# S3 operations whose IAM action has another name (service authorization reference, "Actions defined by
# Amazon S3"); every other operation is authorized as s3:<operation>. A value may name several actions.
S3_ACTIONS: dict[str, tuple[str, ...]] = {
    "HeadBucket": ("s3:ListBucket",),
    "ListObjects": ("s3:ListBucket",),
    "ListObjectsV2": ("s3:ListBucket",),
    "ListObjectVersions": ("s3:ListBucketVersions",),
    "ListBuckets": ("s3:ListAllMyBuckets",),
    "ListMultipartUploads": ("s3:ListBucketMultipartUploads",),
    "ListParts": ("s3:ListMultipartUploadParts",),
    "HeadObject": ("s3:GetObject",),
    "CreateMultipartUpload": ("s3:PutObject",),
    "UploadPart": ("s3:PutObject",),
    "CompleteMultipartUpload": ("s3:PutObject",),
    "AbortMultipartUpload": ("s3:AbortMultipartUpload",),
    "GetBucketEncryption": ("s3:GetEncryptionConfiguration",),
    "PutBucketEncryption": ("s3:PutEncryptionConfiguration",),
    "DeleteBucketEncryption": ("s3:PutEncryptionConfiguration",),
    "GetPublicAccessBlock": ("s3:GetBucketPublicAccessBlock",),
    "PutPublicAccessBlock": ("s3:PutBucketPublicAccessBlock",),
    "DeletePublicAccessBlock": ("s3:PutBucketPublicAccessBlock",),
    "DeleteBucketOwnershipControls": ("s3:PutBucketOwnershipControls",),
    "DeleteBucketTagging": ("s3:PutBucketTagging",),
    "GetBucketAccelerateConfiguration": ("s3:GetAccelerateConfiguration",),
    "PutBucketAccelerateConfiguration": ("s3:PutAccelerateConfiguration",),
    "GetObjectLockConfiguration": ("s3:GetBucketObjectLockConfiguration",),
    "PutObjectLockConfiguration": ("s3:PutBucketObjectLockConfiguration",),
    "GetBucketInventoryConfiguration": ("s3:GetInventoryConfiguration",),
    "ListBucketInventoryConfigurations": ("s3:GetInventoryConfiguration",),
    "GetBucketCors": ("s3:GetBucketCORS",),
    "PutBucketCors": ("s3:PutBucketCORS",),
    "DeleteBucketCors": ("s3:PutBucketCORS",),
    "GetBucketLifecycleConfiguration": ("s3:GetLifecycleConfiguration",),
    "PutBucketLifecycleConfiguration": ("s3:PutLifecycleConfiguration",),
    "DeleteBucketLifecycle": ("s3:PutLifecycleConfiguration",),
    "GetBucketNotificationConfiguration": ("s3:GetBucketNotification",),
    "PutBucketNotificationConfiguration": ("s3:PutBucketNotification",),
    "GetBucketReplication": ("s3:GetReplicationConfiguration",),
    "PutBucketReplication": ("s3:PutReplicationConfiguration",),
    "DeleteBucketWebsite": ("s3:DeleteBucketWebsite",),
    "CopyObject": ("s3:PutObject",),  # and s3:GetObject on the source (below)
    "DeleteObjects": ("s3:DeleteObject",),  # per object (below)
}
# With a version id the object actions are the *Version ones.
_S3_VERSIONED = {
    "s3:GetObject": "s3:GetObjectVersion",
    "s3:DeleteObject": "s3:DeleteObjectVersion",
    "s3:GetObjectTagging": "s3:GetObjectVersionTagging",
    "s3:PutObjectTagging": "s3:PutObjectVersionTagging",
    "s3:GetObjectAcl": "s3:GetObjectVersionAcl",
    "s3:PutObjectAcl": "s3:PutObjectVersionAcl",
}
# IAM actions of S3 that are no API operation of their own (test_iam_policy's validity check accepts them).
S3_PERMISSION_ONLY = {a for actions in S3_ACTIONS.values() for a in actions} | set(_S3_VERSIONED.values())


def _s3(call: ApiCall) -> Iterator[Authorization]:
    """Bucket operations on arn:aws:s3:::BUCKET, object operations on arn:aws:s3:::BUCKET/KEY (DeleteObjects:
    each object it names; CopyObject: s3:GetObject on the source too); ListBuckets names no bucket."""
    p, operation = call.params, call.action
    actions = S3_ACTIONS.get(operation, (call.iam_action,))
    bucket = p.get("Bucket")
    if not bucket:
        for action in actions:
            yield Authorization(action, "*")
        return
    if operation == "DeleteObjects":
        for obj in p.get("Objects", []):
            action = "s3:DeleteObjectVersion" if obj.get("VersionId") else "s3:DeleteObject"
            yield Authorization(action, f"arn:aws:s3:::{bucket}/{obj.get('Key', '')}")
        return
    if "Key" not in p:
        for action in actions:
            yield Authorization(action, f"arn:aws:s3:::{bucket}")
        return
    versioned = bool(p.get("versionId"))
    for action in actions:
        action = _S3_VERSIONED.get(action, action) if versioned else action
        yield Authorization(action, f"arn:aws:s3:::{bucket}/{p['Key']}")
    if operation == "CopyObject":
        source, _, version = str(p.get("__copy_source", "")).lstrip("/").partition("?versionId=")
        yield Authorization("s3:GetObjectVersion" if version else "s3:GetObject", f"arn:aws:s3:::{source}")


def _cloudfront_arn(call: ApiCall) -> str:
    """The ARN of the distribution or origin access control a CloudFront call names ("" when none)."""
    p, operation = call.params, call.action
    if "Resource" in p:  # TagResource, UntagResource, ListTagsForResource
        return str(p["Resource"])
    if "DistributionId" in p:  # invalidations
        return f"arn:aws:cloudfront::{ACCOUNT}:distribution/{p['DistributionId']}"
    if "Id" in p and "OriginAccessControl" in operation:
        return f"arn:aws:cloudfront::{ACCOUNT}:origin-access-control/{p['Id']}"
    if "Id" in p and "Distribution" in operation:
        return f"arn:aws:cloudfront::{ACCOUNT}:distribution/{p['Id']}"
    return ""


def _cloudfront(call: ApiCall) -> Iterator[Authorization]:
    """A distribution's or an OAC's ARN, with the distribution's tags (aws:ResourceTag, read by annotate) and
    the request's (aws:RequestTag); a create names a new resource; CreateDistributionWithTags is authorized as
    cloudfront:CreateDistribution plus cloudfront:TagResource; the List calls name no resource ("*")."""
    p, operation = call.params, call.action
    request_tags = _tag_context("RequestTag", p.get("Tags", {})) if p.get("Tags") else ()
    if operation in ("CreateDistribution", "CreateDistributionWithTags"):
        new = f"arn:aws:cloudfront::{ACCOUNT}:distribution/{NEW}"
        yield Authorization("cloudfront:CreateDistribution", new, request_tags)
        if operation == "CreateDistributionWithTags":
            yield Authorization("cloudfront:TagResource", new, request_tags)
        return
    if operation == "CreateOriginAccessControl":
        yield Authorization(call.iam_action, f"arn:aws:cloudfront::{ACCOUNT}:origin-access-control/{NEW}")
        return
    arn = _cloudfront_arn(call)
    if not arn:
        yield Authorization(call.iam_action, "*")
        return
    context = (*request_tags, *_tag_context("ResourceTag", p.get("__tags", {})))
    yield Authorization(call.iam_action, arn, tuple(sorted(context)))


def _cloudfront_notes(call: ApiCall, client: Callable[[str], Any]) -> dict[str, Any]:
    """__tags: the tags the distribution a CloudFront call acts on carries before it."""
    arn = _cloudfront_arn(call)
    if ":distribution/" not in arn or call.action.startswith("CreateDistribution"):
        return {}
    try:
        items = client("cloudfront").list_tags_for_resource(Resource=arn)["Tags"].get("Items") or []
    except botocore.exceptions.ClientError:  # no such distribution: IAM would see no tags
        items = []
    return {"__tags": {t["Key"]: t.get("Value", "") for t in items}}


def _json_tags(value: Any) -> dict[str, str]:
    """Tags of a JSON request: [{"Key": k, "Value": v}] (CloudWatch) or {k: v} (CloudWatch Logs)."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return {str(t["Key"]): str(t.get("Value", "")) for t in value or []}


def _cloudwatch(call: ApiCall) -> Iterator[Authorization]:
    """An alarm's or a dashboard's ARN (DeleteAlarms and DeleteDashboards: each one named); PutMetricAlarm with
    tags needs cloudwatch:TagResource too; DescribeAlarms names no resource ("*")."""
    p = call.params
    alarm = f"arn:aws:cloudwatch:{call.region}:{ACCOUNT}:alarm:"
    dashboard = f"arn:aws:cloudwatch::{ACCOUNT}:dashboard/"
    arns = [alarm + str(p["AlarmName"])] if "AlarmName" in p else []
    arns += [alarm + str(name) for name in p.get("AlarmNames", [])] if call.action == "DeleteAlarms" else []
    arns += [dashboard + str(p["DashboardName"])] if "DashboardName" in p else []
    arns += [dashboard + str(name) for name in p.get("DashboardNames", [])]
    arns += [str(p["ResourceARN"])] if "ResourceARN" in p else []
    tags = _tag_context("RequestTag", _json_tags(p.get("Tags")))
    for arn in arns:
        yield Authorization(call.iam_action, arn, tags)
    if call.action == "PutMetricAlarm" and p.get("Tags"):
        yield Authorization("cloudwatch:TagResource", arns[0], tags)
    if not arns:
        yield Authorization(call.iam_action, "*")


def _sns(call: ApiCall) -> Iterator[Authorization]:
    """The topic's ARN (a subscription's: its topic's); CreateTopic with tags needs sns:TagResource too;
    ListTopics names no resource ("*")."""
    p = call.params
    arn = str(p.get("TopicArn") or p.get("ResourceArn") or "")
    if call.action == "CreateTopic":
        arn = f"arn:aws:sns:{call.region}:{ACCOUNT}:{p['Name']}"
    if "SubscriptionArn" in p:
        arn = str(p["SubscriptionArn"]).rsplit(":", 1)[0]
    tags = _tag_context("RequestTag", _member_tags(p, "Tags.member"))
    if not arn:
        yield Authorization(call.iam_action, "*")
        return
    yield Authorization(call.iam_action, arn, tags)
    if call.action == "CreateTopic" and tags:
        yield Authorization("sns:TagResource", arn, tags)


def _logs(call: ApiCall) -> Iterator[Authorization]:
    """The log group's ARN; CreateLogGroup with tags needs logs:TagResource too; DescribeLogGroups: "*"."""
    p = call.params
    name = p.get("logGroupName")
    if not name or call.action == "DescribeLogGroups":
        yield Authorization(call.iam_action, "*")
        return
    arn = f"arn:aws:logs:{call.region}:{ACCOUNT}:log-group:{name}"
    tags = _tag_context("RequestTag", _json_tags(p.get("tags")))
    yield Authorization(call.iam_action, arn, tags)
    if call.action == "CreateLogGroup" and tags:
        yield Authorization("logs:TagResource", arn, tags)


ACCOUNT = "123456789012"  # moto's account for every access key it did not issue itself
_BY_SERVICE: dict[str, Callable[[ApiCall], Iterator[Authorization]]] = {
    "ec2": _ec2,
    "elasticloadbalancing": _elb,
    "elasticache": _elasticache,
    "ssm": _ssm,
    "iam": _iam,
    "acm": _acm,
    "s3": _s3,
    "cloudfront": _cloudfront,
    "cloudwatch": _cloudwatch,
    "sns": _sns,
    "logs": _logs,
    "autoscaling": _autoscaling,
}


def authorizations(call: ApiCall) -> list[Authorization]:
    """What IAM checks for this call (nothing for actions that need no permission)."""
    if call.iam_action in ALWAYS_ALLOWED:
        return []
    by_service = _BY_SERVICE.get(call.service)
    return list(by_service(call)) if by_service else [Authorization(call.iam_action, "*")]


# --- the state before a call: tags of the resources it acts on ----------------------------------------


def annotate(call: ApiCall, client: Callable[[str], Any]) -> dict[str, Any]:
    """Facts IAM would use that the request does not carry, read from moto before the call runs.

    Returns extra keys for call.params: __tags {resource id or key name: tags} (CloudFront: the distribution's
    tags),
    __association (DisassociateRouteTable) and __instance_profile_role (RunInstances).
    """
    notes: dict[str, Any] = {}
    if call.service == "cloudfront":
        return _cloudfront_notes(call, client)
    if call.service == "autoscaling":
        return _autoscaling_notes(call, client)
    if call.service != "ec2" or call.action.startswith("Describe"):
        return notes
    p = call.params
    ec2 = client("ec2")
    if call.action == "DisassociateRouteTable":
        tables = ec2.describe_route_tables(
            Filters=[{"Name": "association.route-table-association-id", "Values": [str(p["AssociationId"])]}]
        )["RouteTables"]
        for table in tables:
            for assoc in table.get("Associations", []):
                if assoc.get("RouteTableAssociationId") == p["AssociationId"]:
                    notes["__association"] = {"RouteTableId": table["RouteTableId"], "SubnetId": assoc.get("SubnetId")}
    ids = [rid for _, find in _EC2_TARGETS.get(call.action, []) for rid in find({**p, **notes})]
    tags: dict[str, dict[str, str]] = {}
    key_names = [rid for rtype, find in _EC2_TARGETS.get(call.action, []) if rtype == "key-pair" for rid in find(p)]
    for name in key_names:
        pairs = ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [name]}])["KeyPairs"]
        tags[name] = {t["Key"]: t["Value"] for t in (pairs[0].get("Tags") or [])} if pairs else {}
    # RunInstances names a public AMI (Canonical's): not ours, no tags of ours to read.
    resource_ids = [rid for rid in ids if rid not in key_names
                    and not (rid.startswith("ami-") and call.action == "RunInstances")]
    if resource_ids:
        described = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": resource_ids}])["Tags"]
        for rid in resource_ids:
            tags[rid] = {t["Key"]: t["Value"] for t in described if t["ResourceId"] == rid}
    templates = [rid for rid in resource_ids if rid.startswith("lt-")]
    if templates:  # a launch template's tags are on the template (moto's DescribeTags does not list them)
        for template in ec2.describe_launch_templates(LaunchTemplateIds=templates)["LaunchTemplates"]:
            tags[template["LaunchTemplateId"]] = {t["Key"]: t["Value"] for t in template.get("Tags", [])}
    notes["__tags"] = tags
    profile = p.get("IamInstanceProfile.Arn") or p.get("IamInstanceProfile.Name")
    if call.action == "RunInstances" and profile:
        name = str(profile).rsplit("/", 1)[-1]
        roles = client("iam").get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Roles"]
        notes["__instance_profile_role"] = roles[0]["RoleName"] if roles else ""
    return notes


# --- the policy ---------------------------------------------------------------------------------------


@dataclass
class Policy:
    statements: list[dict[str, Any]]

    @classmethod
    def load(cls, path: Path) -> Policy:
        document = json.loads(path.read_text())
        return cls(document["Statement"])

    def actions(self) -> set[str]:
        return {a for s in self.statements if s["Effect"] == "Allow" for a in _as_list(s["Action"])}

    def allows(self, auth: Authorization) -> bool:
        matching = [s for s in self.statements if _statement_matches(s, auth)]
        return any(s["Effect"] == "Allow" for s in matching) and not any(s["Effect"] == "Deny" for s in matching)


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _statement_matches(statement: dict[str, Any], auth: Authorization) -> bool:
    actions = _as_list(statement["Action"])
    if not any(fnmatchcase(auth.action.lower(), a.lower()) for a in actions):
        return False
    resources = _as_list(statement["Resource"])
    if not any(r == "*" or fnmatchcase(auth.resource, r) for r in resources):
        return False
    context = dict(auth.context)
    for operator, tests in statement.get("Condition", {}).items():
        for key, wanted in tests.items():
            if not _condition(operator, context.get(key), _as_list(wanted)):
                return False
    return True


def _condition(operator: str, value: str | None, wanted: list[str]) -> bool:
    if operator == "StringEquals":
        return value is not None and value in wanted
    if operator == "StringLike":
        return value is not None and any(fnmatchcase(value, w) for w in wanted)
    if operator == "Null":  # "true": the key is absent (a new resource has no aws:ResourceTag), "false": present
        return (value is None) == (wanted[0].lower() == "true")
    raise ValueError(f"the policy check does not know the condition operator {operator}: teach iam_check.py")
