#!/usr/bin/python
# Copyright: ec2-fleet. GNU General Public License v3.0+
"""Bring a role's files, folders and links to their wanted state, and read the rest of the host's state, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
module: fleet_files
short_description: Manage a role's files in one remote call and read the host state the role decides on
description:
  - The one way the project's roles read and write host state. The action plugin of the same
    name renders every template on the control node, then stats every path of O(files) in one
    remote call (SHA-1, type, mode, owner, group, link target) and sends only the contents of
    the files that differ in a second call; a host where everything is already as wanted costs
    one call, whatever the number of files.
  - Reports C(changed) per item in RV(results), and notifies each item's O(files[].notify)
    handlers only when that item changed, so a task that writes ten files restarts only the
    services whose files changed. Do not set C(notify) on the task itself (it would replace the
    items' own).
  - O(read) reads, in the same call, what the roles decide their other tasks on (packages,
    services, accounts, kernel settings, PID 1's open-file limit, an app's release layout), so
    that a task whose target is already right can be skipped without a round trip of its own.
    A task with only O(read) changes nothing.
  - Supports check mode (reports what would change, writes nothing) and C(--diff) (a content
    diff per changed file unless O(files[].diff=false), an attribute diff otherwise).
options:
  files:
    description:
      - The paths to manage, in order (a folder before the files in it).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path on the host.
        type: path
        required: true
      state:
        description:
          - C(file) (the default) a regular file with the content of O(files[].template),
            O(files[].src) or O(files[].content); C(directory) a folder (parents created);
            C(link) a symbolic link to O(files[].src), replacing a file in its way; C(absent)
            nothing (a folder is removed with what it holds).
        type: str
        choices: [file, directory, link, absent]
        default: file
      template:
        description:
          - A template of the role (C(templates/)), rendered on the control node like M(ansible.builtin.template).
        type: str
      src:
        description:
          - For C(state=file), a file of the role (C(files/)) copied as is; for C(state=link),
            the link's target.
        type: str
      content:
        description: For C(state=file), the content itself.
        type: str
      vars:
        description: Variables added for this item's template only (like a loop variable).
        type: dict
        default: {}
      mode:
        description: Permissions as a quoted octal string (C('0644')); not managed when omitted.
        type: str
      owner:
        description: Owning user's name; not managed when omitted.
        type: str
      group:
        description: Owning group's name; not managed when omitted.
        type: str
      validate:
        description: A command run on the new content before it replaces the file; C(%s) is the temporary file's path.
        type: str
      notify:
        description: Handlers notified when this item changed.
        type: list
        elements: str
        default: []
      diff:
        description: Whether C(--diff) shows this file's content (set V(false) for secrets).
        type: bool
        default: true
      label:
        description: Free text returned with the item's result (for example the app the file belongs to).
        type: str
      requires:
        description:
          - Manage the item only when this other path exists on the host (checked in the same
            call); otherwise it is left alone and reported with C(skipped=true). For example a
            file inside a release that may not be installed yet.
        type: path
  read:
    description: Further host state to read in the same call; every key is optional.
    type: dict
    default: {}
    suboptions:
      packages:
        description: Debian packages; RV(packages) says which dpkg has installed.
        type: list
        elements: str
      services:
        description: systemd units; RV(services) says whether each is enabled and active.
        type: list
        elements: str
      users:
        description: Accounts; RV(users) gives each one's passwd and shadow fields.
        type: list
        elements: str
      groups:
        description: Groups; RV(groups) says whether each exists.
        type: list
        elements: str
      sysctl:
        description:
          - Kernel settings (C(net.core.somaxconn)); RV(sysctl) gives each one's value and whether it is writable here.
        type: list
        elements: str
      pid1_nofile_hard:
        description: Whether to read PID 1's hard open-file limit (a container's ceiling).
        type: bool
      releases:
        description: An app's folder (C(releases/), C(current), C(previous)); RV(releases) describes its releases.
        type: path
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  action:
    support: full
notes:
  - The module itself runs on the host with every file's SHA-1 and, only for those that
    differ, their content; the action plugin builds both calls. Item keys C(checksum) and
    C(data) (base64 content) and the option C(apply) are set by the action plugin.
author: ec2-fleet
"""

EXAMPLES = r"""
- name: Write the role's files
  ec2_fleet.fleet.fleet_files:
    files:
      - path: /etc/example.d
        state: directory
        owner: root
        group: root
        mode: "0755"
      - path: /etc/example.d/10-example.conf
        template: etc/example.d/10-example.conf.j2
        owner: root
        group: root
        mode: "0644"
        notify: [Restart example]
      - path: /etc/example.d/old.conf
        state: absent

- name: Read the packages and the account the role decides on
  ec2_fleet.fleet.fleet_files:
    read:
      packages: [chrony, openssh-server]
      users: [app]
  register: __example_host
"""

