"""Which Ubuntu AMI an instance type takes (the aws_instances role): its architecture and Canonical's parameter."""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

# Graviton (arm64) families: a1, and every family whose generation digit is followed by "g"
# (t4g, m6g, m6gd, m7g, c7gn, r8g, x2gd, im4gn, is4gen, g5g, hpc7g, ...). Every other type
# Ubuntu server AMIs run on is x86-64 (t3, m7i, m7i-flex, c6a, g4dn, p5, ...).
_GRAVITON = re.compile(r"^(a1|[a-z]+[0-9]+g[a-z]*)\.")
_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9][a-z0-9-]*$")

# Canonical's public parameters (/aws/service/canonical/ubuntu/server/RELEASE/stable/current/
# ARCH/hvm/VOLUME/ami-id) name the root volume type the image was registered with: gp3 from
# 24.04 on; 22.04 images are registered with gp2 and published only under ebs-gp2 (an ebs-gp3
# path for 22.04 is not published). The role launches a gp3 root volume either way.
_VOLUME = {"22.04": "ebs-gp2", "24.04": "ebs-gp3"}


def aws_instances_architecture(instance_type: str) -> str:
    """The Debian architecture name (amd64 or arm64) of an instance type's processor."""
    if not isinstance(instance_type, str) or not _TYPE.match(instance_type):
        raise AnsibleFilterError(f"aws_instances_type must look like t3.small or m7g.large (got {instance_type!r})")
    return "arm64" if _GRAVITON.match(instance_type) else "amd64"


def aws_instances_canonical_parameter(instance_type: str, release: str) -> str:
    """Canonical's SSM parameter of the current Ubuntu server AMI for this release and instance type."""
    release = str(release)
    if release not in _VOLUME:
        raise AnsibleFilterError(
            f"aws_instances_ubuntu_release must be one of {', '.join(sorted(_VOLUME))} (got {release!r})"
        )
    arch = aws_instances_architecture(instance_type)
    return f"/aws/service/canonical/ubuntu/server/{release}/stable/current/{arch}/hvm/{_VOLUME[release]}/ami-id"


def aws_instances_ec2_architecture(instance_type: str) -> str:
    """EC2's name (describe_images' Architecture) for the architecture of an instance type."""
    return {"amd64": "x86_64", "arm64": "arm64"}[aws_instances_architecture(instance_type)]


class FilterModule:
    def filters(self):
        return {
            "aws_instances_architecture": aws_instances_architecture,
            "aws_instances_canonical_parameter": aws_instances_canonical_parameter,
            "aws_instances_ec2_architecture": aws_instances_ec2_architecture,
        }
