"""teardown.yml: refused without confirmation, then removes this environment and nothing else.

One provisioned environment for every test_provision_* file (the session's `lab` fixture, tests/aws/conftest.py);
the files run in the order tests/aws/conftest.py gives them: provision twice, inspect, alb_target, teardown.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from provision_helpers import PREFIX, TEARDOWN, _live_instances, _network, _tag_filters

from ec2_fleet_dev.moto_aws import Run, cache_role_ready, snapshot

pytestmark = pytest.mark.usefixtures("lab")


def test_teardown_refuses_without_confirmation(client: Callable, run: Callable[..., Run]) -> None:
    before = snapshot(client)
    for confirm in (None, "staging"):
        refused = run("playbooks/teardown.yml", {"teardown_confirm": confirm} if confirm else None)
        assert refused.rc != 0, refused.tail()
        assert "teardown_confirm=lab" in refused.output
    assert snapshot(client) == before


def test_teardown_removes_only_this_environment(
    client: Callable, run: Callable[..., Run], lab: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    ec2 = client("ec2")
    # As AWS refuses (moto does not): no deleting a load balancer while its deletion protection is on.
    from moto.elbv2.exceptions import ELBClientError
    from moto.elbv2.models import ELBv2Backend

    delete = ELBv2Backend.delete_load_balancer

    def protected_delete(self: ELBv2Backend, arn: str) -> None:
        lb = self.load_balancers.get(arn)
        if lb is not None and lb.attrs.get("deletion_protection.enabled") == "true":
            raise ELBClientError("OperationNotPermitted", f"Load balancer '{arn}' has deletion protection")
        delete(self, arn)

    monkeypatch.setattr(ELBv2Backend, "delete_load_balancer", protected_delete)
    lb = client("elbv2").describe_load_balancers(Names=[PREFIX])["LoadBalancers"][0]["LoadBalancerArn"]
    client("elbv2").modify_load_balancer_attributes(
        LoadBalancerArn=lb, Attributes=[{"Key": "deletion_protection.enabled", "Value": "true"}]
    )
    # Untagged things inside the environment's own VPC, and an untagged group that carries one of our names.
    # (An untagged subnet would make DeleteVpc fail with DependencyViolation, in moto as in AWS.)
    net = _network(client)
    private = net["tiers"]["private"][0]["SubnetId"]
    inside = {
        "sg": ec2.create_security_group(GroupName="not-ours-inside", Description="untagged", VpcId=net["vpc"])[
            "GroupId"
        ],
        "instance": ec2.run_instances(ImageId=lab["ami"], MinCount=1, MaxCount=1, SubnetId=private)["Instances"][0][
            "InstanceId"
        ],
        "namesake": ec2.create_security_group(
            GroupName=f"{PREFIX}-hosts", Description="untagged namesake", VpcId=lab["foreign"]["vpc"]
        )["GroupId"],
    }
    removed = run("playbooks/teardown.yml", TEARDOWN)
    assert removed.rc == 0, removed.tail()
    elb = client("elbv2")
    tagged = _tag_filters()
    assert _live_instances(ec2, tagged) == []
    assert ec2.describe_vpcs(Filters=tagged)["Vpcs"] == []
    assert ec2.describe_subnets(Filters=tagged)["Subnets"] == []
    assert ec2.describe_security_groups(Filters=tagged)["SecurityGroups"] == []
    assert ec2.describe_route_tables(Filters=tagged)["RouteTables"] == []
    assert ec2.describe_internet_gateways(Filters=tagged)["InternetGateways"] == []
    assert ec2.describe_key_pairs(Filters=tagged)["KeyPairs"] == []
    assert client("iam").list_instance_profiles()["InstanceProfiles"] == []
    assert [r["RoleName"] for r in client("iam").list_roles()["Roles"] if r["RoleName"].startswith(PREFIX)] == []
    assert elb.describe_load_balancers()["LoadBalancers"] == []
    assert elb.describe_target_groups()["TargetGroups"] == []
    # The monitoring (roles/aws_monitoring): alarms, dashboard, topic with its subscriptions, log group.
    cloudwatch, sns = client("cloudwatch"), client("sns")
    assert cloudwatch.describe_alarms(AlarmNamePrefix=f"{PREFIX}-")["MetricAlarms"] == []
    assert cloudwatch.list_dashboards()["DashboardEntries"] == []
    assert sns.list_topics()["Topics"] == [] and sns.list_subscriptions()["Subscriptions"] == []
    assert client("logs").describe_log_groups(logGroupNamePrefix="/ec2-fleet/lab/")["logGroups"] == []
    if cache_role_ready():
        # moto 5.2.5 never finishes deleting a replication group (it stays "deleting"), hence
        # aws_cache_wait=false in TEARDOWN: the deletion must have been asked for.
        left = client("elasticache").describe_replication_groups()["ReplicationGroups"]
        assert [g["Status"] for g in left] in ([], ["deleting"]), left
    # Untagged things and the other environment's instance are still there.
    foreign = lab["foreign"]
    assert ec2.describe_vpcs(VpcIds=[foreign["vpc"]])["Vpcs"]
    assert ec2.describe_security_groups(GroupIds=[foreign["sg"]])["SecurityGroups"]
    assert ec2.describe_key_pairs(KeyNames=[foreign["key"]])["KeyPairs"]
    alive = {i["InstanceId"] for i in _live_instances(ec2, [])}
    assert {foreign["instance"], foreign["staging"], inside["instance"]} <= alive
    assert {
        g["GroupId"]
        for g in ec2.describe_security_groups(GroupIds=[inside["sg"], inside["namesake"]])["SecurityGroups"]
    } == {inside["sg"], inside["namesake"]}
    # A second teardown finds nothing to do.
    again = run("playbooks/teardown.yml", TEARDOWN)
    assert again.rc == 0 and again.recap()["localhost"]["changed"] == 0, again.tail()
