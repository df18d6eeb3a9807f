#!/usr/bin/python
# Copyright: ec2-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: manage one ElastiCache (Redis OSS / Valkey) replication group, cluster mode disabled."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: aws_cache_replication_group
short_description: Manage an ElastiCache replication group (one shard, primary plus replicas)
description:
  - Creates, modifies in place, deletes or only looks up an Amazon ElastiCache replication group with
    cluster mode disabled (one node group, that is a primary and its replicas), the layout that gives one
    primary endpoint for every application host.
  - Settings AWS can change in place are modified with C(ApplyImmediately) (description, node type, engine,
    engine version, automatic failover, Multi-AZ, security groups, tags, AUTH token rotation).
  - Settings AWS cannot change in place (O(transit_encryption), O(at_rest_encryption), O(port),
    O(cache_subnet_group_name)) make the module fail and name the option, instead of replacing the group.
  - The number of cache clusters is only used at creation; a different count on an existing group is
    reported as a warning (AWS changes it with IncreaseReplicaCount/DecreaseReplicaCount, not done here).
  - The group is found by O(replication_group_id); a group whose status is C(deleting) counts as absent.
  - Used by the role C(ec2_fleet.fleet.aws_cache). The module is in the collection's action group
    C(ec2_fleet.fleet.aws), which extends C(amazon.aws.aws), so one C(module_defaults) entry
    C(group/ec2_fleet.fleet.aws) gives it the same connection settings as the amazon.aws modules.
