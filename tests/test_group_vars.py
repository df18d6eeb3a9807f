"""The top-level group_vars/ load for every environment, and an environment's own win."""

import json
import os
import subprocess

import pytest

from ec2_fleet_dev.plays import ROOT


@pytest.mark.parametrize("environment", ["lab", "staging", "production"])
def test_shared_group_vars_load_and_environment_overrides(environment, tmp_path):
    # A static host beside the environment's inventory; the aws_ec2 source is switched off
    # (no AWS API here) but its directory's group_vars still apply to every host in `all`.
    static = tmp_path / "hosts.yml"
    static.write_text("all:\n  hosts:\n    probe-host:\n")
    proc = subprocess.run(
        ["ansible-inventory", "-i", f"inventories/{environment}", "-i", str(static), "--host", "probe-host"],
        cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "ANSIBLE_INVENTORY_ENABLED": "yaml"},
    )
    hostvars = json.loads(proc.stdout)
    # From group_vars/all/main.yml (shared), not redefined by the environment:
    assert hostvars["fleet_project"] == "ec2-fleet"
    assert hostvars["fleet_app_port"] == 8000
    # Overridden by inventories/<env>/group_vars/all/env.yml:
    assert hostvars["fleet_environment"] == environment
    # Every environment logs in as the AMI's user, through its own access mode (docs/access.md).
    assert hostvars["ansible_user"] == "ubuntu"
    assert hostvars["fleet_access"] == {"lab": "bastion", "staging": "bastion", "production": "ssm"}[environment]
