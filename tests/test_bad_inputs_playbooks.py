"""Bad inputs to the playbooks themselves: extra-vars, inventory settings, a missing file, missing AWS
credentials and an unreachable AWS endpoint. The real playbooks run with inventories/lab (or an inventory
without env.yml); each run fails on the control node before any change, with a message naming the problem.

Nothing here reaches a host: the lab inventory lists no instance (its AWS is dead or an empty moto).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest

from ec2_fleet_dev.plays import ROOT, PlayResult, failure_messages, free_port, moto_server, run_playbook

# The lab's key pair file exists only once `labctl up` made it; the cases below are about other inputs.
NO_KEY_FILE = {"aws_instances_public_key_file": ""}
# The lab's env.yml holds dummy keys: empty them to run as an ops box without credentials would.
NO_KEYS = {**NO_KEY_FILE, "aws_access_key": "", "aws_secret_key": ""}
SOURCE_MISSING = "/nonexistent/orders-api"

# The secrets staging and production list in env.yml, asked of the lab inventory (whose secrets are plain).
VAULT_DB = {"name": "vault_fleet_database_url", "needed_by": ["configure"], "what": "the PostgreSQL URL of the app"}
VAULT_CACHE = {"name": "vault_aws_cache_auth_token", "needed_by": ["provision", "configure"],
               "what": "the Redis AUTH token"}  # fmt: skip

# (id, playbook, inventory, extra vars, AWS: "dead" endpoint or "moto" without credentials, phrase of the refusal)
# In the phrases, {dead} is the unreachable endpoint's URL.
CASES = [
    ("provision-unreachable-endpoint", "provision", "lab", NO_KEY_FILE, "dead",
     'Could not connect to the endpoint URL: "{dead}/"'),
    ("site-unreachable-endpoint", "site", "lab", {}, "dead",
     'Describing replication group ec2-fleet-lab failed: Could not connect to the endpoint URL: "{dead}/"'),
    ("teardown-unreachable-endpoint", "teardown", "lab", {**NO_KEY_FILE, "teardown_confirm": "lab"}, "dead",
     'Could not connect to the endpoint URL: "{dead}/"'),
    ("verify-unreachable-endpoint", "verify", "lab", {}, "dead",
     'Failed to list target groups: Could not connect to the endpoint URL: "{dead}/"'),
    ("provision-no-credentials", "provision", "lab", NO_KEYS, "moto", "Unable to locate credentials"),
    ("site-no-credentials", "site", "lab", NO_KEYS, "moto",
     "Describing replication group ec2-fleet-lab failed: Unable to locate credentials"),
    # teardown.yml's first AWS call lists the monitoring's alarms (it deletes them before what they watch).
    ("teardown-no-credentials", "teardown", "lab", {**NO_KEYS, "teardown_confirm": "lab"}, "moto",
     "Unable to list the alarms named ec2-fleet-lab-*: Unable to locate credentials"),
    ("verify-no-credentials", "verify", "lab", NO_KEYS, "moto",
     "Failed to list target groups: Unable to locate credentials"),
    ("site-malformed-app-version", "site", "lab", {"app_version": "1.0/../../etc"}, "dead",
     "app_version (got '1.0/../../etc')"),
    ("site-malformed-rollback-to", "site", "lab", {"app_rollback_to": "1.0 beta"}, "dead",
     "app_rollback_to (got '1.0 beta')"),
    ("site-missing-source-tree", "site", "lab", {"app_version": "2.0.0", "app_source_dir": SOURCE_MISSING}, "dead",
     f"app_source_dir: {SOURCE_MISSING} is not a directory on the control node"),
    ("site-malformed-fleet-app-version", "site", "lab", {"fleet_app_version": "1.0 beta"}, "dead",
     "fleet_app_version must be a release version such as 1.2.0 (got '1.0 beta')"),
    ("teardown-without-confirmation", "teardown", "lab", NO_KEY_FILE, "dead",
     "Confirm with -e teardown_confirm=lab (teardown_confirm was '')"),
    ("teardown-wrong-confirmation", "teardown", "lab", {**NO_KEY_FILE, "teardown_confirm": "production"}, "dead",
     "Confirm with -e teardown_confirm=lab (teardown_confirm was 'production')"),
    ("provision-bad-region", "provision", "lab", {**NO_KEY_FILE, "aws_region": "mars-1"}, "dead",
     "aws_region a region like eu-west-1 (got 'mars-1')"),
    ("provision-bad-endpoint-url", "provision", "lab", {**NO_KEY_FILE, "aws_endpoint_url": "ftp://aws.internal"},
     "dead", "aws_endpoint_url empty or an http(s) URL (got 'ftp://aws.internal')"),
    ("provision-missing-public-key-file", "provision", "lab",
     {"aws_instances_public_key_file": "/nonexistent/id_ed25519.pub"}, "dead",
     "aws_instances_public_key_file (got '/nonexistent/id_ed25519.pub') needs aws_instances_key_name and must be a "
     "readable file"),
    ("provision-malformed-certificate-arn", "provision", "lab",
     {**NO_KEY_FILE, "aws_alb_certificate_arn": "arn:aws:acm:eu-west-1:cert"}, "dead",
     "aws_alb_certificate_arn empty or an ACM certificate ARN (got 'arn:aws:acm:eu-west-1:cert')"),
    ("provision-inventory-without-env", "provision", "no-env", {}, "dead",
     "fleet_environment must be 1-20 lower-case letters, digits or '-' (got 'unset-environment')"),
    ("site-inventory-without-env", "site", "no-env", {}, "dead",
     "fleet_environment must name the environment (got 'unset-environment': run with -i inventories/ENV)"),
    ("teardown-inventory-without-env", "teardown", "no-env", {"teardown_confirm": "unset-environment"}, "dead",
     "fleet_environment is not set (got 'unset-environment'): run with -i inventories/ENV"),
    ("verify-inventory-without-env", "verify", "no-env", {}, "dead", "requires a region and none was found"),
    ("site-missing-vault-variable", "site", "lab", {"fleet_vault_variables": [VAULT_DB, VAULT_CACHE],
     "vault_aws_cache_auth_token": "Lab-token-0123456789"}, "dead",
     "vault_fleet_database_url (the PostgreSQL URL of the app) is missing or empty: set it in "
     "inventories/lab/group_vars/all/vault.yml"),
    ("site-empty-vault-variable", "site", "lab", {"fleet_vault_variables": [VAULT_DB],
     "vault_fleet_database_url": ""}, "dead",
     "vault_fleet_database_url (the PostgreSQL URL of the app) is missing or empty"),
    ("bake-keep-no-image", "bake", "lab", {"bake_keep_images": 0}, "dead", "bake_keep_images at least 1 (got '0')"),
    ("bake-malformed-app-version", "bake", "lab", {"app_version": "1.0/../x"}, "dead",
     "app_version a release such as 1.2.0 (got '1.0/../x')"),
    ("bake-force-not-a-boolean", "bake", "lab", {"bake_force": "maybe"}, "dead",
     "bake_force true or false (got 'maybe')"),
    ("bake-inventory-without-env", "bake", "no-env", {}, "dead",
     "bake.yml needs -i inventories/ENV (got environment 'unset-environment')"),
    ("provision-placeholder-vault-variable", "provision", "lab", {**NO_KEY_FILE, "fleet_vault_variables":
     [VAULT_DB, VAULT_CACHE], "vault_aws_cache_auth_token": "CHANGE-ME-to-a-random-token"}, "dead",
     "vault_aws_cache_auth_token (the Redis AUTH token) is still the placeholder of vault.yml.example"),
]


@pytest.fixture(scope="module")
def no_env_inventory(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An inventory with the shared group_vars but no env.yml (a forgotten or mistyped -i)."""
    inventory = tmp_path_factory.mktemp("no-env")
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "group_vars" / "all" / "00_shared").symlink_to(ROOT / "group_vars" / "all")
    (inventory / "hosts.yml").write_text("all: {}\n")
    return str(inventory)


