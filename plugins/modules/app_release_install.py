#!/usr/bin/python
# Copyright: ec2-fleet. GNU General Public License v3.0+
"""Install one release of an app from the artifact the control node built, in one module run."""

from __future__ import annotations

DOCUMENTATION = r"""
module: app_release_install
short_description: Install one release of an app from its artifact (unpack, virtualenv, wheels) in one run
description:
  - Installs the release folder O(dest) from the artifact O(src) that the app role copied to the host. It removes
    an unfinished earlier attempt, unpacks the artifact (owner root, group O(group); no member may leave
    O(dest)), and for a Python app creates the virtualenv and installs the app's wheel with no package index.
    The release is complete once C(dest/.installed) exists, written last with the artifact's manifest; the
    artifact is removed.
  - The virtualenv is made without pip (C(venv --without-pip)); the pip that installs the wheels is the one
    the control node put in the artifact (manifest key C(installer)), run from its wheel. An artifact built
    before that (no C(installer)) gets the virtualenv's own pip from ensurepip, as before.
  - pip's output is kept in C(dest/install.log).
  - One module run instead of a task per step. On a rolling update every host stages the release at once,
    and each task costs the control node a round of every host.
  - A release that is complete already (C(dest/.installed) exists) is left as it is (C(changed=false)).
  - Check mode reports a change when the release is not complete, and changes nothing.
options:
  src:
    description: Path on the host of the artifact (C(.tar.gz)) to install; removed once installed.
    type: path
    required: true
  dest:
    description: The release folder, for example V(/srv/app/releases/1.2.0).
    type: path
    required: true
  group:
    description: Group of the release's files (mode 0750 folders, 0640 logs); their owner is root.
    type: str
    required: true
  kind:
    description: V(python) (virtualenv and wheels) or V(node) (the files as they are).
    type: str
    choices: [python, node]
    default: python
  python:
    description: The host's Python that makes the virtualenv. Required with O(kind=python).
    type: path
author: ec2-fleet contributors
"""

EXAMPLES = r"""
- name: Install release 1.2.0
  ec2_fleet.fleet.app_release_install:
    src: /srv/app/releases/.1.2.0.tar.gz
    dest: /srv/app/releases/1.2.0
    group: app
    python: /usr/bin/python3
"""

RETURN = r"""
manifest:
  description: The artifact's manifest (C(manifest.json)).
  returned: when installed
  type: dict
pip:
  description: The pip command run and its output (as in C(install.log)).
  returned: when a Python release was installed
  type: dict
  contains:
    cmd: {description: The command, type: list, elements: str}
    stdout: {description: What pip printed, type: str}
"""

import grp  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tarfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def _within(root: str, name: str) -> bool:
    path = os.path.realpath(os.path.join(root, name))
    return path == root or path.startswith(root + os.sep)


def unpack(module: AnsibleModule, src: str, dest: str, gid: int) -> None:
    """Unpack src into dest: regular files, folders and links only, none leading out of dest."""
    root = os.path.realpath(dest)
    with tarfile.open(src, "r:gz") as tar:
        members = tar.getmembers()
        for m in members:
            bad = not (m.isfile() or m.isdir() or m.issym() or m.islnk()) or not _within(root, m.name)
            if m.issym() or m.islnk():
                target = m.linkname if m.islnk() else os.path.join(os.path.dirname(m.name), m.linkname)
                bad = bad or os.path.isabs(m.linkname) or not _within(root, target)
            if bad:
                module.fail_json(msg=f"artifact {src}: member {m.name!r} is not a file, folder or link "
                                     "inside the release")
        # Python's own extraction filter too where it has one (3.12, and backported): no absolute paths.
        safe = {"filter": "tar"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(dest, members=members, **safe)  # every member checked above
    for top, dirs, files in os.walk(dest):
        for name in dirs + files:
            os.lchown(os.path.join(top, name), 0, gid)


def run(module: AnsibleModule, argv: list[str]) -> str:
    rc, out, err = module.run_command(argv, environ_update={"PIP_CONFIG_FILE": os.devnull})
    if rc != 0:
        module.fail_json(msg=f"{' '.join(argv)} failed with rc {rc}", rc=rc, stdout=out, stderr=err)
    return out


def install_python(module: AnsibleModule, dest: str, manifest: dict) -> dict:
    python = module.params["python"]
    venv = os.path.join(dest, "venv")
    wheels = os.path.join(dest, "wheels")
    installer = manifest.get("installer")
    if installer:
        run(module, [python, "-m", "venv", "--without-pip", venv])
        pip = [os.path.join(venv, "bin", "python"), os.path.join(dest, "installer", installer, "pip")]
    else:
        run(module, [python, "-m", "venv", venv])
        pip = [os.path.join(venv, "bin", "python"), "-m", "pip"]
    cmd = [*pip, "install", "--no-index", f"--find-links={wheels}", "--no-cache-dir", "--disable-pip-version-check",
           os.path.join(wheels, manifest["package"])]
    return {"cmd": cmd, "stdout": run(module, cmd)}


def write(path: str, text: str, gid: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chown(path, 0, gid)
    os.chmod(path, 0o640)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "path", "required": True},
            "dest": {"type": "path", "required": True},
            "group": {"type": "str", "required": True},
            "kind": {"type": "str", "choices": ["python", "node"], "default": "python"},
            "python": {"type": "path"},
        },
        required_if=[("kind", "python", ["python"])],
        supports_check_mode=True,
    )
    p = module.params
    dest, src = p["dest"], p["src"]
    marker = os.path.join(dest, ".installed")
    if os.path.exists(marker):
        module.exit_json(changed=False)
    if module.check_mode:
        module.exit_json(changed=True)
    try:
        gid = grp.getgrnam(p["group"]).gr_gid
    except KeyError:
        module.fail_json(msg=f"group {p['group']!r} does not exist on the host")
    if not os.path.isfile(src):
        module.fail_json(msg=f"artifact {src} is not on the host")

    shutil.rmtree(dest, ignore_errors=True)  # an unfinished earlier attempt
    for path in (dest, os.path.join(dest, "bin")):
        os.makedirs(path, exist_ok=True)
        os.chown(path, 0, gid)
        os.chmod(path, 0o750)
    unpack(module, src, dest, gid)
    os.chmod(dest, 0o750)
    with open(os.path.join(dest, "manifest.json"), encoding="utf-8") as f:
        text = f.read()
    manifest = json.loads(text)
    result = {"changed": True, "manifest": manifest}
    if p["kind"] == "python":
        result["pip"] = install_python(module, dest, manifest)
        write(os.path.join(dest, "install.log"), f"$ {' '.join(result['pip']['cmd'])}\n{result['pip']['stdout']}",
              gid)
    write(marker, text, gid)
    os.remove(src)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
