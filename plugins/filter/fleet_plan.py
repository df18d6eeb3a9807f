"""The dry run of provision.yml on an environment whose VPC does not exist yet: what it would create.

Once the VPC exists, `provision.yml --check --diff` runs every module in check mode and they report
their own changes; before that, the modules after the VPC cannot run (they need the ids of subnets and
security groups that do not exist yet), so the plan is built from the inputs here.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def _zones(settings: dict) -> list[str]:
    zones = list(settings.get("availability_zones") or [])
    count = len(settings["public_subnet_cidrs"])
    return zones[:count] if zones else [f"zone {i + 1} of the region" for i in range(count)]


def fleet_provision_plan(settings: dict) -> list[str]:
    """One line per resource provision.yml would create in a new VPC, in the order it creates them.

    settings: prefix, vpc_cidr, public_subnet_cidrs, private_subnet_cidrs, availability_zones,
    nat_gateway, nat_gateway_per_az, bastion_cidrs, ssm_endpoints, region, cache (bool),
    cache_id, cache_node_type, cache_clusters, alb_name, target_group_name, https (text: where the
    certificate comes from, or "" for plain HTTP), instances, instance_name, instance_type, ami,
    key_name, public_key_file, bastion (bool), bastion_name; host_iam (the hosts' role and profile to
    create, '' when an existing one is used).
    """
    try:
        prefix = settings["prefix"]
        zones = _zones(settings)
        lines = [f"VPC {prefix}-vpc {settings['vpc_cidr']}"]
        for tier in ("public", "private"):
            for zone, cidr in zip(zones, settings[f"{tier}_subnet_cidrs"], strict=True):
                lines.append(f"subnet {prefix}-{tier}-{zone} {cidr} ({tier})")
        lines.append(f"internet gateway {prefix}-igw")
        if settings.get("nat_gateway"):
            if settings.get("nat_gateway_per_az"):
                lines += [f"NAT gateway {prefix}-nat-{zone} with an Elastic IP" for zone in zones]
            else:
                lines.append(f"NAT gateway {prefix}-nat with an Elastic IP (one for every zone)")
        lines.append(f"route table {prefix}-public (0.0.0.0/0 through the internet gateway)")
        if settings.get("nat_gateway") and settings.get("nat_gateway_per_az"):
            lines += [
                f"route table {prefix}-private-{zone} (0.0.0.0/0 through its zone's NAT gateway)" for zone in zones
            ]
        else:
            route = "0.0.0.0/0 through the NAT gateway" if settings.get("nat_gateway") else "no route out"
            lines.append(f"route table {prefix}-private ({route})")
        groups = ["alb", "hosts", "cache"]
        if settings.get("bastion_cidrs"):
            groups.append("bastion")
        if settings.get("ssm_endpoints"):
            groups.append("endpoints")
        lines += [f"security group {prefix}-{group}" for group in groups]
        if settings.get("ssm_endpoints"):
            region = settings.get("region", "REGION")
            lines += [
                f"VPC endpoint com.amazonaws.{region}.{service} (interface, private subnets)"
                for service in ("ssm", "ssmmessages", "ec2messages")
            ]
        if settings.get("cache"):
            lines.append(f"cache subnet group {settings['cache_subnet_group']}")
            lines.append(
                f"ElastiCache replication group {settings['cache_id']} ({settings['cache_node_type']}, "
                f"{settings['cache_clusters']} nodes)"
            )
        lines.append(f"target group {settings['target_group_name']}")
        https = settings.get("https") or ""
        listeners = f"HTTPS listener on 443 ({https}), HTTP 80 redirecting" if https else "HTTP listener on 80"
        lines.append(f"application load balancer {settings['alb_name']} with {listeners}")
        if settings.get("host_iam"):
            lines.append(f"IAM role and instance profile {settings['host_iam']} for the hosts")
        if settings.get("public_key_file"):
            lines.append(f"key pair {settings['key_name']} from {settings['public_key_file']} (unless it exists)")
        count = int(settings["instances"])
        if count:
            lines.append(
                f"{count} instance(s) {settings['instance_name']} ({settings['instance_type']}, {settings['ami']}) "
                f"spread over the private subnets"
            )
        if settings.get("bastion"):
            lines.append(f"bastion instance {settings['bastion_name']} in the first public subnet")
    except (KeyError, TypeError, ValueError) as err:
        raise AnsibleFilterError(f"fleet_provision_plan: incomplete settings ({err})") from err
    return [f"would create {line}" for line in lines]


class FilterModule:
    def filters(self):
        return {"fleet_provision_plan": fleet_provision_plan}
