# Copyright: ec2-fleet. GNU General Public License v3.0+
"""The host side of ec2_fleet.fleet.fleet_files: read a host's state and bring paths to it.

Pure functions over the file system and a command runner, shared by the module and its
unit tests. A wanted path is a dict with C(path), C(state) (file, directory, link, absent),
C(mode), C(owner), C(group) (each None when not managed), C(checksum) (SHA-1 of a file's
wanted content) and C(src) (a link's target).
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import re
import stat
from collections.abc import Callable

# A runner like AnsibleModule.run_command: argv -> (rc, stdout, stderr).
Runner = Callable[[list[str]], tuple[int, str, str]]

# Files whose content is returned for a diff: text up to this size.
DIFF_MAX_BYTES = 128 * 1024


def sha1(path: str) -> str:
    """The SHA-1 of a file's content, as Ansible's stat and copy compute it."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(65536), b""):
            digest.update(block)
    return digest.hexdigest()


def _name(lookup: Callable, ident: int) -> str:
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)


def path_state(path: str) -> dict:
    """What is at a path, without following a last symlink: state, mode, owner, group, checksum, src."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return {"state": "absent"}
    if stat.S_ISLNK(st.st_mode):
        kind = "link"
    elif stat.S_ISDIR(st.st_mode):
        kind = "directory"
    elif stat.S_ISREG(st.st_mode):
        kind = "file"
    else:
        kind = "other"
    info = {
        "state": kind,
        "mode": f"{stat.S_IMODE(st.st_mode):04o}",
        "owner": _name(pwd.getpwuid, st.st_uid),
        "group": _name(grp.getgrgid, st.st_gid),
    }
    if kind == "file":
        info["checksum"] = sha1(path)
    elif kind == "link":
        info["src"] = os.readlink(path)
    return info


def normal_mode(mode: object) -> str | None:
    """A mode as four octal digits ("0644"), from "644", "0644" or an int; None stays None."""
    if mode is None or mode == "":
        return None
    if isinstance(mode, int):
        return f"{mode:04o}"
    text = str(mode).strip()
    if not re.fullmatch(r"[0-7]{3,4}", text):
        raise ValueError(f"mode must be octal digits like '0644', got {mode!r}")
    return f"{int(text, 8):04o}"


def differences(want: dict, have: dict) -> list[str]:
    """What differs between a wanted path and what is there: [] when it is as wanted.

    "state" when the path is missing or of another type (or present but wanted absent),
    then "content" (file checksum), "src" (link target), "mode", "owner", "group".
    A link's own mode is not compared (Linux has none).
    """
    state = want.get("state", "file")
    if state == "absent":
        return [] if have["state"] == "absent" else ["state"]
    if have["state"] != state:
        return ["state"]
    out = []
    if state == "file" and want.get("checksum") and have.get("checksum") != want["checksum"]:
        out.append("content")
    if state == "link" and have.get("src") != want.get("src"):
        out.append("src")
    if state != "link" and want.get("mode") is not None and have["mode"] != normal_mode(want["mode"]):
        out.append("mode")
    for key in ("owner", "group"):
        if want.get(key) is not None and have[key] != want[key]:
            out.append(key)
    return out


def diff_text(path: str, have: dict) -> str | None:
    """A file's current text for a diff, or None when it is missing, large or binary."""
    if have.get("state") != "file" or os.path.getsize(path) > DIFF_MAX_BYTES:
        return None
    with open(path, "rb") as handle:
        data = handle.read()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


# --- what else the roles decide on -------------------------------------------------------


def packages(run: Runner, names: list[str]) -> dict[str, bool]:
    """Package name -> whether dpkg has it installed (status ii or hi)."""
    if not names:
        return {}
    # Exit status 1 when some name is unknown: those are simply not installed.
    _, out, _ = run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\\n", *names])
    installed = {line.split()[0].split(":")[0] for line in out.splitlines() if re.match(r"^\S+ [hi]i", line)}
    return {name: name in installed for name in names}


def services(run: Runner, names: list[str]) -> dict[str, dict[str, bool]]:
    """systemd unit -> {enabled, active}; enabled as `systemctl is-enabled` (enabled, static, alias...)."""
    return {
        name: {
            "enabled": run(["systemctl", "is-enabled", name])[0] == 0,
            "active": run(["systemctl", "is-active", "--quiet", name])[0] == 0,
        }
        for name in names
    }


def sysctl(keys: list[str], proc: str = "/proc/sys") -> dict[str, dict]:
    """sysctl key -> {writable, value}; value with whitespace runs as one space, "" when unreadable."""
    result = {}
    for key in keys:
        path = os.path.join(proc, key if "/" in key else key.replace(".", "/"))
        try:
            with open(path) as handle:
                value = " ".join(handle.read().split())
        except OSError:
            value = ""
        result[key] = {"writable": os.path.exists(path) and os.access(path, os.W_OK), "value": value}
    return result


def user(name: str, shadow: str = "/etc/shadow") -> dict:
    """An account's {exists, group, home, shell, comment, password} (primary group's name, shadow field)."""
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
        with open(shadow) as handle:
            for line in handle:
                fields = line.rstrip("\n").split(":")
                if fields[0] == name and len(fields) > 1:
                    password = fields[1]
    except OSError:
        pass
    return {"exists": True, "group": group, "home": entry.pw_dir, "shell": entry.pw_shell,
            "comment": entry.pw_gecos, "password": password}


def group(name: str) -> dict:
    """A group's {exists}."""
    try:
        grp.getgrnam(name)
    except KeyError:
        return {"exists": False}
    return {"exists": True}


def pid1_nofile_hard(limits: str = "/proc/1/limits") -> int:
    """The hard open-file limit of PID 1 (a container's ceiling), or -1 when unknown."""
    try:
        with open(limits) as handle:
            match = re.search(r"^Max open files\s+\S+\s+(\d+)", handle.read(), re.M)
    except OSError:
        return -1
    return int(match.group(1)) if match else -1


def _link_name(path: str) -> str:
    return os.path.basename(os.readlink(path).rstrip("/")) if os.path.islink(path) else ""


def releases(root: str) -> dict:
    """An app's release layout: {current, previous, releases: [{name, path, mtime, installed}]}.

    C(current) and C(previous) are the last part of the links' targets ("" without the link);
    a release is installed once its C(.installed) exists.
    """
    found = []
    releases_dir = os.path.join(root, "releases")
    if os.path.isdir(releases_dir):
        for entry in sorted(os.scandir(releases_dir), key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False):
                found.append({
                    "name": entry.name,
                    "path": entry.path,
                    "mtime": entry.stat(follow_symlinks=False).st_mtime,
                    "installed": os.path.isfile(os.path.join(entry.path, ".installed")),
                })
    return {"current": _link_name(os.path.join(root, "current")),
            "previous": _link_name(os.path.join(root, "previous")),
            "releases": found}


def read_host(run: Runner, read: dict) -> dict:
    """Everything asked for in a fleet_files C(read) option, keyed as the option."""
    out: dict = {}
    if read.get("packages"):
        out["packages"] = packages(run, read["packages"])
    if read.get("services"):
        out["services"] = services(run, read["services"])
    if read.get("users"):
        out["users"] = {name: user(name) for name in read["users"]}
    if read.get("groups"):
        out["groups"] = {name: group(name) for name in read["groups"]}
    if read.get("sysctl"):
        out["sysctl"] = sysctl(read["sysctl"])
    if read.get("pid1_nofile_hard"):
        out["pid1_nofile_hard"] = pid1_nofile_hard()
    if read.get("releases"):
        out["releases"] = releases(read["releases"])
    return out
