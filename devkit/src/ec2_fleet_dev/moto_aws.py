"""The AWS control-plane tests' view of moto: the lab's constants, moto resets, resource snapshots."""

from __future__ import annotations

from collections.abc import Callable

import requests

from ec2_fleet_dev.paths import ROOT
from ec2_fleet_dev.plays import PlayResult

REGION = "us-east-1"
# moto ships Canonical's Ubuntu images under this owner.
CANONICAL = "099720109477"
AMI_PARAMETER = "/ec2-fleet/lab/ubuntu-ami-id"
# Access key of the tests' own boto3 clients; the playbooks sign with the lab's "testing".
CHECKS_ACCESS_KEY = "pytest-checks"
PLAYBOOK_ACCESS_KEY = "testing"


# One ansible run: rc, output, recap(), tail().
Run = PlayResult


def reset_moto(moto_url: str, client: Callable) -> str:
    """Empty moto, then store the lab's Ubuntu AMI parameter; return the AMI id."""
    requests.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    images = client("ec2").describe_images(Owners=[CANONICAL])["Images"]
    ami = sorted(images, key=lambda i: i["Name"])[-1]["ImageId"]
    client("ssm").put_parameter(Name=AMI_PARAMETER, Value=ami, Type="String", Overwrite=True)
    return ami


def cache_role_ready() -> bool:
    """The aws_cache role (another engineer's) exists with its tasks."""
    return (ROOT / "roles" / "aws_cache" / "tasks" / "main.yml").is_file()


def snapshot(client: Callable) -> dict[str, set[str]]:
    """Ids of every resource kind the playbooks create (default VPC pieces included)."""
    ec2 = client("ec2")
    elb = client("elbv2")
    live = ["pending", "running", "stopping", "stopped"]
    reservations = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": live}])["Reservations"]
    return {
        "vpcs": {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]},
        "subnets": {s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]},
        "security_groups": {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]},
        "route_tables": {r["RouteTableId"] for r in ec2.describe_route_tables()["RouteTables"]},
        "internet_gateways": {g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"]},
        "key_pairs": {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]},
        "instances": {i["InstanceId"] for r in reservations for i in r["Instances"]},
        "target_groups": {t["TargetGroupArn"] for t in elb.describe_target_groups()["TargetGroups"]},
        "load_balancers": {lb["LoadBalancerArn"] for lb in elb.describe_load_balancers()["LoadBalancers"]},
        "cache_groups": {
            g["ReplicationGroupId"] for g in client("elasticache").describe_replication_groups()["ReplicationGroups"]
        },
        # The monitoring (roles/aws_monitoring): alarms, dashboards, topics and subscriptions, log groups.
        "alarms": {a["AlarmName"] for a in client("cloudwatch").describe_alarms()["MetricAlarms"]},
        "dashboards": {d["DashboardName"] for d in client("cloudwatch").list_dashboards()["DashboardEntries"]},
        "topics": {t["TopicArn"] for t in client("sns").list_topics()["Topics"]},
        "subscriptions": {s["SubscriptionArn"] for s in client("sns").list_subscriptions()["Subscriptions"]},
        "log_groups": {g["logGroupName"] for g in client("logs").describe_log_groups()["logGroups"]},
    }