def _aws_state(url: str) -> dict[str, list]:
    """What exists in moto: the kinds of things the playbooks create or delete."""

    def aws(service: str):
        return boto3.client(
            service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="checks", aws_secret_access_key="x"
        )

    ec2, elb = aws("ec2"), aws("elbv2")
    return {
        "vpcs": sorted(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]),
        "security_groups": sorted(g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]),
        "subnets": sorted(s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]),
        "key_pairs": sorted(k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]),
        "instances": sorted(i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]),
        "target_groups": sorted(t["TargetGroupArn"] for t in elb.describe_target_groups()["TargetGroups"]),
        "load_balancers": sorted(lb["LoadBalancerArn"] for lb in elb.describe_load_balancers()["LoadBalancers"]),
        "cache": sorted(
            g["ReplicationGroupId"] for g in aws("elasticache").describe_replication_groups()["ReplicationGroups"]
        ),
        "parameters": sorted(p["Name"] for p in aws("ssm").describe_parameters()["Parameters"]),
    }


def _seed(url: str) -> None:
    """The lab environment's network as provision.yml leaves it: what teardown.yml would delete."""
    ec2 = boto3.client(
        "ec2", endpoint_url=url, region_name="us-east-1", aws_access_key_id="checks", aws_secret_access_key="x"
    )
    tags = [{"Key": "Project", "Value": "ec2-fleet"}, {"Key": "Environment", "Value": "lab"}]
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": tags}])
    vpc_id = vpc["Vpc"]["VpcId"]
    ec2.create_subnet(
        VpcId=vpc_id, CidrBlock="10.77.10.0/24", TagSpecifications=[{"ResourceType": "subnet", "Tags": tags}]
    )
    ec2.create_security_group(
        GroupName="ec2-fleet-lab-hosts",
        Description="seed",
        VpcId=vpc_id,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}],
    )


