"""Bad inputs to provision.yml fail before any AWS resource is created, naming the variable."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from ec2_fleet_dev.moto_aws import Run, reset_moto, snapshot
from ec2_fleet_dev.plays import failure_messages

SAFE = {"provision_cache": False, "provision_wait_for_hosts": False}
CASE_ENV = "EC2_FLEET_TEST_CASE"

CASES = [
    # (variable, bad value): one zone only, or the same zone twice.
    ("aws_network_public_subnet_cidrs", ["10.89.0.0/24"]),
    ("aws_network_availability_zones", ["us-east-1a", "us-east-1a"]),
    ("aws_network_vpc_cidr", "10.89.0.0/33"),
    ("aws_network_private_subnet_cidrs", ["10.89.10.0/24", "10.99.11.0/24"]),
    ("aws_network_ssh_cidrs", ["203.0.113.7"]),
    ("aws_instances_type", "t3-small"),
    ("aws_instances_count", -1),
    ("aws_instances_count", "two"),
    ("aws_alb_health_check_path", "health"),
    ("aws_alb_health_check_timeout", 5),
    ("aws_alb_health_check_matcher", "ok"),
    # No certificate (none of aws_alb_certificate_arn/_ssm_parameter/_domain) and no opt-out.
    ("aws_alb_allow_http_only", False),
    ("aws_alb_certificate_domain", "Shop Example"),
    ("aws_alb_access_logs_prefix", "/logs/"),
    ("fleet_environment", "Lab Env"),
    # An arm64 (Graviton) type with the lab's x86-64 AMI; a release Canonical's parameter does not serve.
    ("aws_instances_type", "m7g.large"),
    ("aws_instances_ubuntu_release", "20.04"),
    # The database port open to nowhere in particular: refused unless said explicitly.
    ("aws_network_database_cidrs", []),
    ("aws_network_database_cidrs", ["10.0.0.1"]),
    ("aws_network_teardown_retries", 1000),
    # An access mode that does not exist, and a bastion that nobody may reach.
    ("fleet_access", "vpn"),
    ("fleet_bastion_cidrs", []),
    # An external Redis without TLS, refused before the network exists (not when the cache's turn comes).
    ("aws_cache_external_url", "redis://default:pw@redis-12345.cloud.example:12345"),
    # The monitoring (roles/aws_monitoring): an alarm's settings (shares 0-1, percentages 0-100), the topic's
    # subscriptions, the log group's retention; MONITORING_ALLOWED below holds what each message must allow.
    ("aws_monitoring_alarm_overrides", {"alb_5xx_share": {"threshold": 5}}),
    ("aws_monitoring_alarm_overrides", {"host_cpu": {"threshold": 150}}),
    ("aws_monitoring_alarm_overrides", {"unhealthy_hosts": {"evaluation_periods": 0}}),
    ("aws_monitoring_alarm_overrides", {"cache_memory": {"datapoints_to_alarm": 5}}),
    ("aws_monitoring_alarm_overrides", {"target_response_time_p99": {"period": 90}}),
    ("aws_monitoring_alarm_overrides", {"host_cpu": {"treat_missing_data": "zero"}}),
    ("aws_monitoring_alarm_overrides", {"disk_full": {"threshold": 90}}),
    ("aws_monitoring_subscriptions", [{"protocol": "pigeon", "endpoint": "ops"}]),
    ("aws_monitoring_log_retention_days", 10),
    ("aws_monitoring_topic_kms_key", "alias/aws/sns"),
]
# What the message of each monitoring case says is allowed (by the case's index in CASES).
MONITORING_ALLOWED = [
    "aws_monitoring_alarm_overrides.alb_5xx_share.threshold must be a share of requests from 0 to 1",
    "aws_monitoring_alarm_overrides.host_cpu.threshold must be a percentage from 0 to 100",
    "aws_monitoring_alarm_overrides.unhealthy_hosts.evaluation_periods must be 1 or more",
    "aws_monitoring_alarm_overrides.cache_memory.datapoints_to_alarm must be 1 to evaluation_periods (3)",
    "aws_monitoring_alarm_overrides.target_response_time_p99.period must be 10, 30 or a multiple of 60",
    "aws_monitoring_alarm_overrides.host_cpu.treat_missing_data must be one of breaching, notBreaching",
    "aws_monitoring_alarm_overrides.disk_full is no alarm of this role; the alarms are alb_5xx_share",
    "aws_monitoring_subscriptions[0].protocol must be one of email, email-json, https",
    "aws_monitoring_log_retention_days must be one of CloudWatch Logs' values 0, 1, 3, 5, 7, 14",
    "aws_monitoring_topic_kms_key must not be AWS's managed key for SNS (alias/aws/sns): CloudWatch alarms cannot",
]
MONITORING_FIRST = len(CASES) - len(MONITORING_ALLOWED)


@pytest.fixture
def fresh(moto_url: str, client: Callable) -> dict:
    reset_moto(moto_url, client)
    return snapshot(client)


@pytest.fixture(scope="module")
def refused(moto_url: str, client: Callable, run: Callable[..., Run]) -> dict:
    """Every case of CASES run against one fresh moto, four at a time (they only read from AWS)."""
    reset_moto(moto_url, client)
    before = snapshot(client)
    with ThreadPoolExecutor(max_workers=4) as pool:
        # EC2_FLEET_TEST_CASE names the case for tools/bad_inputs_table.py (these runs share one pytest node).
        futures = [
            pool.submit(run, "playbooks/provision.yml", {**SAFE, name: value}, env={CASE_ENV: f"{name}={value!r}"})
            for name, value in CASES
        ]
        results = [future.result() for future in futures]
    return {"before": before, "after": snapshot(client), "results": results}


def _assert_refused(result: Run, variable: str, before: dict, after: dict) -> None:
    assert result.rc != 0, f"provision.yml accepted a bad {variable}:\n{result.tail()}"
    # The failed task's own message names the input (not just any line of the output).
    messages = failure_messages(result.output)
    assert any(variable in m for m in messages), f"no failure message names {variable}: {messages or result.tail()}"
    recap = result.recap().get("localhost", {})
    assert recap.get("changed", 0) == 0, result.tail()
    assert after == before, f"resources appeared although {variable} was bad"


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{v}={x!r}" for v, x in CASES])
def test_bad_input_is_refused_before_any_change(index: int, refused: dict) -> None:
    variable = CASES[index][0]
    result = refused["results"][index]
    _assert_refused(result, variable, refused["before"], refused["after"])


def test_a_missing_certificate_is_refused_naming_the_certificate_and_the_opt_out(refused: dict) -> None:
    """Outside the lab (no certificate parameter), provision refuses to serve plain HTTP unless told so."""
    result = refused["results"][CASES.index(("aws_alb_allow_http_only", False))]
    messages = failure_messages(result.output)
    assert any(
        "aws_alb_certificate_arn" in m and "aws_alb_certificate_domain" in m and "aws_alb_allow_http_only: true" in m
        for m in messages
    ), messages or result.tail()


@pytest.mark.parametrize("offset", range(len(MONITORING_ALLOWED)), ids=[m.split(" ")[0] for m in MONITORING_ALLOWED])
def test_a_bad_monitoring_input_is_refused_saying_what_is_allowed(offset: int, refused: dict) -> None:
    result = refused["results"][MONITORING_FIRST + offset]
    messages = failure_messages(result.output)
    assert any(MONITORING_ALLOWED[offset] in m for m in messages), messages or result.tail()


def test_existing_subnets_in_one_zone_are_refused(fresh: dict, client: Callable, run: Callable[..., Run]) -> None:
    """An existing VPC whose given subnets all sit in one availability zone."""
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.50.{i}.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
        for i in range(4)
    ]
    before = snapshot(client)
    result = run(
        "playbooks/provision.yml",
        {
            **SAFE,
            "aws_network_vpc_id": vpc,
            "aws_network_public_subnet_ids": subnets[:2],
            "aws_network_private_subnet_ids": subnets[2:],
        },
    )
    _assert_refused(result, "aws_network_public_subnet_ids", before, snapshot(client))


def test_unknown_ami_is_refused_before_any_instance(fresh: dict, client: Callable, run: Callable[..., Run]) -> None:
    """The AMI is looked up (read-only) before the network is created."""
    result = run("playbooks/provision.yml", {**SAFE, "aws_instances_ami_id": "ami-0123456789abcdef0"})
    _assert_refused(result, "aws_instances_ami_id", fresh, snapshot(client))
    assert "AMI ami-0123456789abcdef0 (from aws_instances_ami_id" in " ".join(failure_messages(result.output))


def test_a_missing_instance_profile_is_refused_before_any_change(
    fresh: dict, client: Callable, run: Callable[..., Run]
) -> None:
    """An existing instance profile named (aws_host_iam_create false) that the account does not hold."""
    result = run("playbooks/provision.yml", {**SAFE, "aws_host_iam_create": False})
    _assert_refused(result, "aws_host_iam_name", fresh, snapshot(client))
    assert "The instance profile 'ec2-fleet-lab-host' (aws_host_iam_name) does not exist" in " ".join(
        failure_messages(result.output)
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://default:plaintext-secret-pw@redis-12345.cloud.example:12345", "aws_cache_external_url uses redis://"),
        ("rediss://redis-12345.cloud.example:12345", "aws_cache_external_url has no password"),
    ],
    ids=["without-tls", "without-password"],
)
def test_an_external_redis_without_tls_or_password_is_refused_before_any_change(
    fresh: dict, client: Callable, run: Callable[..., Run], url: str, expected: str
) -> None:
    """site.yml in an environment that did not set aws_cache_external_allow_insecure (the lab's inventory
    does not either): refused on the control node, before any host or AWS resource changes, naming the
    variable and the setting, and never showing the URL."""
    result = run("playbooks/site.yml", {"aws_cache_external_url": url})
    _assert_refused(result, "aws_cache_external_url", fresh, snapshot(client))
    messages = " ".join(failure_messages(result.output))
    assert expected in messages and "aws_cache_external_allow_insecure: true" in messages, messages
    assert "plaintext-secret-pw" not in result.output and "redis-12345.cloud.example" not in result.output
    # The first play failed on localhost: no play on the hosts started.
    assert "Configure the app hosts" not in result.output
