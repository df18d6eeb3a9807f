"""The aws_cache role's input rules (plugins/filter/aws_cache_input_errors.py), one case per rule."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.aws_cache_input_errors import aws_cache_input_errors
from validation_support import good_inputs

TOKEN = "lab-cache-auth-token-0123456789"
GOOD = good_inputs("aws_cache", aws_cache_auth_token=TOKEN, aws_cache_subnet_ids=["subnet-1", "subnet-2"])


def errors(**changes: Any) -> list[str]:
    return aws_cache_input_errors(GOOD | changes)


def test_good_inputs_have_no_errors() -> None:
    assert errors() == []
    assert errors(aws_cache_transit_encryption=False, aws_cache_auth_token="") == []
    single = {"aws_cache_num_cache_clusters": 1, "aws_cache_multi_az": False, "aws_cache_automatic_failover": False}
    settings = {"aws_cache_snapshot_window": "03:00-04:00", "aws_cache_auth_token_update_strategy": "rotate"}
    assert errors(**single, **settings, aws_cache_subnet_ids=[], aws_cache_subnet_group_name="shared") == []


CASES = [
    ({"aws_cache_replication_group_id": "1cache"}, "aws_cache_replication_group_id must be 1-40 letters, digits or "
     "hyphens, start with a letter, and have no '--' and no trailing '-'; got '1cache'"),
    ({"aws_cache_replication_group_id": "a--b"}, "got 'a--b'"),
    ({"aws_cache_replication_group_id": "cache-"}, "got 'cache-'"),
    ({"aws_cache_replication_group_id": "c" * 41}, "aws_cache_replication_group_id must be 1-40"),
    ({"aws_cache_auth_token": ""}, "aws_cache_auth_token is required when aws_cache_transit_encryption is true "
     "(Redis AUTH over TLS)"),
    ({"aws_cache_transit_encryption": False}, "aws_cache_auth_token needs aws_cache_transit_encryption=true (AWS "
     "accepts AUTH only with TLS)"),
    ({"aws_cache_auth_token": "short"}, "aws_cache_auth_token must be 16-128 characters of letters, digits and ! & "
     "# $ ^ < > - only (got 5 characters)"),
    ({"aws_cache_auth_token": "x" * 15 + "@"}, "(got 16 characters)"),
    ({"aws_cache_transit_encryption": False, "aws_cache_auth_token": "", "aws_cache_auth_token_update_strategy": "set"},
     "aws_cache_auth_token_update_strategy needs aws_cache_auth_token"),
    ({"aws_cache_num_cache_clusters": 7}, "aws_cache_num_cache_clusters must be 1-6, and 2 or more with "
     "aws_cache_multi_az or aws_cache_automatic_failover; got 7"),
    ({"aws_cache_num_cache_clusters": 1, "aws_cache_multi_az": False}, "got 1"),
    ({"aws_cache_automatic_failover": False}, "aws_cache_multi_az=true needs aws_cache_automatic_failover=true"),
    ({"aws_cache_subnet_ids": ["subnet-1"]}, "aws_cache_subnet_ids needs 2 or more subnets (in different "
     "Availability Zones) with aws_cache_multi_az (got 1); when it is empty, aws_cache_subnet_group_name must name "
     "an existing subnet group"),
    ({"aws_cache_subnet_ids": [], "aws_cache_subnet_group_name": ""}, "(got 0)"),
    ({"aws_cache_node_type": "t4g.small"}, "aws_cache_node_type must be a cache node type such as cache.t4g.small; "
     "got 't4g.small'"),
    ({"aws_cache_snapshot_retention_limit": 36}, "aws_cache_snapshot_retention_limit must be 0-35 days (got 36) and "
     "aws_cache_snapshot_window empty or a UTC range like 03:00-04:00 (got '')"),
    ({"aws_cache_snapshot_window": "3-4"}, "(got '3-4')"),
    ({"aws_cache_port": 0}, "aws_cache_port must be 1-65535, aws_cache_wait_timeout and aws_cache_wait_delay 1 or "
     "more seconds"),
    ({"aws_cache_wait_timeout": 0}, "aws_cache_wait_timeout and aws_cache_wait_delay 1 or more seconds"),
    ({"aws_cache_wait_delay": 0}, "aws_cache_wait_timeout and aws_cache_wait_delay 1 or more seconds"),
]


@pytest.mark.parametrize(("changes", "expected"), CASES, ids=[f"{c}"[:70] for c, _ in CASES])
def test_each_rule_names_the_variable(changes: dict, expected: str) -> None:
    found = errors(**changes)
    assert len(found) == 1, found
    assert expected in found[0]


def test_no_message_shows_the_token() -> None:
    secret = "s3cr3t token with spaces"
    found = errors(aws_cache_auth_token=secret)
    assert found
    assert all(secret not in e for e in found)


def test_teardown_checks_only_the_identifier() -> None:
    bad_settings = {"aws_cache_auth_token": "", "aws_cache_port": 0, "aws_cache_node_type": "x"}
    assert errors(aws_cache_state="absent", **bad_settings) == []
    assert len(errors(aws_cache_state="absent", aws_cache_replication_group_id="-x", **bad_settings)) == 1


@pytest.mark.parametrize("url", ["rediss://default:pw@ext-redis.example:6380/0", "rediss://user:pw@[fd00::1]:6380",
                                 "rediss://:pw@h"])
def test_an_external_redis_is_checked_alone(url: str) -> None:
    assert errors(aws_cache_external_url=url, aws_cache_replication_group_id="-", aws_cache_port=0) == []


@pytest.mark.parametrize("url", ["http://cache:6379", "redis://", "redis://h:port", "redis://h/db"])
@pytest.mark.parametrize("allow_insecure", [False, True])
def test_a_bad_external_redis_url_is_refused(url: str, allow_insecure: bool) -> None:
    assert errors(aws_cache_external_url=url, aws_cache_external_allow_insecure=allow_insecure) == [
        "aws_cache_external_url must look like redis://[user:password@]host[:port][/db] or "
        "rediss://[user:password@]host[:port][/db] (scheme redis or rediss, a host, an optional numeric port)"
    ]


PLAINTEXT = (
    "aws_cache_external_url uses redis:// (no TLS): an external Redis is reached across the internet, so it must be "
    "rediss://user:password@host:port (TLS, as Upstash and Redis Cloud serve it); only an environment that sets "
    "aws_cache_external_allow_insecure: true may use redis:// (value not shown)"
)
NO_PASSWORD = (
    "aws_cache_external_url has no password: an external Redis needs its ACL user and password in the URL, like "
    "rediss://default:PASSWORD@host:port; only an environment that sets aws_cache_external_allow_insecure: true may "
    "leave it out (value not shown)"
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://default:s3cret-pw@redis-12345.cloud.example:12345", [PLAINTEXT]),
        ("rediss://ext-redis.example:6380", [NO_PASSWORD]),
        ("rediss://default@ext-redis.example:6380", [NO_PASSWORD]),
        ("rediss://default:@ext-redis.example:6380", [NO_PASSWORD]),
        ("redis://cache.internal:6379/0", [PLAINTEXT, NO_PASSWORD]),
    ],
)
def test_an_external_redis_without_tls_or_password_is_refused(url: str, expected: list[str]) -> None:
    """Outside an environment that said so, an external Redis must speak TLS and ask for a password;
    the message names the variable and the setting, never the URL."""
    found = errors(aws_cache_external_url=url)
    assert found == expected
    assert all("s3cret-pw" not in e and "ext-redis.example" not in e for e in found)


@pytest.mark.parametrize("url", ["redis://cache.internal:6379/0", "redis://h", "rediss://h:6380"])
def test_an_environment_that_allows_it_may_use_plaintext_and_no_password(url: str) -> None:
    assert errors(aws_cache_external_url=url, aws_cache_external_allow_insecure=True) == []