RETURN = r"""
results:
  description: >-
    One entry per item of O(files), in order: C(path), C(state), C(changed), C(differences)
    (what was or would be changed: state, content, src, mode, owner, group), C(skipped) (its
    O(files[].requires) is missing), C(label) and C(notify) as given.
  type: list
  elements: dict
  returned: always
packages:
  description: Package name to V(true) when dpkg says installed (ii, hi).
  type: dict
  returned: when O(read.packages) is given
services:
  description: Unit to C({enabled, active}); C(enabled) as C(systemctl is-enabled) (enabled, static, alias...).
  type: dict
  returned: when O(read.services) is given
users:
  description: Account to C({exists, group, home, shell, comment, password}) (primary group's name, shadow field).
  type: dict
  returned: when O(read.users) is given
groups:
  description: Group to C({exists}).
  type: dict
  returned: when O(read.groups) is given
sysctl:
  description: Key to C({writable, value}); C(value) with whitespace runs as one space, "" when unreadable.
  type: dict
  returned: when O(read.sysctl) is given
pid1_nofile_hard:
  description: The hard open-file limit of PID 1, or -1 when unknown.
  type: int
  returned: when O(read.pid1_nofile_hard) is true
releases:
  description: >-
    C({current, previous, releases}): the releases C(current) and C(previous) point at ("" without
    the link) and every folder under C(releases/) with C(name), C(path), C(mtime) and C(installed)
    (its C(.installed) exists).
  type: dict
  returned: when O(read.releases) is given
"""

import base64  # noqa: E402
import grp  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.ec2_fleet.fleet.plugins.module_utils.fleet_files import (  # noqa: E402
    diff_text,
    differences,
    normal_mode,
    path_state,
    read_host,
)

ITEM_KEYS = {"path", "state", "mode", "owner", "group", "checksum", "src", "data", "validate", "notify", "diff",
             "label", "requires"}


def _ids(item: dict) -> tuple[int, int]:
    uid = pwd.getpwnam(item["owner"]).pw_uid if item.get("owner") is not None else -1
    gid = grp.getgrnam(item["group"]).gr_gid if item.get("group") is not None else -1
    return uid, gid


def _set_attributes(path: str, item: dict, link: bool = False) -> None:
    uid, gid = _ids(item)
    if uid != -1 or gid != -1:
        os.lchown(path, uid, gid)
    mode = normal_mode(item.get("mode"))
    if mode is not None and not link:
        os.chmod(path, int(mode, 8))


def _write_file(module: AnsibleModule, item: dict, have: dict, diffs: list[str]) -> None:
    path = item["path"]
    if have["state"] == "directory":
        module.fail_json(msg=f"{path} is a directory; fleet_files will not replace it with a file")
    if "content" not in diffs and "state" not in diffs:
        _set_attributes(path, item)
        return
    if item.get("data") is None:
        module.fail_json(msg=f"{path}: no content to write (the action plugin sends it)")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        module.fail_json(msg=f"{path}: its folder {folder} does not exist (list the folder first)")
    handle, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=folder)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(base64.b64decode(item["data"]))
        if normal_mode(item.get("mode")) is None:
            # A new file gets what the umask leaves of 0666; an existing one keeps its mode.
            current = int(have["mode"], 8) if have["state"] == "file" else 0o666 & ~_umask()
            os.chmod(tmp, current)
        _set_attributes(tmp, item)
        if item.get("validate"):
            if "%s" not in item["validate"]:
                module.fail_json(msg=f"{path}: validate must contain %s: {item['validate']}")
            rc, out_text, err_text = module.run_command(item["validate"] % tmp)
            if rc != 0:
                module.fail_json(msg=f"{path}: failed to validate: {item['validate'] % tmp}",
                                 rc=rc, stdout=out_text, stderr=err_text)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _apply(module: AnsibleModule, item: dict, have: dict, diffs: list[str]) -> None:
    path, state = item["path"], item.get("state", "file")
    if state == "absent":
        if have["state"] == "directory":
            shutil.rmtree(path)
        else:
            os.unlink(path)
    elif state == "directory":
        if have["state"] == "absent":
            os.makedirs(path)
        elif have["state"] != "directory":
            module.fail_json(msg=f"{path} exists as a {have['state']}, not a directory")
        _set_attributes(path, item)
    elif state == "link":
        if have["state"] == "directory":
            module.fail_json(msg=f"{path} is a directory; fleet_files will not replace it with a link")
        if "state" in diffs or "src" in diffs:
            tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(item["src"], tmp)
            os.replace(tmp, path)
        _set_attributes(path, item, link=True)
    else:
        _write_file(module, item, have, diffs)


def run(module: AnsibleModule) -> dict:
    """Stat every item, apply what differs (unless checking), read what O(read) asks."""
    apply = module.params["apply"] and not module.check_mode
    results = []
    for item in module.params["files"]:
        unknown = set(item) - ITEM_KEYS
        if unknown or not item.get("path"):
            module.fail_json(msg=f"fleet_files item {item.get('path')!r}: unknown keys {sorted(unknown)} or no path")
        if item.get("state", "file") not in ("file", "directory", "link", "absent"):
            module.fail_json(msg=f"{item['path']}: state must be file, directory, link or absent")
        skipped = bool(item.get("requires")) and not os.path.lexists(item["requires"])
        have = path_state(item["path"])
        diffs = [] if skipped else differences(item, have)
        entry = {"path": item["path"], "state": item.get("state", "file"), "changed": bool(diffs),
                 "differences": diffs, "skipped": skipped, "label": item.get("label"),
                 "notify": item.get("notify") or []}
        if diffs and module._diff and item.get("diff", True):
            entry["before_content"] = diff_text(item["path"], have) if "content" in diffs else None
            entry["before"] = {k: have.get(k) for k in ("state", "mode", "owner", "group", "src") if k in have}
        if diffs and apply:
            try:
                _apply(module, item, have, diffs)
            except (OSError, KeyError) as exc:
                module.fail_json(msg=f"{item['path']}: {exc}", results=results)
        results.append(entry)
    return {"changed": any(r["changed"] for r in results), "results": results,
            **read_host(module.run_command, module.params["read"] or {})}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "files": {"type": "list", "elements": "dict", "default": []},
            "read": {"type": "dict", "default": {}},
            "apply": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