@pytest.fixture(scope="module")
def refused(no_env_inventory: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Every case run once, four at a time; the moto cases against one moto seeded with a tagged network."""
    cache = tmp_path_factory.mktemp("inventory-cache")
    dead = f"http://127.0.0.1:{free_port()}"
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    base.update(
        {
            "ANSIBLE_INVENTORY_CACHE_CONNECTION": str(cache),
            "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache / "facts"),
            # Never ask an instance metadata service for credentials (no traffic beyond 127.0.0.1).
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
            "AWS_CONFIG_FILE": "/nonexistent/config",
        }
    )
    with moto_server() as moto:
        _seed(moto)
        before = _aws_state(moto)

        def run(case: tuple) -> PlayResult:
            case_id, playbook, inventory, extra, aws, _ = case
            # EC2_FLEET_TEST_CASE names the case for tools/bad_inputs_table.py (these runs share one pytest node).
            env = {**base, "AWS_URL": dead if aws == "dead" else moto, "EC2_FLEET_TEST_CASE": case_id}
            inventory = no_env_inventory if inventory == "no-env" else "inventories/lab"
            return run_playbook(Path("playbooks") / f"{playbook}.yml", inventory, extra, env=env, timeout=300)

        # run_playbook merges os.environ under env: clear the AWS_* ones for the runs' own environment.
        with pytest.MonkeyPatch.context() as patch:
            for key in [k for k in os.environ if k.startswith("AWS_")]:
                patch.delenv(key)
            with ThreadPoolExecutor(max_workers=4) as pool:
                results = list(pool.map(run, CASES))
        yield {"dead": dead, "results": results, "before": before, "after": _aws_state(moto)}


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[0] for c in CASES])
def test_bad_playbook_input_is_refused_before_any_change(index: int, refused: dict) -> None:
    case_id, playbook, _, extra, _, phrase = CASES[index]
    result = refused["results"][index]
    phrase = phrase.format(dead=refused["dead"])
    assert result.rc != 0, f"{playbook}.yml accepted {extra}:\n{result.tail()}"
    messages = [re.sub(r"\s+", " ", m) for m in failure_messages(result.output)]
    assert any(phrase in m for m in messages), f"no failure message says {phrase!r}: {messages or result.tail()}"
    recap = result.recap()
    assert recap, result.tail()
    assert all(counts.get("changed", 0) == 0 for counts in recap.values()), f"{case_id} changed something: {recap}"
    # Nothing reached a host: the only host of every run is the control node.
    assert set(recap) == {"localhost"}, recap


def test_moto_runs_without_credentials_changed_nothing(refused: dict) -> None:
    assert refused["before"]["vpcs"], "the seeded network is missing"
    assert refused["after"] == refused["before"]
