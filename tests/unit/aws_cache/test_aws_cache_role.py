"""The aws_cache role, run by ansible-playbook on localhost against a moto server on 127.0.0.1.

The AWS connection reaches the role only through the play's module_defaults group/ec2_fleet.fleet.aws, as provision.yml
sets it: no AWS_* environment variable points at moto.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cache_support import REGION, PlayResult, assert_rejected, run_playbook

TOKEN = "Role-token-0123456789"
SECRET_URL_PASSWORD = "s3cret-Passw0rd"


@pytest.fixture
def play(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run the role once with these variables (the module_defaults endpoint is `endpoint`)."""
    for name in ("AWS_URL", "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    endpoint_file = tmp_path / "endpoint.json"

    def _play(endpoint: str, role_vars: dict[str, Any], *args: str) -> tuple[PlayResult, dict[str, Any] | None]:
        endpoint_file.unlink(missing_ok=True)
        playbook = tmp_path / "play.yml"
        playbook.write_text(
            json.dumps(
                [
                    {
                        "name": "Apply aws_cache",
                        "hosts": "localhost",
                        "connection": "local",
                        "gather_facts": False,
                        "module_defaults": {
                            "group/ec2_fleet.fleet.aws": {
                                "endpoint_url": endpoint,
                                "region": REGION,
                                "access_key": "testing",
                                "secret_key": "testing",
                            }
                        },
                        "roles": [{"role": "aws_cache"}],
                        "post_tasks": [
                            {
                                "name": "Save the published endpoint",
                                "ansible.builtin.copy": {
                                    "content": "{{ aws_cache_endpoint | default(none) | to_json }}",
                                    "dest": str(endpoint_file),
                                    "mode": "0600",
                                },
                                "changed_when": False,
                            }
                        ],
                    }
                ]
            )
        )
        result = run_playbook(
            playbook,
            "localhost,",
            {"ansible_python_interpreter": sys.executable, **role_vars},
            *args,
            timeout=300,
        )
        published = json.loads(endpoint_file.read_text()) if endpoint_file.exists() else None
        return result, published

    return _play


@pytest.fixture
def cache_vars(subnets: list[str]) -> dict[str, Any]:
    return {
        "aws_cache_replication_group_id": "fleet-role",
        "aws_cache_auth_token": TOKEN,
        "aws_cache_subnet_ids": subnets,
        "aws_cache_tags": {"Project": "ec2-fleet", "Environment": "test"},
        "aws_cache_wait_delay": 1,
    }


def changed(result: PlayResult) -> int:
    return result.recap()["localhost"]["changed"]


def test_present_twice_then_query_then_absent(play, aws, moto: str, cache_vars: dict[str, Any]) -> None:
    first, endpoint = play(moto, cache_vars, "--diff")
    assert first.rc == 0, first.output[-3000:]
    assert changed(first) == 2  # the cache subnet group and the replication group
    stored = aws("elasticache").describe_replication_groups(ReplicationGroupId="fleet-role")["ReplicationGroups"][0]
    address = stored["NodeGroups"][0]["PrimaryEndpoint"]["Address"]
    assert endpoint == {
        "address": address,
        "port": 6379,
        "tls": True,
        "url_without_auth": f"rediss://{address}:6379",
    }
    assert aws("elasticache").describe_cache_subnet_groups(CacheSubnetGroupName="fleet-role")["CacheSubnetGroups"]
    assert TOKEN not in first.output

    second, endpoint_again = play(moto, cache_vars, "--diff")
    assert second.rc == 0, second.output[-3000:]
    assert changed(second) == 0, second.output[-3000:]
    assert endpoint_again == endpoint

    query, queried = play(moto, {"aws_cache_state": "query", "aws_cache_replication_group_id": "fleet-role"})
    assert query.rc == 0, query.output[-3000:]
    assert changed(query) == 0
    assert queried == endpoint

    absent, _ = play(moto, {**cache_vars, "aws_cache_state": "absent", "aws_cache_wait": False})
    assert absent.rc == 0, absent.output[-3000:]
    assert changed(absent) == 1
    # moto 5.2.5 keeps a deleted group in status "deleting" (AWS removes it after some minutes).
    status = aws("elasticache").describe_replication_groups(ReplicationGroupId="fleet-role")["ReplicationGroups"][0]
    assert status["Status"] == "deleting"
    assert "Cache subnet group fleet-role kept" in absent.output

    gone, _ = play(moto, {"aws_cache_state": "query", "aws_cache_replication_group_id": "fleet-role"})
    assert gone.rc != 0
    assert "aws_cache_state=query found no replication group 'fleet-role'" in gone.output


def test_check_mode_creates_nothing(play, aws, moto: str, cache_vars: dict[str, Any]) -> None:
    result, _ = play(moto, cache_vars, "--check")
    assert result.rc == 0, result.output[-3000:]
    assert changed(result) == 2
    assert aws("elasticache").describe_replication_groups()["ReplicationGroups"] == []
    assert aws("elasticache").describe_cache_subnet_groups()["CacheSubnetGroups"] == []


def test_query_never_creates(play, aws, moto: str) -> None:
    result, _ = play(moto, {"aws_cache_state": "query", "aws_cache_replication_group_id": "not-there"})
    assert result.rc != 0
    assert "aws_cache_replication_group_id" in result.output
    assert aws("elasticache").describe_replication_groups()["ReplicationGroups"] == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            f"rediss://default:{SECRET_URL_PASSWORD}@eu1-fleet.upstash.io:6380",
            {
                "address": "eu1-fleet.upstash.io",
                "port": 6380,
                "tls": True,
                "url_without_auth": "rediss://eu1-fleet.upstash.io:6380",
            },
        ),
        (
            f"redis://:{SECRET_URL_PASSWORD}@redis-1234.cloud.example.com/2",
            {
                "address": "redis-1234.cloud.example.com",
                "port": 6379,
                "tls": False,
                "url_without_auth": "redis://redis-1234.cloud.example.com:6379/2",
            },
        ),
    ],
)
def test_external_url_makes_no_aws_call(play, closed_url: str, url: str, expected: dict[str, Any]) -> None:
    # The AWS endpoint is a closed port: any AWS call would fail the play. redis:// only where allowed.
    allow = {"aws_cache_external_allow_insecure": True} if url.startswith("redis://") else {}
    result, endpoint = play(closed_url, {"aws_cache_external_url": url, **allow})
    assert result.rc == 0, result.output[-3000:]
    assert changed(result) == 0
    assert endpoint == expected
    assert SECRET_URL_PASSWORD not in result.output


