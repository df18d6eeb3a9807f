"""Bad inputs to the base role are refused before anything changes, naming the variable."""

from __future__ import annotations

import re

import pytest

from ec2_fleet_dev.plays import assert_rejected, failure_messages

# (variable, bad value, fragment of the refusal that proves which check refused it)
CASES = [
    ("base_packages", "curl vim", r"base_packages must list Debian package names"),
    ("base_packages", [["curl"]], r"base_packages"),
    ("base_apt_cache_valid_time", -5, r"base_apt_cache_valid_time must be >= 0"),
    ("base_app_user", "App User", r"must be POSIX account names"),
    ("base_app_user", "root", r"not root"),
    ("base_app_home", "/home/app", r"base_app_home an absolute path under /srv, /opt"),
    ("base_journald_storage", "disk", r"base_journald_storage must be one of: persistent, volatile, auto"),
    ("base_journald_system_max_use", "10 gigs", r"must be journald sizes"),
    ("base_journald_max_retention", "2 weeks", r"base_journald_max_retention a time span"),
    ("base_sshd_options", "PasswordAuthentication no", r"base_sshd_options.*(dict|dictionary)"),
    ("base_sshd_options", {"PasswordAuthentication": "no\nPermitRootLogin yes"}, r"without newlines"),
    ("base_sysctl", {"net.core.somaxconn": [1024]}, r"base_sysctl must map sysctl keys"),
    ("base_sysctl", {"net core somaxconn": 1024}, r"base_sysctl must map sysctl keys"),
    ("base_sysctl_container_optional", ["kernel.unknown_key"], r"must be a key of base_sysctl"),
    ("base_nofile_limit", -1, r"base_nofile_limit must be between 1024 and 1048576"),
    ("base_nofile_limit", 4194304, r"base_nofile_limit must be between 1024 and 1048576"),
    ("base_nofile_limit", "lots", r"base_nofile_limit.*int"),
    ("base_unattended_upgrades", "maybe", r"base_unattended_upgrades.*bool"),
    ("base_unattended_upgrades_reboot_time", "25:00", r"base_unattended_upgrades_reboot_time must be HH:MM"),
    ("base_timesync_ntp_servers", ["pool.ntp.org; rm -rf /"], r"base_timesync_ntp_servers must list host names"),
]


@pytest.mark.parametrize(
    ("variable", "value", "message"), CASES, ids=[f"{c[0]}={c[1]!r}"[:60] for c in CASES]
)
def test_base_refuses_bad_input(apply_role, variable, value, message):
    result = apply_role("base", {variable: value})
    assert_rejected(result, variable)
    refusal = re.sub(r"\s+", " ", " ".join(failure_messages(result.output)))
    assert re.search(message, refusal), f"refusal does not say /{message}/: {refusal}"


# Facts of hosts the role was never written for, handed in as extra vars (they win over
# the gathered ones): the role must stop before its first change, naming what it found
# and what it supports, instead of applying another distribution's settings.
UNSUPPORTED = [
    {"distribution": "Ubuntu", "distribution_major_version": "20", "distribution_version": "20.04"},
    {"distribution": "Ubuntu", "distribution_major_version": "26", "distribution_version": "26.04"},
]


@pytest.mark.parametrize("facts", UNSUPPORTED, ids=[f["distribution_version"] for f in UNSUPPORTED])
def test_base_refuses_an_unsupported_platform(apply_role, facts):
    result = apply_role("base", {"ansible_facts": {**facts, "os_family": "Debian"}})
    assert_rejected(result, f"Ubuntu {facts['distribution_version']}")
    refusal = re.sub(r"\s+", " ", " ".join(failure_messages(result.output)))
    assert "supported: Ubuntu 22.04, Ubuntu 24.04, Debian 12" in refusal, refusal
