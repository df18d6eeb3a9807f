"""What the test_provision_* files share: the environment's names and tags, the inputs they pin, and
readers of what provision.yml made."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ec2_fleet_dev.moto_aws import cache_role_ready

# The test_provision_* files share one provisioned environment (the `lab` fixture): provision twice,
# inspect it, then the tests that change it (alb_target, HTTPS, a domain), site.yml, and the teardown last.
PROVISION_ORDER = ["rerun", "network", "instances", "cache", "tags", "monitoring", "weights", "alb", "site", "teardown"]
PROVISION_FILES = {f"test_provision_{stem}.py" for stem in PROVISION_ORDER}

ENV = "lab"


TAGS = {"Project": "ec2-fleet", "Environment": ENV}


PREFIX = "ec2-fleet-lab"


HEALTH = {
    "aws_alb_health_check_path": "/healthz",
    "aws_alb_health_check_interval": 7,
    "aws_alb_health_check_timeout": 3,
    "aws_alb_healthy_threshold": 3,
    "aws_alb_unhealthy_threshold": 4,
    "aws_alb_health_check_matcher": "200-299",
    "aws_alb_deregistration_delay": 4,
    "aws_alb_slow_start": 45,
}


EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


TEARDOWN = {
    "teardown_confirm": ENV,
    "provision_cache": cache_role_ready(),
    "aws_instances_key_name": PREFIX,
    "aws_cache_wait": False,
}


def _tag_filters(**extra: str) -> list[dict]:
    tags = {**TAGS, **extra}
    return [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]


def _live_instances(ec2, filters: list[dict]) -> list[dict]:
    filters = [*filters, {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
    return [i for r in ec2.describe_instances(Filters=filters)["Reservations"] for i in r["Instances"]]


def _network(client: Callable) -> dict:
    ec2 = client("ec2")
    vpcs = ec2.describe_vpcs(Filters=_tag_filters())["Vpcs"]
    assert len(vpcs) == 1, vpcs
    vpc = vpcs[0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    tiers: dict[str, list[dict]] = {"public": [], "private": []}
    for subnet in subnets:
        tier = {t["Key"]: t["Value"] for t in subnet.get("Tags", [])}.get("Tier")
        tiers[tier].append(subnet)
    groups = {
        {t["Key"]: t["Value"] for t in g.get("Tags", [])}.get("Tier"): g
        for g in ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}, *_tag_filters()])[
            "SecurityGroups"
        ]
    }
    return {"vpc": vpc, "tiers": tiers, "groups": groups}


def _rules(permissions: list[dict]) -> set[tuple]:
    """Flatten IpPermissions into (protocol, from, to, source) tuples, one per source."""
    flat = set()
    for perm in permissions:
        key = (perm["IpProtocol"], perm.get("FromPort"), perm.get("ToPort"))
        flat.update((*key, r["CidrIp"]) for r in perm.get("IpRanges", []))
        flat.update((*key, r["CidrIpv6"]) for r in perm.get("Ipv6Ranges", []))
        flat.update((*key, p["GroupId"]) for p in perm.get("UserIdGroupPairs", []))
        flat.update((*key, p["PrefixListId"]) for p in perm.get("PrefixListIds", []))
    return flat


def _tags(resource: dict, key: str = "Tags") -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get(key) or []}


def _our_vpc(ec2) -> str:
    """The VPC of the pinned CIDR, found without its tags (the tag checks must not rely on them)."""
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "cidr-block-association.cidr-block", "Values": ["10.89.0.0/16"]}])
    assert len(vpcs["Vpcs"]) == 1, vpcs["Vpcs"]
    return vpcs["Vpcs"][0]["VpcId"]


def _plain(value: object) -> object:
    """Unwrap ansible-inventory's tagged values ({"__ansible_unsafe": "i-..."})."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)).startswith("__ansible_"):
            return _plain(next(iter(value.values())))
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _target_play(tmp_path: Path, moto_url: str, state: str, instances: list[dict]) -> tuple[str, str]:
    inventory = tmp_path / f"hosts-{state}.json"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {
                        i["InstanceId"]: {"instance_id": i["InstanceId"], "ansible_connection": "local"}
                        for i in instances
                    }
                }
            }
        )
    )
    play = tmp_path / f"target-{state}.yml"
    play.write_text(
        json.dumps(
            [
                {
                    "name": f"Target state {state}",
                    "hosts": "all",
                    "gather_facts": False,
                    "module_defaults": {
                        "group/ec2_fleet.fleet.aws": {
                            "region": "us-east-1",
                            "endpoint_url": moto_url,
                            "access_key": "testing",
                            "secret_key": "testing",
                        }
                    },
                    "roles": [
                        {
                            "role": "alb_target",
                            "alb_target_state": state,
                            "alb_target_group_name": f"{PREFIX}-tg",
                            "alb_target_wait_margin": 2,
                        }
                    ],
                }
            ]
        )
    )
    return str(play), str(inventory)
