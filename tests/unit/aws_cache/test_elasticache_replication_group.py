"""The aws_cache_replication_group module (plugins/modules/), run in-process (its real main()) against a moto server."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from ansible.module_utils import _internal as module_internal
from ansible.module_utils.common import warnings as module_warnings
from ansible.module_utils.testing import patch_module_args
from ansible_collections.ec2_fleet.fleet.plugins.modules import aws_cache_replication_group as module
from aws_cache_support import CREDENTIALS, REGION

TOKEN = "Fleet-token-0123456789"


def run(capsys, endpoint: str, check: bool = False, diff: bool = False, **args: Any) -> dict[str, Any]:
    """Run the module once with these options; return its JSON result."""
    params = {
        "endpoint_url": endpoint,
        "region": REGION,
        **CREDENTIALS,
        "wait_delay": 1,
        "_ansible_check_mode": check,
        "_ansible_diff": diff,
        **args,
    }
    capsys.readouterr()
    # Warnings are module-global in ansible-core (one process per module run); start each run afresh.
    module_warnings._global_warnings.clear()
    with patch_module_args(params), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture(autouse=True)
def module_side(monkeypatch) -> None:
    """Run as a module would, on a host. Any earlier test in this process that imported controller code
    (ansible.plugins, ansible.cli) flips is_controller, and then warn() prints through Display instead of
    returning the warning in the result (the failure CI saw in the whole-suite run)."""
    monkeypatch.setattr(module_internal, "is_controller", False)


def group_args(**overrides: Any) -> dict[str, Any]:
    args = {
        "replication_group_id": "fleet-test",
        "description": "ec2-fleet shared cache",
        "node_type": "cache.t4g.small",
        "num_cache_clusters": 2,
        "auth_token": TOKEN,
        "cache_subnet_group_name": "fleet-test",
        "tags": {"Project": "ec2-fleet", "Environment": "test"},
    }
    args.update(overrides)
    return args


@pytest.fixture
def subnet_group(aws, subnets: list[str]) -> str:
    aws("elasticache").create_cache_subnet_group(
        CacheSubnetGroupName="fleet-test", CacheSubnetGroupDescription="test", SubnetIds=subnets
    )
    return "fleet-test"


@pytest.fixture
def created(capsys, moto: str, subnet_group: str) -> dict[str, Any]:
    result = run(capsys, moto, **group_args())
    assert result["changed"] is True, result
    return result


def describe(aws, group_id: str = "fleet-test") -> dict[str, Any]:
    return aws("elasticache").describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]


def test_create_makes_the_group_and_returns_its_primary_endpoint(aws, created: dict[str, Any]) -> None:
    group = created["replication_group"]
    assert created["exists"] is True
    assert group["status"] == "available"
    assert group["primary_endpoint"]["address"].startswith("master.fleet-test.")
    assert group["primary_endpoint"]["port"] == 6379
    assert group["member_clusters"] == ["fleet-test-001"] or len(group["member_clusters"]) == 2
    assert group["transit_encryption"] is True
    assert group["auth_token_enabled"] is True
    assert group["tags"] == {"Project": "ec2-fleet", "Environment": "test"}
    # What AWS (moto) now holds, seen from outside the module.
    stored = describe(aws)
    assert stored["CacheNodeType"] == "cache.t4g.small"
    assert stored["MultiAZ"] == "enabled"
    assert stored["AutomaticFailover"] == "enabled"
    assert stored["TransitEncryptionEnabled"] is True
    assert stored["AtRestEncryptionEnabled"] is True
    assert stored["AuthTokenEnabled"] is True
    assert TOKEN not in json.dumps(created)


def test_second_run_with_the_same_inputs_changes_nothing(capsys, moto: str, created: dict[str, Any]) -> None:
    again = run(capsys, moto, **group_args())
    assert again["changed"] is False, again
    assert again["replication_group"]["primary_endpoint"] == created["replication_group"]["primary_endpoint"]
    # moto 5.2.5 ignores NumCacheClusters (one member only): the module warns instead of changing it.
    members = again["replication_group"]["member_clusters"]
    assert len(members) == 2 or "num_cache_clusters is 2 but" in json.dumps(again.get("warnings"))


def test_modify_description_failover_and_tags_in_place(capsys, aws, moto: str, created: dict[str, Any]) -> None:
    result = run(
        capsys,
        moto,
        diff=True,
        **group_args(
            description="new description",
            multi_az=False,
            automatic_failover=False,
            tags={"Project": "ec2-fleet", "Owner": "ops"},
        ),
    )
    assert result["changed"] is True
    assert result["modified"] == ["AutomaticFailoverEnabled", "MultiAZEnabled", "ReplicationGroupDescription"]
    stored = describe(aws)
    assert stored["Description"] == "new description"
    assert stored["AutomaticFailover"] == "disabled"
    assert stored["MultiAZ"] == "disabled"
    tags = aws("elasticache").list_tags_for_resource(ResourceName=stored["ARN"])["TagList"]
    assert {t["Key"]: t["Value"] for t in tags} == {"Project": "ec2-fleet", "Owner": "ops"}
    assert stored["NodeGroups"][0]["PrimaryEndpoint"] == {
        "Address": created["replication_group"]["primary_endpoint"]["address"],
        "Port": 6379,
    }
    # Diff shows the settings before and after.
    assert result["diff"]["before"]["description"] == "ec2-fleet shared cache"
    assert result["diff"]["after"]["description"] == "new description"
    assert result["diff"]["before"]["multi_az"] is True
    assert result["diff"]["after"]["multi_az"] is False
    assert result["diff"]["after"]["tags"] == {"Project": "ec2-fleet", "Owner": "ops"}
    # And the modified group is stable.
    assert (
        run(
            capsys,
            moto,
            **group_args(
                description="new description",
                multi_az=False,
                automatic_failover=False,
                tags={"Project": "ec2-fleet", "Owner": "ops"},
            ),
        )["changed"]
        is False
    )


@pytest.mark.parametrize(
    ("option", "value"),
    [("port", 6380), ("transit_encryption", False), ("at_rest_encryption", False)],
)
def test_settings_fixed_at_creation_fail_naming_the_option(
    capsys, aws, moto: str, created: dict[str, Any], option: str, value: Any
) -> None:
    overrides = {option: value}
    if option == "transit_encryption":
        overrides["auth_token"] = None
    result = run(capsys, moto, **group_args(**overrides))
    assert result.get("failed") is True, result
    assert result["msg"].startswith(f"{option} cannot be changed in place")
    assert describe(aws)["Status"] == "available"


def test_check_mode_create_reports_a_change_and_creates_nothing(capsys, aws, moto: str, subnet_group: str) -> None:
    result = run(capsys, moto, check=True, diff=True, **group_args())
    assert result["changed"] is True
    assert result["replication_group"]["status"] == "would be created"
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["node_type"] == "cache.t4g.small"
    assert aws("elasticache").describe_replication_groups()["ReplicationGroups"] == []


def test_check_mode_modify_and_delete_change_nothing(capsys, aws, moto: str, created: dict[str, Any]) -> None:
    modify = run(capsys, moto, check=True, **group_args(description="other"))
    assert modify["changed"] is True
    assert modify["replication_group"]["description"] == "other"
    delete = run(capsys, moto, check=True, replication_group_id="fleet-test", state="absent")
    assert delete["changed"] is True
    stored = describe(aws)
    assert stored["Description"] == "ec2-fleet shared cache"
    assert stored["Status"] == "available"


def test_delete_starts_the_deletion_and_a_second_delete_is_a_no_op(
    capsys, aws, moto: str, created: dict[str, Any]
) -> None:
    result = run(capsys, moto, diff=True, replication_group_id="fleet-test", state="absent", wait=False)
    assert result["changed"] is True
    assert result["diff"]["before"]["node_type"] == "cache.t4g.small"
    assert result["diff"]["after"] == {}
    # moto 5.2.5 leaves a deleted group in status "deleting" for ever (AWS removes it after minutes).
    assert describe(aws)["Status"] == "deleting"
    again = run(capsys, moto, replication_group_id="fleet-test", state="absent", wait=False)
    assert again["changed"] is False
    assert run(capsys, moto, replication_group_id="fleet-test", state="query")["exists"] is False


def test_delete_with_wait_times_out_clearly_when_the_group_never_goes(
    capsys, moto: str, created: dict[str, Any]
) -> None:
    started = time.monotonic()
    result = run(capsys, moto, replication_group_id="fleet-test", state="absent", wait=True, wait_timeout=2)
    assert time.monotonic() - started < 30
    assert result.get("failed") is True
    assert "Timed out after wait_timeout=2s" in result["msg"]
    assert "'deleting'" in result["msg"]


def test_query_finds_the_group_and_never_creates_one(capsys, aws, moto: str, created: dict[str, Any]) -> None:
    found = run(capsys, moto, replication_group_id="fleet-test", state="query")
    assert found == {**found, "changed": False, "exists": True}
    assert found["replication_group"]["primary_endpoint"] == created["replication_group"]["primary_endpoint"]
    missing = run(capsys, moto, replication_group_id="nothing-here", state="query", node_type="cache.t4g.small")
    assert missing["changed"] is False
    assert missing["exists"] is False
    assert [g["ReplicationGroupId"] for g in aws("elasticache").describe_replication_groups()["ReplicationGroups"]] == [
        "fleet-test"
    ]


def test_auth_token_rotation_sends_the_token_with_the_strategy(capsys, moto: str, created: dict[str, Any]) -> None:
    rotated = run(capsys, moto, **group_args(auth_token="Another-token-98765", auth_token_update_strategy="ROTATE"))
    assert rotated["changed"] is True
    assert rotated["modified"] == ["AuthTokenUpdateStrategy"]
    assert "Another-token-98765" not in json.dumps(rotated)


def test_missing_subnet_group_fails_with_the_aws_error_code(capsys, aws, moto: str) -> None:
    result = run(capsys, moto, **group_args(cache_subnet_group_name="no-such-group"))
    assert result.get("failed") is True
    assert "cache_subnet_group_name 'no-such-group' does not exist" in result["msg"]
    assert "CacheSubnetGroupNotFoundFault" in result["msg"]
    assert "Traceback" not in result["msg"]
    assert aws("elasticache").describe_replication_groups()["ReplicationGroups"] == []


def test_unreachable_endpoint_fails_with_a_clear_message(capsys, closed_url: str) -> None:
    result = run(capsys, closed_url, **group_args())
    assert result.get("failed") is True
    assert result["msg"].startswith("Describing replication group fleet-test failed")
    assert "Could not connect to the endpoint URL" in result["msg"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"auth_token": "too-short"}, "auth_token must be 16-128 characters"),
        ({"auth_token": "has@at-sign-0123456789"}, "auth_token must be 16-128 characters"),
        ({"transit_encryption": False}, "auth_token needs transit_encryption=true"),
        ({"num_cache_clusters": 1}, "num_cache_clusters must be 2 or more"),
        ({"multi_az": True, "automatic_failover": False}, "multi_az=true needs automatic_failover=true"),
        ({"replication_group_id": "bad--id"}, "replication_group_id must be"),
        ({"node_type": None}, "node_type is required"),
    ],
)
def test_bad_options_fail_before_any_aws_call(capsys, closed_url: str, overrides: dict[str, Any], message: str) -> None:
    # The endpoint is a closed port: had the module called AWS, the message would be a connection error.
    result = run(capsys, closed_url, **group_args(**overrides))
    assert result.get("failed") is True
    assert message in result["msg"]


def test_endpoint_from_the_aws_url_environment_variable(
    capsys, monkeypatch: pytest.MonkeyPatch, aws, moto: str, subnet_group: str
) -> None:
    monkeypatch.setenv("AWS_URL", moto)
    params = {**group_args(), "region": REGION, **CREDENTIALS, "wait_delay": 1}
    capsys.readouterr()
    with patch_module_args(params), pytest.raises(SystemExit):
        module.main()
    assert json.loads(capsys.readouterr().out)["changed"] is True
    assert describe(aws)["Status"] == "available"