version_added: 1.0.0
author: ec2-fleet contributors
options:
  state:
    description:
      - V(present) creates or updates the group, V(absent) deletes it, V(query) only looks it up and never
        changes anything (RV(exists) tells whether it was found).
    type: str
    choices: [present, absent, query]
    default: present
  replication_group_id:
    description:
      - Identifier of the replication group (1-40 characters, letters, digits and hyphens, starts with a
        letter, no two consecutive hyphens, no trailing hyphen). AWS stores it in lower case.
    type: str
    required: true
    aliases: [id, name]
  description:
    description: Description of the group. Defaults to the identifier at creation.
    type: str
  node_type:
    description: Cache node type, for example V(cache.t4g.small). Required to create.
    type: str
  engine:
    description: Engine, V(redis) (Redis OSS) or V(valkey).
    type: str
    choices: [redis, valkey]
    default: redis
  engine_version:
    description:
      - Engine version, for example V(7.1). An existing group matches when its version equals this value or
        starts with it followed by a dot (V(7.1) matches V(7.1.0)). Omitted means the AWS default at creation
        and no check later.
    type: str
  num_cache_clusters:
    description:
      - Number of cache clusters (primary plus replicas) at creation, 1-6.
      - Must be 2 or more with O(multi_az) or O(automatic_failover).
    type: int
    default: 2
  multi_az:
    description: Multi-AZ with automatic failover to a replica in another Availability Zone.
    type: bool
    default: true
  automatic_failover:
    description: Automatic failover to a replica when the primary fails. Required by O(multi_az).
    type: bool
    default: true
  transit_encryption:
    description: TLS between clients and the cache. Create time only.
    type: bool
    default: true
  at_rest_encryption:
    description: Encryption of data at rest. Create time only.
    type: bool
    default: true
  auth_token:
    description:
      - "Redis AUTH token (password). Only with O(transit_encryption). 16-128 characters, letters, digits and
        the special characters C(! & # $ ^ < > -) only (the AWS CreateReplicationGroup rule)."
      - Used at creation. On an existing group AWS never returns it, so it is only sent again when
        O(auth_token_update_strategy) is set.
    type: str
  auth_token_update_strategy:
    description:
      - Send O(auth_token) to an existing group with this strategy. V(ROTATE) adds it and keeps the old token
        valid until a later V(SET); V(SET) makes it the only valid token. Every run with this option set
        reports a change (the current token cannot be read back), so set it for one run, then remove it.
    type: str
    choices: [ROTATE, SET]
  snapshot_retention_limit:
    description:
      - Days AWS keeps the automatic daily snapshots of the group (0-35); V(0) turns automatic snapshots off.
        Omitted means the AWS default at creation (0) and no check later.
    type: int
  snapshot_window:
    description:
      - Daily time range (UTC) of the automatic snapshot, like V(03:00-04:00), at least 60 minutes. Omitted means
        AWS chooses at creation and no check later.
    type: str
  port:
    description: Port the nodes listen on. Create time only.
    type: int
    default: 6379
  cache_subnet_group_name:
    description: Name of an existing cache subnet group (the VPC subnets). Create time only.
    type: str
  security_group_ids:
    description: VPC security group IDs. Omitted means the VPC default at creation and no check later.
    type: list
    elements: str
  apply_immediately:
    description: Apply modifications now rather than in the next maintenance window.
    type: bool
    default: true
  wait:
    description:
      - Wait until the group is C(available) after a create or modify, or gone after a delete. Without it,
        a delete only starts the deletion.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait, at most.
    type: int
    default: 1800
  wait_delay:
    description: Seconds between two status polls while waiting.
    type: int
    default: 15
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
notes:
  - Supports check mode (reports what would change, calls only Describe/List APIs) and diff mode
    (before/after of the settings).
  - The AUTH token is never returned by AWS and never shown by this module.
"""

EXAMPLES = r"""
- name: Create or update the shared cache
  ec2_fleet.fleet.aws_cache_replication_group:
    replication_group_id: fleet-prod
    description: ec2-fleet shared cache
    node_type: cache.t4g.small
    engine_version: "7.1"
    num_cache_clusters: 2
    multi_az: true
    automatic_failover: true
    transit_encryption: true
    at_rest_encryption: true
    auth_token: "{{ vault_cache_auth_token }}"
    cache_subnet_group_name: fleet-prod
    security_group_ids: [sg-0123456789abcdef0]
    tags:
      Project: ec2-fleet
      Environment: prod
  register: cache

- name: Rotate the AUTH token (run once, then drop auth_token_update_strategy)
  ec2_fleet.fleet.aws_cache_replication_group:
    replication_group_id: fleet-prod
    node_type: cache.t4g.small
    auth_token: "{{ vault_cache_auth_token_new }}"
    auth_token_update_strategy: ROTATE

- name: Look the group up without changing anything
  ec2_fleet.fleet.aws_cache_replication_group:
    replication_group_id: fleet-prod
    state: query
  register: cache

- name: Delete the group and wait until it is gone
  ec2_fleet.fleet.aws_cache_replication_group:
    replication_group_id: fleet-prod
    state: absent
"""

RETURN = r"""
exists:
  description: Whether the group exists after the run (in check mode, whether it would).
  returned: always
  type: bool
replication_group:
  description: The group, its endpoints and its settings; empty when it does not exist.
  returned: always
  type: dict
  contains:
    replication_group_id:
      description: Identifier.
      type: str
      sample: fleet-prod
    arn:
      description: ARN (null before creation in check mode).
      type: str
    status:
      description: AWS status (creating, available, modifying, ...); C(would be created) in check mode.
      type: str
      sample: available
    description:
      description: Description.
      type: str
    primary_endpoint:
      description: Address and port of the primary (null while it has none).
      type: dict
      sample: {"address": "master.fleet-prod.abc123.use1.cache.amazonaws.com", "port": 6379}
    reader_endpoint:
      description: Address and port spread over the replicas (null where AWS or the API emulator gives none).
      type: dict
    member_clusters:
      description: Cache cluster IDs of the primary and its replicas.
      type: list
      elements: str
    node_type:
      description: Cache node type.
      type: str
    engine:
      description: Engine.
      type: str
    engine_version:
      description: Engine version of the first member cluster (null when it cannot be read).
      type: str
    num_cache_clusters:
      description: Number of member clusters.
      type: int
    multi_az:
      description: Multi-AZ enabled.
      type: bool
    automatic_failover:
      description: Automatic failover enabled (or being enabled).
      type: bool
    transit_encryption:
      description: TLS in transit.
      type: bool
    at_rest_encryption:
      description: Encryption at rest.
      type: bool
    auth_token_enabled:
      description: Whether an AUTH token is required.
      type: bool
    port:
      description: Port.
      type: int
    snapshot_retention_limit:
      description: Days automatic snapshots are kept (0 is none).
      type: int
    snapshot_window:
      description: Daily UTC time range of the automatic snapshot.
      type: str
    cache_subnet_group_name:
      description: Subnet group of the first member cluster (null when it cannot be read).
      type: str
    security_group_ids:
      description: Security groups of the first member cluster (null when they cannot be read).
      type: list
      elements: str
    tags:
      description: Tags.
      type: dict
diff:
  description: Before and after of the settings (with C(--diff)).
  returned: when diff mode is on
  type: dict
"""

# Ansible modules keep their imports below the documentation blocks.
import re  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (  # noqa: E402
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
    compare_aws_tags,
)
from ansible_collections.ec2_fleet.fleet.plugins.module_utils.fleet_aws import aws_errors, warn  # noqa: E402

ID_RE = re.compile(r"^[A-Za-z](?!.*--)[A-Za-z0-9-]{0,39}(?<!-)$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9!&#$^<>-]{16,128}$")
GONE_STATUSES = ("deleting", "deleted")
# Settings that AWS fixes at creation: option name -> name of the same setting in describe_group().
IMMUTABLE = {
    "transit_encryption": "transit_encryption",
    "at_rest_encryption": "at_rest_encryption",
    "port": "port",
    "cache_subnet_group_name": "cache_subnet_group_name",
}


def fail_aws(module: AnsibleAWSModule, err: Exception, action: str) -> None:
    """Fail with the AWS error code and message ("An error occurred (Code) when calling ...: ...")."""
    module.fail_json_aws(err, msg=f"{action} failed")


class ReplicationGroups:
    """The Describe/Create/Modify/Delete calls for one replication group, with check mode honoured."""

    def __init__(self, module: AnsibleAWSModule) -> None:
        self.module = module
        self.group_id = module.params["replication_group_id"].lower()
        self.client = module.client("elasticache", retry_decorator=AWSRetry.jittered_backoff(retries=8))

    # -- reading ---------------------------------------------------------------------------------------
    def raw(self) -> dict[str, Any] | None:
        try:
            groups = self.client.describe_replication_groups(aws_retry=True, ReplicationGroupId=self.group_id)
        except is_boto3_error_code("ReplicationGroupNotFoundFault"):
            return None
        except aws_errors() as err:  # pylint: disable=duplicate-except
            fail_aws(self.module, err, f"Describing replication group {self.group_id}")
        found = groups.get("ReplicationGroups") or []
        return found[0] if found else None

    def member(self, cluster_id: str) -> dict[str, Any] | None:
        """The first member cache cluster: AWS keeps engine version, subnet group and security groups there.

        moto 5.2.5 creates no CacheCluster records for replication group members, so this is None there and
        those three settings are neither reported nor compared (the module cannot see them).
        """
        try:
            clusters = self.client.describe_cache_clusters(aws_retry=True, CacheClusterId=cluster_id)
        except is_boto3_error_code("CacheClusterNotFound"):
            return None
        except aws_errors() as err:  # pylint: disable=duplicate-except
            fail_aws(self.module, err, f"Describing cache cluster {cluster_id}")
        found = clusters.get("CacheClusters") or []
        return found[0] if found else None

    def tags(self, arn: str | None) -> dict[str, str]:
        if not arn:
            return {}
        try:
            listed = self.client.list_tags_for_resource(aws_retry=True, ResourceName=arn)
        except aws_errors() as err:
            fail_aws(self.module, err, f"Listing tags of {arn}")
        return boto3_tag_list_to_ansible_dict(listed.get("TagList", []))

    def describe(self) -> dict[str, Any] | None:
        """The group as this module reports it (snake_case settings), or None when it does not exist."""
        raw = self.raw()
        if raw is None:
            return None
        node_groups = raw.get("NodeGroups") or [{}]
        primary = node_groups[0].get("PrimaryEndpoint")
        reader = node_groups[0].get("ReaderEndpoint")
        members = raw.get("MemberClusters") or []
        member = self.member(members[0]) if members and raw.get("Status") not in GONE_STATUSES else None
        port = (primary or {}).get("Port")
        if port is None and member:
            port = (member.get("CacheNodes") or [{}])[0].get("Endpoint", {}).get("Port")
        return {
            "replication_group_id": raw["ReplicationGroupId"],
            "arn": raw.get("ARN"),
            "status": raw.get("Status"),
            "description": raw.get("Description"),
            "primary_endpoint": {"address": primary["Address"], "port": primary["Port"]} if primary else None,
            "reader_endpoint": {"address": reader["Address"], "port": reader["Port"]} if reader else None,
            "member_clusters": members,
            "node_type": raw.get("CacheNodeType"),
            "engine": raw.get("Engine", "redis"),
            "engine_version": member.get("EngineVersion") if member else None,
            "num_cache_clusters": len(members),
            "multi_az": raw.get("MultiAZ") == "enabled",
            "automatic_failover": raw.get("AutomaticFailover") in ("enabled", "enabling"),
            "transit_encryption": bool(raw.get("TransitEncryptionEnabled")),
            "at_rest_encryption": bool(raw.get("AtRestEncryptionEnabled")),
            "auth_token_enabled": bool(raw.get("AuthTokenEnabled")),
            "port": port,
            "snapshot_retention_limit": raw.get("SnapshotRetentionLimit"),
            "snapshot_window": raw.get("SnapshotWindow"),
            "cache_subnet_group_name": member.get("CacheSubnetGroupName") if member else None,
            "security_group_ids": (
                sorted(sg["SecurityGroupId"] for sg in member.get("SecurityGroups", [])) if member else None
            ),
            "tags": self.tags(raw.get("ARN")),
        }

    def subnet_group_exists(self, name: str) -> None:
        """Fail clearly when the named cache subnet group does not exist.

        AWS refuses CreateReplicationGroup with CacheSubnetGroupNotFoundFault itself; moto 5.2.5 accepts any
        name, so the module asks first and gives the same answer on both.
        """
        try:
            self.client.describe_cache_subnet_groups(aws_retry=True, CacheSubnetGroupName=name)
        except is_boto3_error_code("CacheSubnetGroupNotFoundFault") as err:
            self.module.fail_json_aws(
                err, msg=f"cache_subnet_group_name {name!r} does not exist (CacheSubnetGroupNotFoundFault)"
            )
        except aws_errors() as err:  # pylint: disable=duplicate-except
            fail_aws(self.module, err, f"Describing cache subnet group {name}")

    # -- waiting ---------------------------------------------------------------------------------------
    def wait_for(self, want: str, deadline: float) -> dict[str, Any] | None:
        """Poll until the group is 'available' or 'gone' (the value of want); fail at the deadline."""
        delay = max(1, self.module.params["wait_delay"])
        while True:
            raw = self.raw()
            status = raw.get("Status") if raw else None
            if want == "gone" and raw is None:
                return None
            if want == "available" and status == "available":
                return raw
            if want == "available" and status in (*GONE_STATUSES, "create-failed", None):
                self.module.fail_json(
                    msg=f"Replication group {self.group_id} is {status or 'gone'}, not available"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                what = "gone" if want == "gone" else "available"
                self.module.fail_json(
                    msg=f"Timed out after wait_timeout={self.module.params['wait_timeout']}s waiting for "
                    f"replication group {self.group_id} to be {what}; its status is {status!r}"
                )
            time.sleep(min(delay, remaining))

    # -- changing --------------------------------------------------------------------------------------
    def create(self) -> None:
        p = self.module.params
        request: dict[str, Any] = {
            "ReplicationGroupId": self.group_id,
            "ReplicationGroupDescription": p["description"] or self.group_id,
            "NumCacheClusters": p["num_cache_clusters"],
            "CacheNodeType": p["node_type"],
            "Engine": p["engine"],
            "AutomaticFailoverEnabled": p["automatic_failover"],
            "MultiAZEnabled": p["multi_az"],
            "TransitEncryptionEnabled": p["transit_encryption"],
            "AtRestEncryptionEnabled": p["at_rest_encryption"],
            "Port": p["port"],
        }
        optional = {
            "EngineVersion": p["engine_version"],
            "AuthToken": p["auth_token"],
            "CacheSubnetGroupName": p["cache_subnet_group_name"],
            "SecurityGroupIds": p["security_group_ids"],
            "SnapshotRetentionLimit": p["snapshot_retention_limit"],
            "SnapshotWindow": p["snapshot_window"],
            "Tags": ansible_dict_to_boto3_tag_list(p["tags"]) if p["tags"] else None,
        }
        request.update({k: v for k, v in optional.items() if v is not None})
        try:
            self.client.create_replication_group(aws_retry=True, **request)
        except aws_errors() as err:
            fail_aws(self.module, err, f"Creating replication group {self.group_id}")

    def modify(self, changes: dict[str, Any]) -> None:
        try:
            self.client.modify_replication_group(
                aws_retry=True,
                ReplicationGroupId=self.group_id,
                ApplyImmediately=self.module.params["apply_immediately"],
                **changes,
            )
        except aws_errors() as err:
            fail_aws(self.module, err, f"Modifying replication group {self.group_id}")

    def retag(self, arn: str, add: dict[str, str], remove: list[str]) -> None:
        try:
            if remove:
                self.client.remove_tags_from_resource(aws_retry=True, ResourceName=arn, TagKeys=remove)
            if add:
                self.client.add_tags_to_resource(
                    aws_retry=True, ResourceName=arn, Tags=ansible_dict_to_boto3_tag_list(add)
                )
        except aws_errors() as err:
            fail_aws(self.module, err, f"Tagging replication group {self.group_id}")

    def delete(self) -> None:
        try:
            self.client.delete_replication_group(aws_retry=True, ReplicationGroupId=self.group_id)
        except is_boto3_error_code("ReplicationGroupNotFoundFault"):
            return
        except aws_errors() as err:  # pylint: disable=duplicate-except
            fail_aws(self.module, err, f"Deleting replication group {self.group_id}")


def validate(module: AnsibleAWSModule) -> None:
    """Rules AWS would refuse, checked before any call, each message naming the option."""
    p = module.params
    if not ID_RE.match(p["replication_group_id"]):
        module.fail_json(
            msg="replication_group_id must be 1-40 letters, digits or hyphens, start with a letter, "
            f"and have no '--' and no trailing '-'; got {p['replication_group_id']!r}"
        )
    if p["state"] != "present":
        return
    if not p["node_type"]:
        module.fail_json(msg="node_type is required with state=present")
    if not 1 <= p["num_cache_clusters"] <= 6:
        module.fail_json(msg=f"num_cache_clusters must be 1-6; got {p['num_cache_clusters']}")
    if p["multi_az"] and not p["automatic_failover"]:
        module.fail_json(msg="multi_az=true needs automatic_failover=true")
    if (p["multi_az"] or p["automatic_failover"]) and p["num_cache_clusters"] < 2:
        module.fail_json(
            msg="num_cache_clusters must be 2 or more with multi_az or automatic_failover; "
            f"got {p['num_cache_clusters']}"
        )
    if p["auth_token"] is not None:
        if not p["transit_encryption"]:
            module.fail_json(msg="auth_token needs transit_encryption=true")
        if not TOKEN_RE.match(p["auth_token"]):
            module.fail_json(
                msg="auth_token must be 16-128 characters of letters, digits and ! & # $ ^ < > - only "
                f"(got {len(p['auth_token'])} characters)"
            )
    if p["auth_token_update_strategy"] and not p["auth_token"]:
        module.fail_json(msg="auth_token_update_strategy needs auth_token")
    retention = p["snapshot_retention_limit"]
    if retention is not None and not 0 <= retention <= 35:
        module.fail_json(msg=f"snapshot_retention_limit must be 0-35 days (got {retention})")
    if p["snapshot_window"] is not None and not window_ok(p["snapshot_window"]):
        module.fail_json(
            msg="snapshot_window must be a UTC range hh:mm-hh:mm of at least 60 minutes, like 03:00-04:00 "
            f"(got {p['snapshot_window']!r})"
        )


WINDOW_RE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])$")


def window_ok(window: str) -> bool:
    """A daily UTC range hh:mm-hh:mm of at least 60 minutes (it may wrap past midnight), as AWS requires."""
    match = WINDOW_RE.match(window)
    if not match:
        return False
    start = int(match.group(1)) * 60 + int(match.group(2))
    end = int(match.group(3)) * 60 + int(match.group(4))
    return (end - start) % (24 * 60) >= 60


def desired_settings(module: AnsibleAWSModule) -> dict[str, Any]:
    p = module.params
    return {
        "description": p["description"],
        "node_type": p["node_type"],
        "engine": p["engine"],
        "engine_version": p["engine_version"],
        "num_cache_clusters": p["num_cache_clusters"],
        "multi_az": p["multi_az"],
        "automatic_failover": p["automatic_failover"],
        "transit_encryption": p["transit_encryption"],
        "at_rest_encryption": p["at_rest_encryption"],
        "auth_token_enabled": p["auth_token"] is not None,
        "port": p["port"],
        "snapshot_retention_limit": p["snapshot_retention_limit"],
        "snapshot_window": p["snapshot_window"],
        "cache_subnet_group_name": p["cache_subnet_group_name"],
        "security_group_ids": None if p["security_group_ids"] is None else sorted(p["security_group_ids"]),
        "tags": p["tags"] or {},
    }


SETTING_KEYS = (
    "description", "node_type", "engine", "engine_version", "num_cache_clusters", "multi_az",
    "automatic_failover", "transit_encryption", "at_rest_encryption", "auth_token_enabled", "port",
    "snapshot_retention_limit", "snapshot_window", "cache_subnet_group_name", "security_group_ids", "tags",
)


def settings_of(group: dict[str, Any] | None) -> dict[str, Any]:
    return {k: group.get(k) for k in SETTING_KEYS} if group else {}


def version_matches(current: str | None, wanted: str | None) -> bool:
    return wanted is None or current is None or current == wanted or current.startswith(wanted + ".")


def plan_changes(
    module: AnsibleAWSModule, current: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str], list[str], dict[str, Any]]:
    """What modify_replication_group and the tag calls must send; fail on what cannot change in place.

    Returns (modify request, tags to add, tag keys to remove, settings after the change).
    """
    p = module.params
    want = desired_settings(module)
    for option, key in IMMUTABLE.items():
        # None on either side means unknown (not given, or not readable: see ReplicationGroups.member).
        if want[option] is not None and current[key] is not None and want[option] != current[key]:
            module.fail_json(
                msg=f"{option} cannot be changed in place: the group has {current[key]!r}, the task asks for "
                f"{want[option]!r}. Keep the current value, or delete and recreate the group (state=absent)."
            )
    request: dict[str, Any] = {}
    after = dict(settings_of(current))
    if want["description"] is not None and want["description"] != current["description"]:
        request["ReplicationGroupDescription"] = after["description"] = want["description"]
    if want["node_type"] != current["node_type"]:
        request["CacheNodeType"] = after["node_type"] = want["node_type"]
    if want["engine"] != current["engine"]:
        request["Engine"] = after["engine"] = want["engine"]
    if not version_matches(current["engine_version"], want["engine_version"]):
        request["EngineVersion"] = after["engine_version"] = want["engine_version"]
    if want["automatic_failover"] != current["automatic_failover"]:
        request["AutomaticFailoverEnabled"] = after["automatic_failover"] = want["automatic_failover"]
    if want["multi_az"] != current["multi_az"]:
        request["MultiAZEnabled"] = after["multi_az"] = want["multi_az"]
    for option, field in (
        ("snapshot_retention_limit", "SnapshotRetentionLimit"),
        ("snapshot_window", "SnapshotWindow"),
    ):
        if want[option] is not None and want[option] != current.get(option):
            request[field] = after[option] = want[option]
    if (
        want["security_group_ids"] is not None
        and current["security_group_ids"] is not None
        and want["security_group_ids"] != current["security_group_ids"]
    ):
        request["SecurityGroupIds"] = after["security_group_ids"] = want["security_group_ids"]
    if p["auth_token_update_strategy"]:
        request["AuthToken"] = p["auth_token"]
        request["AuthTokenUpdateStrategy"] = p["auth_token_update_strategy"]
        after["auth_token_enabled"] = True
        after["auth_token_update"] = p["auth_token_update_strategy"]
    elif p["auth_token"] is not None and not current["auth_token_enabled"]:
        warn(
            module,
            f"auth_token is set but replication group {current['replication_group_id']} has no AUTH token; "
            "set auth_token_update_strategy=SET (or ROTATE) for one run to add it"
        )
    if want["num_cache_clusters"] != current["num_cache_clusters"]:
        # moto 5.2.5 ignores NumCacheClusters and always makes one member, so this warns on every run there.
        warn(
            module,
            f"num_cache_clusters is {want['num_cache_clusters']} but replication group "
            f"{current['replication_group_id']} has {current['num_cache_clusters']} member clusters; "
            "this module sets the count only at creation "
            "(use IncreaseReplicaCount/DecreaseReplicaCount to change it)"
        )
    add, remove = {}, []
    if p["tags"] is not None:
        add, remove = compare_aws_tags(current["tags"], p["tags"], p["purge_tags"])
        if add or remove:
            after["tags"] = {k: v for k, v in {**current["tags"], **add}.items() if k not in remove}
    return request, add, remove, after


def would_be(module: AnsibleAWSModule) -> dict[str, Any]:
    """What check mode reports for a group it would create."""
    want = desired_settings(module)
    want.update(
        replication_group_id=module.params["replication_group_id"].lower(),
        arn=None,
        status="would be created",
        description=want["description"] or module.params["replication_group_id"].lower(),
        primary_endpoint=None,
        reader_endpoint=None,
        member_clusters=[],
    )
    return want


def run(module: AnsibleAWSModule) -> dict[str, Any]:
    p = module.params
    groups = ReplicationGroups(module)
    deadline = time.monotonic() + p["wait_timeout"]
    current = groups.describe()
    if current is not None and current["status"] in GONE_STATUSES:
        if p["state"] == "present" and not module.check_mode:
            if not p["wait"]:
                module.fail_json(
                    msg=f"Replication group {groups.group_id} is being deleted; run again with wait=true "
                    "to wait for the deletion and create it anew"
                )
            groups.wait_for("gone", deadline)
        current_settings = settings_of(current)
        current = None
    else:
        current_settings = settings_of(current)

    if p["state"] == "query":
        return {"changed": False, "exists": current is not None, "replication_group": current or {}}

    if p["state"] == "absent":
        if current is None:
            return {"changed": False, "exists": False, "replication_group": {},
                    "diff": {"before": current_settings, "after": current_settings}}
        if not module.check_mode:
            groups.delete()
            if p["wait"]:
                groups.wait_for("gone", deadline)
        return {"changed": True, "exists": False, "replication_group": {},
                "diff": {"before": current_settings, "after": {}}}

    # state == present
    if current is None:
        if module.check_mode:
            group = would_be(module)
            return {"changed": True, "exists": True, "replication_group": group,
                    "diff": {"before": {}, "after": settings_of(group)}}
        if p["cache_subnet_group_name"]:
            groups.subnet_group_exists(p["cache_subnet_group_name"])
        groups.create()
        if p["wait"]:
            groups.wait_for("available", deadline)
        group = groups.describe()
        return {"changed": True, "exists": True, "replication_group": group,
                "diff": {"before": {}, "after": settings_of(group)}}

    request, add, remove, after = plan_changes(module, current)
    changed = bool(request or add or remove)
    if changed and not module.check_mode:
        if request:
            if current["status"] != "available" and p["wait"]:
                groups.wait_for("available", deadline)
            groups.modify(request)
        if add or remove:
            groups.retag(current["arn"], add, remove)
        if p["wait"]:
            groups.wait_for("available", deadline)
        current = groups.describe()
    group = current
    if module.check_mode:
        group = {**current, **{k: v for k, v in after.items() if k in current}}
    result = {"changed": changed, "exists": True, "replication_group": group,
              "diff": {"before": current_settings, "after": after}}
    if request:
        result["modified"] = sorted(request.keys() - {"AuthToken"})
    return result


def main() -> None:
    argument_spec = dict(
        state=dict(type="str", choices=["present", "absent", "query"], default="present"),
        replication_group_id=dict(type="str", required=True, aliases=["id", "name"]),
        description=dict(type="str"),
        node_type=dict(type="str"),
        engine=dict(type="str", choices=["redis", "valkey"], default="redis"),
        engine_version=dict(type="str"),
        num_cache_clusters=dict(type="int", default=2),
        multi_az=dict(type="bool", default=True),
        automatic_failover=dict(type="bool", default=True),
        transit_encryption=dict(type="bool", default=True),
        at_rest_encryption=dict(type="bool", default=True),
        auth_token=dict(type="str", no_log=True),
        auth_token_update_strategy=dict(type="str", choices=["ROTATE", "SET"], no_log=False),
        port=dict(type="int", default=6379),
        snapshot_retention_limit=dict(type="int"),
        snapshot_window=dict(type="str"),
        cache_subnet_group_name=dict(type="str"),
        security_group_ids=dict(type="list", elements="str"),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
        apply_immediately=dict(type="bool", default=True),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=1800),
        wait_delay=dict(type="int", default=15),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    validate(module)
    result = run(module)
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
