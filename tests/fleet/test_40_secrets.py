"""Secrets never leak: not in -vvv output of site.yml and rolling_update.yml, not in the hosts'
journals, and on disk only in files no one but root and the app user can read."""

from __future__ import annotations

import subprocess
import urllib.parse

import boto3
import pytest
import yaml

from ec2_fleet_dev.lbhttp import lab_instance_ids
from ec2_fleet_dev.plays import ROOT

pytestmark = pytest.mark.fleet

SEARCHED = ["/etc", "/srv", "/var", "/home", "/root", "/tmp", "/run", "/usr/local", "/opt"]


def secrets(fleet) -> dict[str, str]:
    ssm = boto3.client("ssm", endpoint_url=fleet.env["AWS_URL"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    url = ssm.get_parameter(Name="/ec2-fleet/lab/database_url", WithDecryption=True)["Parameter"]["Value"]
    env = yaml.safe_load((ROOT / "inventories/lab/group_vars/all/env.yml").read_text())
    found = {"database password": urllib.parse.urlsplit(url).password, "database URL": url,
             "Redis AUTH token": env["aws_cache_auth_token"]}
    assert all(len(v) >= 12 for v in found.values()), "a secret too short to search for reliably"
    return found


def on_host(fleet, instance_id: str, script: str) -> str:
    container = f"{fleet.env['EC2_FLEET_LAB_NAME']}-{instance_id}"
    done = subprocess.run(["podman", "exec", container, "sh", "-c", script],
                          capture_output=True, text=True, timeout=120)
    return done.stdout


@pytest.fixture(scope="module")
def verbose_runs(converged):
    """site.yml and a rolling update that changes the release on every host, both with -vvv."""
    fleet = converged
    site = fleet.play("site", "-vvv")
    assert site.rc == 0, site.tail()
    rolling = fleet.play("rolling_update", "-vvv", extra={"app_version": "2.1.0",
                                                          "rolling_audit_dir": str(fleet.state_dir / "audit")})
    assert rolling.rc == 0, rolling.tail()
    return fleet, {"site.yml -vvv": site.output, "rolling_update.yml -vvv": rolling.output}


def tasks_showing(text: str, value: str) -> set[str]:
    """The TASK headers under which a value shows in ansible-playbook output."""
    found, start = set(), 0
    while (at := text.find(value, start)) >= 0:
        header = text.rfind("TASK [", 0, at)
        found.add(text[header:text.find("]", header) + 1] if header >= 0 else "(before any task)")
        start = at + len(value)
    return found


def test_no_secret_in_the_verbose_output_of_site_and_rolling_update(verbose_runs):
    fleet, outputs = verbose_runs
    hits = {(run, name, task) for run, text in outputs.items() for name, value in secrets(fleet).items()
            for task in tasks_showing(text, value)}
    assert hits == set()
    assert all(len(text) > 100_000 for text in outputs.values())  # -vvv really was verbose


def test_no_secret_in_the_hosts_journals(verbose_runs):
    fleet, _ = verbose_runs
    for instance_id in sorted(lab_instance_ids(fleet)):
        journal = on_host(fleet, instance_id, "journalctl --no-pager -o cat")
        assert len(journal) > 10_000
        assert [name for name, value in secrets(fleet).items() if value in journal] == [], instance_id


def test_files_holding_secrets_are_readable_by_root_and_the_app_user_only(verbose_runs):
    fleet, _ = verbose_runs
    for instance_id in sorted(lab_instance_ids(fleet)):
        holders = set()
        for value in secrets(fleet).values():
            listing = on_host(fleet, instance_id,
                              f"grep -rlsF -- '{value}' {' '.join(SEARCHED)} --exclude-dir=proc --exclude-dir=sys "
                              "| xargs -r stat -c '%U %G %a %n'")
            holders |= {tuple(line.split(" ", 3)) for line in listing.splitlines()}
        assert holders, f"{instance_id}: the app's env file should hold the secrets"
        for owner, group, mode, path in holders:
            others = int(mode[-1])
            group_bits = int(mode[-2])
            assert others == 0, f"{instance_id}: {path} ({mode}) is readable by every user"
            assert owner in ("root", "app") and (group in ("root", "app") or group_bits == 0), \
                f"{instance_id}: {path} is {owner}:{group} {mode}"
