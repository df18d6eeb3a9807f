#!/usr/bin/python
# Copyright: ec2-fleet. GNU General Public License v3.0+
"""Read, in one module run, the host state the base role decides on."""

from __future__ import annotations

DOCUMENTATION = r"""
module: base_host_state
short_description: Read package, service, kernel-setting and limit state in one call
description:
  - Read-only. Reports what the base role would otherwise read with one module run each
    (a round trip per package check, service, kernel setting and file), so that a task whose
    state is already right can be skipped.
options:
  packages:
    description: Debian package names; their dpkg status is reported.
    type: list
    elements: str
    default: []
  services:
    description: systemd units; whether each is enabled and active is reported.
    type: list
    elements: str
    default: []
  user:
    description: An account whose passwd and shadow entries are reported.
    type: str
    default: ''
  group:
    description: A group whose existence is reported.
    type: str
    default: ''
  sysctl:
    description: >-
      sysctl keys (net.core.somaxconn or net/core/somaxconn); whether this host can write
      each is reported, with its value.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
author: ec2-fleet
"""

RETURN = r"""
packages:
  description: Package name to its installed state; V(true) only when dpkg says installed (ii, hi).
  type: dict
  returned: always
services:
  description: Unit to C({enabled, active}); C(enabled) as C(systemctl is-enabled) (enabled, static, alias...).
  type: dict
  returned: always
sysctl:
  description: Key to C({writable, value}); C(value) with whitespace runs as one space, "" when unreadable.
  type: dict
  returned: always
user:
  description: >-
    C({exists, group, home, shell, comment, password}) of O(user): the primary group's name,
    the passwd fields and the shadow password field.
  type: dict
  returned: always
group:
  description: C({exists}) of O(group).
  type: dict
  returned: always
pid1_nofile_hard:
  description: The hard open-file limit of PID 1 (the container's ceiling), or -1 when unknown.
  type: int
  returned: always
"""

import grp  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import re  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def _packages(module: AnsibleModule, names: list[str]) -> dict[str, bool]:
    if not names:
        return {}
    # Exit status 1 when some name is unknown: those are simply not installed.
    _, out, _ = module.run_command(["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\\n", *names])
    installed = {line.split()[0].split(":")[0] for line in out.splitlines() if re.match(r"^\S+ [hi]i", line)}
    return {name: name in installed for name in names}


def _services(module: AnsibleModule, names: list[str]) -> dict[str, dict[str, bool]]:
    result = {}
    for name in names:
        enabled = module.run_command(["systemctl", "is-enabled", name])[0] == 0
        active = module.run_command(["systemctl", "is-active", "--quiet", name])[0] == 0
        result[name] = {"enabled": enabled, "active": active}
    return result


def _sysctl(keys: list[str]) -> dict[str, dict]:
    result = {}
    for key in keys:
        path = "/proc/sys/" + (key if "/" in key else key.replace(".", "/"))
        try:
            with open(path) as handle:
                value = " ".join(handle.read().split())
        except OSError:
            value = ""
        result[key] = {"writable": os.path.exists(path) and os.access(path, os.W_OK), "value": value}
    return result


def _user(name: str) -> dict:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return {"exists": False}
    try:
        group = grp.getgrgid(entry.pw_gid).gr_name
    except KeyError:
        group = ""
    password = None
    try:
        with open("/etc/shadow") as handle:
            for line in handle:
                fields = line.rstrip("\n").split(":")
                if fields[0] == name and len(fields) > 1:
                    password = fields[1]
    except OSError:
        pass
    return {"exists": True, "group": group, "home": entry.pw_dir, "shell": entry.pw_shell,
            "comment": entry.pw_gecos, "password": password}


def _group(name: str) -> dict:
    try:
        grp.getgrnam(name)
    except KeyError:
        return {"exists": False}
    return {"exists": True}


def _pid1_nofile_hard() -> int:
    try:
        with open("/proc/1/limits") as handle:
            match = re.search(r"^Max open files\s+\S+\s+(\d+)", handle.read(), re.M)
    except OSError:
        return -1
    return int(match.group(1)) if match else -1


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "packages": {"type": "list", "elements": "str", "default": []},
            "services": {"type": "list", "elements": "str", "default": []},
            "sysctl": {"type": "list", "elements": "str", "default": []},
            "user": {"type": "str", "default": ""},
            "group": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    module.exit_json(
        changed=False,
        packages=_packages(module, module.params["packages"]),
        services=_services(module, module.params["services"]),
        sysctl=_sysctl(module.params["sysctl"]),
        user=_user(module.params["user"]) if module.params["user"] else {"exists": False},
        group=_group(module.params["group"]) if module.params["group"] else {"exists": False},
        pid1_nofile_hard=_pid1_nofile_hard(),
    )


if __name__ == "__main__":
    main()