@pytest.mark.parametrize(
    ("role_vars", "variable"),
    [
        ({"aws_cache_auth_token": ""}, "aws_cache_auth_token is required when aws_cache_transit_encryption"),
        ({"aws_cache_auth_token": "short-token"}, "aws_cache_auth_token must be 16-128 characters"),
        ({"aws_cache_auth_token": 'with"quote/and@at-0123'}, "aws_cache_auth_token must be 16-128 characters"),
        ({"aws_cache_num_cache_clusters": 1}, "aws_cache_num_cache_clusters"),
        ({"aws_cache_multi_az": True, "aws_cache_automatic_failover": False}, "aws_cache_automatic_failover"),
        ({"aws_cache_subnet_ids": ["subnet-0123456789abcdef0"]}, "aws_cache_subnet_ids"),
        ({"aws_cache_state": "started"}, "aws_cache_state"),
        ({"aws_cache_replication_group_id": "9-starts-with-digit"}, "aws_cache_replication_group_id"),
        ({"aws_cache_node_type": "t4g.small"}, "aws_cache_node_type"),
        ({"aws_cache_external_url": "http://cache.example.com:6379"}, "aws_cache_external_url"),
        ({"aws_cache_external_url": "rediss://:pw@host:notaport"}, "aws_cache_external_url"),
        ({"aws_cache_external_url": "redis://:pw@cache.example.com:6379"}, "aws_cache_external_url uses redis://"),
    ],
)
def test_bad_input_fails_before_any_aws_call(play, closed_url: str, role_vars: dict[str, Any], variable: str) -> None:
    base = {
        "aws_cache_replication_group_id": "fleet-role",
        "aws_cache_auth_token": TOKEN,
        "aws_cache_subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    }
    result, endpoint = play(closed_url, {**base, **role_vars})
    assert_rejected(result, variable)
    assert endpoint is None
    # Nothing reached the (closed) AWS endpoint: no AWS task ran.
    assert "Manage replication group" not in result.output
    assert "Create or update cache subnet group" not in result.output
    assert "Could not connect" not in result.output
