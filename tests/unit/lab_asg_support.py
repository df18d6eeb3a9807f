"""What the unit tests of the lab's Auto Scaling share: a VPC with a subnet in two zones and a target group
that drains in 1 s, made through the real ec2 and elbv2 APIs (moto in-process or a moto server)."""

from __future__ import annotations

from typing import Any


def network(ec2: Any, elbv2: Any, name: str, prefix: str, region: str = "us-east-1") -> tuple[list[str], str]:
    """(the two subnets, the target group's ARN) in a new VPC `prefix`.0.0/16."""
    vpc = ec2.create_vpc(CidrBlock=f"{prefix}.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"{prefix}.{n}.0/24", AvailabilityZone=f"{region}{z}")[
        "Subnet"]["SubnetId"] for n, z in enumerate("ab")]  # fmt: skip
    tg = elbv2.create_target_group(Name=name, Protocol="HTTP", Port=8000, VpcId=vpc)["TargetGroups"][0][
        "TargetGroupArn"]  # fmt: skip
    elbv2.modify_target_group_attributes(TargetGroupArn=tg, Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": "1"}])  # fmt: skip
    return subnets, tg
