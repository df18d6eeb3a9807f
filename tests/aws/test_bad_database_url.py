"""A database URL on Supabase's direct host (db.REF.supabase.co, IPv6-only) with the project's IPv4-only VPC:
refused by the real playbooks on the control node before any AWS resource or host changes, naming where the
URL came from (the vault variable, or the SSM parameter) and the pooler to use instead, never showing the URL.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ec2_fleet_dev.moto_aws import Run, reset_moto, snapshot
from ec2_fleet_dev.plays import failure_messages

PASSWORD = "direct-db-pa55word"
DIRECT = f"postgresql://postgres:{PASSWORD}@db.abcdefghijklmnop.supabase.co:5432/postgres?sslmode=require"
SSM_PARAMETER = "/ec2-fleet/lab/database_url"  # inventories/lab: fleet_database_url_ssm_parameter


@pytest.fixture
def fresh(moto_url: str, client: Callable) -> dict:
    reset_moto(moto_url, client)
    return snapshot(client)


def _assert_refused_naming(result: Run, source: str, before: dict, after: dict) -> None:
    assert result.rc != 0, f"the direct Supabase host was accepted:\n{result.tail()}"
    messages = " ".join(failure_messages(result.output))
    assert f"{source} points at Supabase's direct host db.abcdefghijklmnop.supabase.co" in messages, messages
    assert "port 6543 (transaction mode)" in messages and "user postgres.abcdefghijklmnop" in messages, messages
    assert PASSWORD not in result.output and DIRECT not in result.output
    assert result.recap().get("localhost", {}).get("changed", 0) == 0, result.tail()
    assert after == before, "resources appeared although the database URL was refused"
    assert "Configure the app hosts" not in result.output  # no play on the hosts started


@pytest.mark.parametrize("playbook", ["provision", "site"])
def test_the_direct_supabase_host_in_the_vault_is_refused_before_any_change(
    fresh: dict, client: Callable, run: Callable[..., Run], playbook: str
) -> None:
    result = run(
        f"playbooks/{playbook}.yml", {"fleet_database_url_ssm_parameter": "", "vault_fleet_database_url": DIRECT}
    )
    _assert_refused_naming(result, "vault_fleet_database_url", fresh, snapshot(client))


def test_the_direct_supabase_host_in_ssm_is_refused_before_any_host_changes(
    fresh: dict, client: Callable, run: Callable[..., Run]
) -> None:
    client("ssm").put_parameter(Name=SSM_PARAMETER, Value=DIRECT, Type="SecureString", Overwrite=True)
    # The cache site.yml finds before it reads the URL (as provision.yml leaves it).
    client("elasticache").create_replication_group(
        ReplicationGroupId="ec2-fleet-lab",
        ReplicationGroupDescription="the lab's cache",
        Engine="redis",
        CacheNodeType="cache.t4g.small",
        NumCacheClusters=1,
    )
    before = snapshot(client)
    result = run("playbooks/site.yml", {})
    _assert_refused_naming(
        result, f"the SSM parameter {SSM_PARAMETER} (fleet_database_url_ssm_parameter)", before, snapshot(client)
    )
