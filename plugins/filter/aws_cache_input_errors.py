# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""What is wrong with the aws_cache role's inputs (what meta/argument_specs.yml cannot say).

Every message names the variable; none shows a secret (the AUTH token's length at most).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ansible_collections.ec2_fleet.fleet.plugins.plugin_utils.input_checks import (
    as_bool,
    as_int,
    int_between,
    matches,
)

EXTERNAL_URL_RE = r"^rediss?://([^@/\s]+@)?(\[[0-9A-Fa-f:.]+\]|[^:/@\s\[\]]+)(:[0-9]{1,5})?(/[0-9]*)?$"
GROUP_ID_RE = r"^[A-Za-z]([A-Za-z0-9]|-(?!-)){0,39}$"
AUTH_TOKEN_RE = r"^[A-Za-z0-9!&#$^<>-]{16,128}$"
NODE_TYPE_RE = r"^cache\.[a-z0-9-]+\.[a-z0-9]+$"
SNAPSHOT_WINDOW_RE = r"^(([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9])?$"


def _replication_group_errors(v: Mapping[str, Any]) -> list[str]:
    """The settings of a replication group to create or keep (aws_cache_state present)."""
    e = []
    token = str(v["aws_cache_auth_token"] or "")
    transit = as_bool(v["aws_cache_transit_encryption"])
    multi_az, failover = as_bool(v["aws_cache_multi_az"]), as_bool(v["aws_cache_automatic_failover"])
    if not token and transit:
        e.append("aws_cache_auth_token is required when aws_cache_transit_encryption is true (Redis AUTH over TLS)")
    if token and not transit:
        e.append("aws_cache_auth_token needs aws_cache_transit_encryption=true (AWS accepts AUTH only with TLS)")
    if token and not matches(AUTH_TOKEN_RE, token):
        e.append(
            "aws_cache_auth_token must be 16-128 characters of letters, digits and ! & # $ ^ < > - only "
            f"(got {len(token)} characters)"
        )
    if v["aws_cache_auth_token_update_strategy"] and not token:
        e.append("aws_cache_auth_token_update_strategy needs aws_cache_auth_token")
    clusters = as_int(v["aws_cache_num_cache_clusters"])
    if not (int_between(clusters, 1, 6) and (clusters >= 2 or not (multi_az or failover))):
        e.append(
            "aws_cache_num_cache_clusters must be 1-6, and 2 or more with aws_cache_multi_az or "
            f"aws_cache_automatic_failover; got {v['aws_cache_num_cache_clusters']}"
        )
    if multi_az and not failover:
        e.append("aws_cache_multi_az=true needs aws_cache_automatic_failover=true")
    subnets = v["aws_cache_subnet_ids"]
    if not ((not subnets or len(subnets) >= 2 or not multi_az) and (subnets or v["aws_cache_subnet_group_name"])):
        e.append(
            "aws_cache_subnet_ids needs 2 or more subnets (in different Availability Zones) with aws_cache_multi_az "
            f"(got {len(subnets)}); when it is empty, aws_cache_subnet_group_name must name an existing subnet group"
        )
    if not matches(NODE_TYPE_RE, v["aws_cache_node_type"]):
        node_type = v["aws_cache_node_type"]
        e.append(f"aws_cache_node_type must be a cache node type such as cache.t4g.small; got '{node_type}'")
    if not (
        int_between(v["aws_cache_snapshot_retention_limit"], 0, 35)
        and matches(SNAPSHOT_WINDOW_RE, v["aws_cache_snapshot_window"])
    ):
        e.append(
            f"aws_cache_snapshot_retention_limit must be 0-35 days (got {v['aws_cache_snapshot_retention_limit']}) and "
            f"aws_cache_snapshot_window empty or a UTC range like 03:00-04:00 (got '{v['aws_cache_snapshot_window']}')"
        )
    if not (
        int_between(v["aws_cache_port"], 1, 65535)
        and int_between(v["aws_cache_wait_timeout"], 1)
        and int_between(v["aws_cache_wait_delay"], 1)
    ):
        e.append("aws_cache_port must be 1-65535, aws_cache_wait_timeout and aws_cache_wait_delay 1 or more seconds")
    return e


def _external_url_errors(url: str, allow_insecure: bool) -> list[str]:
    """An external Redis is reached over the internet: TLS and a password, unless the environment said
    otherwise (aws_cache_external_allow_insecure, the lab's kind of setting). The URL is never shown."""
    if not matches(EXTERNAL_URL_RE, url):
        return [
            "aws_cache_external_url must look like redis://[user:password@]host[:port][/db] or "
            "rediss://[user:password@]host[:port][/db] (scheme redis or rediss, a host, an optional numeric port)"
        ]
    if allow_insecure:
        return []
    e = []
    parts = urlsplit(url)
    if parts.scheme != "rediss":
        e.append(
            "aws_cache_external_url uses redis:// (no TLS): an external Redis is reached across the internet, so it "
            "must be rediss://user:password@host:port (TLS, as Upstash and Redis Cloud serve it); only an "
            "environment that sets aws_cache_external_allow_insecure: true may use redis:// (value not shown)"
        )
    if not parts.password:
        e.append(
            "aws_cache_external_url has no password: an external Redis needs its ACL user and password in the URL, "
            "like rediss://default:PASSWORD@host:port; only an environment that sets "
            "aws_cache_external_allow_insecure: true may leave it out (value not shown)"
        )
    return e


def aws_cache_input_errors(inputs: Mapping[str, Any]) -> list[str]:
    """Every problem with the aws_cache_* inputs (a map of each variable's name to its value).

    An external Redis (aws_cache_external_url) is checked alone: no replication group is made.
    """
    v = inputs
    if v["aws_cache_external_url"]:
        return _external_url_errors(str(v["aws_cache_external_url"]), as_bool(v["aws_cache_external_allow_insecure"]))
    e = []
    group_id = v["aws_cache_replication_group_id"]
    if not (matches(GROUP_ID_RE, group_id) and not str(group_id).endswith("-")):
        e.append(
            "aws_cache_replication_group_id must be 1-40 letters, digits or hyphens, start with a letter, and have "
            f"no '--' and no trailing '-'; got '{group_id}'"
        )
    if v["aws_cache_state"] == "present":
        e += _replication_group_errors(v)
    return e


class FilterModule:
    """Filters: aws_cache_input_errors."""

    def filters(self) -> dict:
        return {"aws_cache_input_errors": aws_cache_input_errors}
