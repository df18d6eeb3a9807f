"""Every resource provision.yml makes carries the project's and the environment's tags.

One provisioned environment for every test_provision_* file (the session's `lab` fixture, tests/aws/conftest.py);
the files run in the order tests/aws/conftest.py gives them: provision twice, inspect, alb_target, teardown.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from provision_helpers import ENV, PREFIX, TAGS, _live_instances, _our_vpc, _tags

from ec2_fleet_dev.moto_aws import cache_role_ready

pytestmark = pytest.mark.usefixtures("lab")


def test_every_resource_is_tagged(client: Callable) -> None:
    """Everything provision.yml made, found by VPC id or by name, carries the Project and Environment tags.

    AWS makes the VPC's main route table, default security group and default network ACL itself; the
    playbooks neither create nor delete them.
    """
    ec2, elb, elasticache = client("ec2"), client("elbv2"), client("elasticache")
    vpc = _our_vpc(ec2)
    in_vpc = [{"Name": "vpc-id", "Values": [vpc]}]
    instances = _live_instances(ec2, in_vpc)
    tables = ec2.describe_route_tables(Filters=in_vpc)["RouteTables"]
    gateways = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc]}])
    volumes = ec2.describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [i["InstanceId"] for i in instances]}]
    )["Volumes"]
    tg = elb.describe_target_groups(Names=[f"{PREFIX}-tg"])["TargetGroups"][0]["TargetGroupArn"]
    lb = elb.describe_load_balancers(Names=[PREFIX])["LoadBalancers"][0]["LoadBalancerArn"]
    elb_tags = {d["ResourceArn"]: _tags(d) for d in elb.describe_tags(ResourceArns=[tg, lb])["TagDescriptions"]}
    found: dict[str, dict[str, dict[str, str]]] = {
        "vpc": {vpc: _tags(ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0])},
        "subnet": {s["SubnetId"]: _tags(s) for s in ec2.describe_subnets(Filters=in_vpc)["Subnets"]},
        "security group": {
            g["GroupId"]: _tags(g)
            for g in ec2.describe_security_groups(Filters=in_vpc)["SecurityGroups"]
            if g["GroupName"] != "default"
        },
        "route table": {
            t["RouteTableId"]: _tags(t) for t in tables if not any(a.get("Main") for a in t.get("Associations", []))
        },
        "internet gateway": {g["InternetGatewayId"]: _tags(g) for g in gateways["InternetGateways"]},
        "instance": {i["InstanceId"]: _tags(i) for i in instances},
        "volume": {v["VolumeId"]: _tags(v) for v in volumes},
        "key pair": {k["KeyName"]: _tags(k) for k in ec2.describe_key_pairs(KeyNames=[PREFIX])["KeyPairs"]},
        "target group": {tg: elb_tags.get(tg, {})},
        "load balancer": {lb: elb_tags.get(lb, {})},
    }
    if cache_role_ready():
        group = elasticache.describe_replication_groups(ReplicationGroupId=PREFIX)["ReplicationGroups"][0]
        found["replication group"] = {
            group["ARN"]: _tags(elasticache.list_tags_for_resource(ResourceName=group["ARN"]), "TagList")
        }
    counts = {kind: len(ids) for kind, ids in found.items()}
    expected = {"vpc": 1, "subnet": 4, "security group": 4, "route table": 2, "internet gateway": 1, "instance": 3}
    assert counts.items() >= {**expected, "volume": 3, "key pair": 1}.items(), counts
    untagged = {
        f"{kind} {rid}": tags
        for kind, ids in found.items()
        for rid, tags in ids.items()
        if not tags.items() >= TAGS.items()
    }
    assert untagged == {}, f"resources without Project={TAGS['Project']} Environment={ENV}: {untagged}"
