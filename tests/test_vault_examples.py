"""Each environment's example vault file: lists every secret the environment needs, and is never loaded."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from ec2_fleet_dev.plays import ROOT

ENVIRONMENTS = ["staging", "production"]


def _env(name: str) -> dict:
    return yaml.safe_load((ROOT / "inventories" / name / "group_vars" / "all" / "env.yml").read_text())


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_example_holds_every_needed_secret_as_a_placeholder(name: str) -> None:
    example = yaml.safe_load((ROOT / "inventories" / name / "group_vars" / "all" / "vault.yml.example").read_text())
    needed = {item["name"] for item in _env(name)["fleet_vault_variables"]}
    assert needed == {"vault_aws_cache_auth_token", "vault_fleet_database_url"}
    assert set(example) == needed
    # Every value is an obvious placeholder, which the playbooks refuse.
    assert all("CHANGE-ME" in str(value) for value in example.values())
    readme = (ROOT / "docs" / "secrets.md").read_text()
    assert all(f"`{secret}`" in readme for secret in needed)


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_ansible_does_not_load_the_example(name: str, tmp_path) -> None:
    # The environment's group_vars beside a static inventory (its aws_ec2.yml would ask AWS).
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all").symlink_to(ROOT / "inventories" / name / "group_vars" / "all")
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n    example-host: {}\n")
    shown = subprocess.run(
        ["ansible-inventory", "-i", str(tmp_path / "hosts.yml"), "--host", "example-host"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=True,
    ).stdout
    hostvars = json.loads(shown)
    assert hostvars["fleet_environment"] == name  # env.yml was loaded...
    assert not [key for key in hostvars if key.startswith("vault_")]  # ...the example was not
    assert "CHANGE-ME" not in shown
