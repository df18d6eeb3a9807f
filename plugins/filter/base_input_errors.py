# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""What is wrong with the base role's inputs (what meta/argument_specs.yml cannot say)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.ec2_fleet.fleet.plugins.plugin_utils.input_checks import int_between, matches

ACCOUNT_RE = r"^[a-z_][a-z0-9_-]{0,31}$"
HOME_RE = r"^/(srv|opt|var/lib)/[A-Za-z0-9._/-]+$"
PACKAGE_RE = r"^[a-z0-9][a-z0-9+.-]+$"
NTP_SERVER_RE = r"^[A-Za-z0-9.:-]+$"
JOURNALD_SIZE_RE = r"^[0-9]+[KMGT]?$"
JOURNALD_SPAN_RE = r"^[0-9]+(s|min|h|day|week|month|year)?$"
SSHD_KEYWORD_RE = r"^[A-Z][A-Za-z0-9]+$"
SYSCTL_KEY_RE = r"^[a-z0-9_]+([./][A-Za-z0-9_@:-]+)+$"
SYSCTL_VALUE_RE = r"^[A-Za-z0-9_. \t:-]+$"
REBOOT_TIME_RE = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


def _all_match(pattern: str, values: Any) -> bool:
    """True when values is a list whose every entry matches the pattern."""
    return isinstance(values, list) and all(matches(pattern, v) for v in values)


def _sshd_options_ok(options: Any) -> bool:
    """sshd_config keywords mapped to a string, number or boolean without a newline or '#'."""
    return isinstance(options, Mapping) and all(
        matches(SSHD_KEYWORD_RE, key)
        and isinstance(value, (str, int, float))
        and not (isinstance(value, str) and ("\n" in value or "#" in value))
        for key, value in options.items()
    )


def _sysctl_ok(sysctl: Any, container_optional: Any) -> bool:
    """sysctl keys mapped to a number or a string of numbers; the optional keys among them."""
    return (
        isinstance(sysctl, Mapping)
        and all(
            matches(SYSCTL_KEY_RE, key)
            and isinstance(value, (str, int, float))
            and matches(SYSCTL_VALUE_RE, str(value))
            for key, value in sysctl.items()
        )
        and isinstance(container_optional, list)
        and all(key in sysctl for key in container_optional)
    )


def base_input_errors(inputs: Mapping[str, Any]) -> list[str]:
    """Every problem with the base_* inputs (inputs maps each variable's name to its value)."""
    v = inputs
    e = []
    if not (
        matches(ACCOUNT_RE, v["base_app_user"])
        and matches(ACCOUNT_RE, v["base_app_group"])
        and v["base_app_user"] != "root"
        and matches(HOME_RE, v["base_app_home"])
    ):
        e.append(
            "base_app_user and base_app_group must be POSIX account names (lowercase letter or _, then "
            "up to 31 of a-z 0-9 _ -; not root), base_app_home an absolute path under /srv, /opt or /var/lib; "
            f"got base_app_user={v['base_app_user']}, base_app_group={v['base_app_group']}, "
            f"base_app_home={v['base_app_home']}"
        )
    if not (_all_match(PACKAGE_RE, v["base_packages"]) and int_between(v["base_apt_cache_valid_time"], 0)):
        e.append(
            "base_packages must list Debian package names and base_apt_cache_valid_time must be >= 0 "
            f"seconds; got base_packages={v['base_packages']}, "
            f"base_apt_cache_valid_time={v['base_apt_cache_valid_time']}"
        )
    if not (int_between(v["base_apt_lock_timeout"], 0) and int_between(v["base_cloud_init_timeout"], 1)):
        e.append(
            "base_apt_lock_timeout must be >= 0 and base_cloud_init_timeout >= 1 seconds; got "
            f"base_apt_lock_timeout={v['base_apt_lock_timeout']}, "
            f"base_cloud_init_timeout={v['base_cloud_init_timeout']}"
        )
    if not _all_match(NTP_SERVER_RE, v["base_timesync_ntp_servers"]):
        servers = v["base_timesync_ntp_servers"]
        e.append(f"base_timesync_ntp_servers must list host names or IP addresses; got {servers}")
    if not (
        matches(JOURNALD_SIZE_RE, v["base_journald_system_max_use"])
        and matches(JOURNALD_SIZE_RE, v["base_journald_system_keep_free"])
        and matches(JOURNALD_SPAN_RE, v["base_journald_max_retention"])
    ):
        e.append(
            "base_journald_system_max_use and base_journald_system_keep_free must be journald sizes "
            "(digits with an optional K, M, G or T) and base_journald_max_retention a time span (digits "
            "with s, min, h, day, week, month or year); got "
            f"base_journald_system_max_use={v['base_journald_system_max_use']}, "
            f"base_journald_system_keep_free={v['base_journald_system_keep_free']}, "
            f"base_journald_max_retention={v['base_journald_max_retention']}"
        )
    if not _sshd_options_ok(v["base_sshd_options"]):
        e.append(
            "base_sshd_options must map sshd_config keywords (CamelCase, as in sshd_config(5)) to a "
            f"string, number or boolean without newlines or '#'; got base_sshd_options={v['base_sshd_options']}"
        )
    if not _sysctl_ok(v["base_sysctl"], v["base_sysctl_container_optional"]):
        e.append(
            "base_sysctl must map sysctl keys (like net.core.somaxconn) to a number or a string of "
            "numbers, and every key in base_sysctl_container_optional must be a key of base_sysctl; got "
            f"base_sysctl={v['base_sysctl']}, base_sysctl_container_optional={v['base_sysctl_container_optional']}"
        )
    if not int_between(v["base_nofile_limit"], 1024, 1048576):
        limit = v["base_nofile_limit"]
        e.append(f"base_nofile_limit must be between 1024 and 1048576 (the kernel's nr_open); got {limit}")
    if not matches(REBOOT_TIME_RE, v["base_unattended_upgrades_reboot_time"]):
        reboot_time = v["base_unattended_upgrades_reboot_time"]
        e.append(f"base_unattended_upgrades_reboot_time must be HH:MM (24 h); got {reboot_time}")
    return e


class FilterModule:
    """Filters: base_input_errors."""

    def filters(self) -> dict:
        return {"base_input_errors": base_input_errors}
