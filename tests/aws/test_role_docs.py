"""The control-plane roles document every input: argument specs, defaults and README agree."""

from __future__ import annotations

import pytest
import yaml

from ec2_fleet_dev.moto_aws import ROOT

ROLES = [
    "aws_network",
    "aws_alb",
    "aws_instances",
    "alb_target",
    "aws_host_iam",
    "aws_bastion",
    "rolling",
    "frontend",
    "aws_monitoring",
    "cloudwatch_agent",
    "aws_image",
    "aws_asg",
]


@pytest.mark.parametrize("role", ROLES)
def test_every_input_is_specified_defaulted_and_documented(role: str) -> None:
    base = ROOT / "roles" / role
    specs = yaml.safe_load((base / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = set(specs["main"]["options"])
    defaults = set(yaml.safe_load((base / "defaults" / "main.yml").read_text()))
    readme = (base / "README.md").read_text()
    assert options == defaults, f"spec-only: {options - defaults}, defaults-only: {defaults - options}"
    assert all(name.startswith(f"{role}_") for name in options)
    undocumented = {name for name in options if name not in readme}
    assert not undocumented, f"{role}/README.md misses {sorted(undocumented)}"
    if "validate" in specs:
        assert specs["validate"]["options"] == specs["main"]["options"]
