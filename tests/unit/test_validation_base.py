"""The base role's input rules (plugins/filter/base_input_errors.py), one case per rule."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.ec2_fleet.fleet.plugins.filter.base_input_errors import base_input_errors

ROLE = Path(__file__).resolve().parents[2] / "roles" / "base"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
TASK = (ROLE / "tasks" / "validate.yml").read_text()
INPUTS = re.findall(r"^      (base_[a-z0-9_]+): ", TASK, re.MULTILINE)


def errors(**changes: Any) -> list[str]:
    return base_input_errors({name: DEFAULTS[name] for name in INPUTS} | changes)


def test_the_task_passes_the_role_defaults_and_they_have_no_errors() -> None:
    assert len(INPUTS) == 16
    assert all(name in DEFAULTS for name in INPUTS)
    assert errors() == []


def test_good_values_of_every_kind_pass() -> None:
    assert errors(
        base_app_user="_svc",
        base_app_home="/var/lib/app",
        base_packages=["libpq5", "g++"],
        base_timesync_ntp_servers=["169.254.169.123", "fd00:ec2::123", "time.aws.com"],
        base_journald_system_max_use="512M",
        base_journald_max_retention="2week",
        base_sshd_options={"PasswordAuthentication": False, "MaxAuthTries": 3, "Banner": "none"},
        base_sysctl={"net.ipv4.ip_local_port_range": "1024 65000", "vm.swappiness": 10},
        base_sysctl_container_optional=["vm.swappiness"],
        base_nofile_limit="1048576",
        base_unattended_upgrades_reboot_time="23:59",
    ) == []


ACCOUNT = "base_app_user and base_app_group must be POSIX account names"
CASES = [
    ({"base_app_user": "App User"}, ACCOUNT),
    ({"base_app_user": "root"}, ACCOUNT),
    ({"base_app_group": "a" * 33}, ACCOUNT),
    ({"base_app_home": "/home/app"}, "base_app_home an absolute path under /srv, /opt or /var/lib; got "
     "base_app_user=app, base_app_group=app, base_app_home=/home/app"),
    ({"base_packages": "curl vim"}, "base_packages must list Debian package names and base_apt_cache_valid_time "
     "must be >= 0 seconds; got base_packages=curl vim, base_apt_cache_valid_time=3600"),
    ({"base_packages": [["curl"]]}, "got base_packages=[['curl']]"),
    ({"base_packages": ["Curl"]}, "base_packages must list Debian package names"),
    ({"base_apt_cache_valid_time": -5}, "base_apt_cache_valid_time=-5"),
    ({"base_apt_lock_timeout": -1}, "base_apt_lock_timeout must be >= 0 and base_cloud_init_timeout >= 1 "
     "seconds; got base_apt_lock_timeout=-1, base_cloud_init_timeout=600"),
    ({"base_cloud_init_timeout": 0}, "base_cloud_init_timeout=0"),
    ({"base_timesync_ntp_servers": ["pool.ntp.org; rm -rf /"]}, "base_timesync_ntp_servers must list host names "
     "or IP addresses; got ['pool.ntp.org; rm -rf /']"),
    ({"base_journald_system_max_use": "10 gigs"}, "must be journald sizes"),
    ({"base_journald_system_keep_free": "2GB"}, "base_journald_system_keep_free=2GB"),
    ({"base_journald_max_retention": "2 weeks"}, "base_journald_max_retention a time span (digits with s, min, "
     "h, day, week, month or year)"),
    ({"base_sshd_options": {"passwordAuthentication": "no"}}, "base_sshd_options must map sshd_config keywords"),
    ({"base_sshd_options": {"PasswordAuthentication": "no\nPermitRootLogin yes"}}, "without newlines or '#'"),
    ({"base_sshd_options": {"Banner": "x # y"}}, "without newlines or '#'"),
    ({"base_sshd_options": {"AllowUsers": ["app"]}}, "base_sshd_options={'AllowUsers': ['app']}"),
    ({"base_sshd_options": "PasswordAuthentication no"}, "base_sshd_options must map"),
    ({"base_sysctl": {"net.core.somaxconn": [1024]}}, "base_sysctl must map sysctl keys (like "
     "net.core.somaxconn) to a number or a string of numbers"),
    ({"base_sysctl": {"net core somaxconn": 1024}}, "base_sysctl must map sysctl keys"),
    ({"base_sysctl": {"net.core.somaxconn": "1024; reboot"}}, "base_sysctl must map sysctl keys"),
    ({"base_sysctl_container_optional": ["kernel.unknown_key"]}, "every key in base_sysctl_container_optional "
     "must be a key of base_sysctl"),
    ({"base_nofile_limit": 1023}, "base_nofile_limit must be between 1024 and 1048576 (the kernel's nr_open); "
     "got 1023"),
    ({"base_nofile_limit": 4194304}, "base_nofile_limit must be between 1024 and 1048576"),
    ({"base_unattended_upgrades_reboot_time": "25:00"}, "base_unattended_upgrades_reboot_time must be HH:MM "
     "(24 h); got 25:00"),
    ({"base_unattended_upgrades_reboot_time": "3:30"}, "base_unattended_upgrades_reboot_time must be HH:MM"),
]


@pytest.mark.parametrize(("changes", "expected"), CASES, ids=[f"{c}"[:60] for c, _ in CASES])
def test_each_rule_names_the_variable(changes: dict, expected: str) -> None:
    found = errors(**changes)
    assert len(found) == 1, found
    assert expected in found[0]


def test_every_problem_is_reported_at_once() -> None:
    found = errors(base_app_user="root", base_nofile_limit=1, base_unattended_upgrades_reboot_time="noon")
    assert [e.split(" ")[0] for e in found] == [
        "base_app_user",
        "base_nofile_limit",
        "base_unattended_upgrades_reboot_time",
    ]
