#!/usr/bin/python
# Copyright: ec2-fleet. GNU General Public License v3.0+
"""Read the release layout of an app (and the files the role manages) in one module run."""

from __future__ import annotations

DOCUMENTATION = r"""
module: app_release_state
short_description: Read an app's release layout and managed files in one call
description:
  - Read-only. Reports the C(current) and C(previous) release links under O(root), every
    release folder under C(releases/) (installed or not, its modification time) and the
    state of the files in O(paths): what the app role would otherwise read with one module
    run (one SSH round trip) each.
options:
  root:
    description: The app's folder (C(releases/), C(shared/), C(current), C(previous)).
    type: path
    required: true
  paths:
    description: Further paths whose type, owner, group, mode and (files) SHA-1 are reported.
    type: list
    elements: path
    default: []
attributes:
  check_mode:
    support: full
author: ec2-fleet
"""

RETURN = r"""
current:
  description: The release C(current) points at (the link target's last part); "" without the link.
  type: str
  returned: always
previous:
  description: The same for C(previous).
  type: str
  returned: always
releases:
  description: >-
    Every folder under C(releases/) with C(name), C(path), C(mtime) and C(installed)
    (its C(.installed) exists).
  type: list
  elements: dict
  returned: always
files:
  description: >-
    For each path in O(paths) that exists: C(isdir), C(isreg), C(islnk), C(mode) ("0644"),
    C(pw_name), C(gr_name) and, for a regular file, C(checksum) (SHA-1). Missing paths are left out.
  type: dict
  returned: always
"""

import grp  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import stat  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def _link(path: str) -> str:
    return os.path.basename(os.readlink(path).rstrip("/")) if os.path.islink(path) else ""


def _name(lookup, ident: int) -> str:
    try:
        return lookup(ident)[0]
    except KeyError:
        return ""


def _file(module: AnsibleModule, path: str) -> dict | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    info = {
        "isdir": stat.S_ISDIR(st.st_mode),
        "isreg": stat.S_ISREG(st.st_mode),
        "islnk": stat.S_ISLNK(st.st_mode),
        "mode": f"{stat.S_IMODE(st.st_mode):04o}",
        "pw_name": _name(pwd.getpwuid, st.st_uid),
        "gr_name": _name(grp.getgrgid, st.st_gid),
    }
    if info["isreg"]:
        info["checksum"] = module.sha1(path)
    return info


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "paths": {"type": "list", "elements": "path", "default": []},
        },
        supports_check_mode=True,
    )
    root = module.params["root"]
    releases = []
    releases_dir = os.path.join(root, "releases")
    if os.path.isdir(releases_dir):
        for entry in sorted(os.scandir(releases_dir), key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False):
                releases.append({
                    "name": entry.name,
                    "path": entry.path,
                    "mtime": entry.stat(follow_symlinks=False).st_mtime,
                    "installed": os.path.isfile(os.path.join(entry.path, ".installed")),
                })
    files = {}
    for path in module.params["paths"]:
        info = _file(module, path)
        if info is not None:
            files[path] = info
    module.exit_json(
        changed=False,
        current=_link(os.path.join(root, "current")),
        previous=_link(os.path.join(root, "previous")),
        releases=releases,
        files=files,
    )


if __name__ == "__main__":
    main()
