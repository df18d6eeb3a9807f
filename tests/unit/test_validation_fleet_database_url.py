"""The database URL rule (plugins/filter/fleet_database_url_errors.py): Supabase's direct host, IPv6-only,
refused for the IPv4-only VPC, naming where the URL came from, never showing it."""

from __future__ import annotations

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.fleet_database_url_errors import fleet_database_url_errors

SECRET = "s3cr%40t-pw"


@pytest.mark.parametrize("url", [
    f"postgresql://postgres:{SECRET}@db.abcdefghijklmnop.supabase.co:5432/postgres?sslmode=require",
    f"postgres://postgres:{SECRET}@DB.abcdefghijklmnop.SUPABASE.CO/postgres",
    f"postgresql://postgres:{SECRET}@db.abcdefghijklmnop.supabase.co./postgres",
    f"postgresql://postgres:{SECRET}@other.example.com:5432,db.abcdefghijklmnop.supabase.co:5432/postgres",
    f"postgresql://postgres:{SECRET}@/postgres?host=db.abcdefghijklmnop.supabase.co",
])
def test_the_direct_supabase_host_is_refused_naming_the_variable_and_the_pooler(url: str) -> None:
    errors = fleet_database_url_errors(url, "vault_fleet_database_url")
    assert len(errors) == 1
    message = errors[0]
    assert message.startswith("vault_fleet_database_url points at Supabase's direct host "
                              "db.abcdefghijklmnop.supabase.co")
    assert "IPv6 address only" in message and "IPv4-only" in message
    assert "aws-0-REGION.pooler.supabase.com" in message and "port 6543" in message
    assert "user postgres.abcdefghijklmnop" in message
    assert "Nothing was changed." in message
    assert SECRET not in message and "s3cr" not in message and url not in message


@pytest.mark.parametrize("url", [
    "postgresql://postgres.abcdefghijklmnop:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres?sslmode=require",
    "postgresql://postgres.abcdefghijklmnop:pw@aws-0-eu-west-1.pooler.supabase.com:5432/postgres",
    "postgresql://app:pw@mydb.abc123.eu-west-1.rds.amazonaws.com:5432/orders",
    "postgresql://app:pw@db.lab.internal:5432/orders",
    "postgresql://app:pw@db.example.supabase.co.evil.example:5432/orders",
    "",
    "not a url",
])
def test_other_hosts_pass(url: str) -> None:
    assert fleet_database_url_errors(url, "fleet_database_url") == []


def test_the_source_is_named_as_given() -> None:
    source = "the SSM parameter /ec2-fleet/prod/database_url (fleet_database_url_ssm_parameter)"
    [message] = fleet_database_url_errors("postgresql://u:p@db.ref1.supabase.co/postgres", source)
    assert message.startswith(source + " points at Supabase's direct host db.ref1.supabase.co")
