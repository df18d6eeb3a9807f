"""Which AMI an instance type takes (plugins/filter/aws_instances_ami.py)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.ec2_fleet.fleet.plugins.filter.aws_instances_ami import (
    aws_instances_architecture,
    aws_instances_canonical_parameter,
)
from moto.ec2.models.instance_types import INSTANCE_TYPES


def test_every_instance_type_ec2_lists_gets_the_architecture_it_supports() -> None:
    # EC2's own list (describe_instance_types, as moto ships it): the rule must agree for every type.
    checked, wrong = 0, []
    for name, info in INSTANCE_TYPES.items():
        archs = info["ProcessorInfo"]["SupportedArchitectures"]
        if "arm64" in archs:
            want = "arm64"
        elif "x86_64" in archs:
            want = "amd64"
        else:  # mac instances (arm64_mac, x86_64_mac): no Ubuntu server AMI
            continue
        checked += 1
        if aws_instances_architecture(name) != want:
            wrong.append((name, archs))
    assert checked > 1000
    assert wrong == []


@pytest.mark.parametrize(("instance_type", "release", "parameter"), [
    ("t3.small", "24.04", "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"),
    ("m7g.large", "24.04", "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id"),
    ("t4g.micro", "22.04", "/aws/service/canonical/ubuntu/server/22.04/stable/current/arm64/hvm/ebs-gp2/ami-id"),
    ("m7i-flex.large", "22.04", "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id"),
    ("c8g.metal-24xl", "24.04", "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id"),
])
def test_canonical_parameter_follows_release_and_architecture(instance_type: str, release: str, parameter: str) -> None:
    assert aws_instances_canonical_parameter(instance_type, release) == parameter


@pytest.mark.parametrize(("instance_type", "release", "named"), [
    ("t3.small", "20.04", "aws_instances_ubuntu_release"),
    ("t3", "24.04", "aws_instances_type"),
    ("", "24.04", "aws_instances_type"),
])
def test_bad_release_or_type_names_the_variable(instance_type: str, release: str, named: str) -> None:
    with pytest.raises(AnsibleFilterError, match=named):
        aws_instances_canonical_parameter(instance_type, release)
