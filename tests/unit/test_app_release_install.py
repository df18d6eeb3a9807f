"""ec2_fleet.fleet.app_release_install: a release installed from its artifact in one module run.

Run as the module runs on a host (a subprocess with its arguments file). The python artifacts here hold a
tiny wheel made by hand and, as `installer/`, the running pip zipped as a wheel; the real app's artifact is
installed by molecule's app scenario and the fleet.
"""

from __future__ import annotations

import grp
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[2] / "plugins" / "modules" / "app_release_install.py"
GROUP = grp.getgrgid(os.getgid()).gr_name

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the module gives the release's files to root")


def artifact(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None,
             manifest: dict | None = None) -> Path:
    text = json.dumps(manifest or {"kind": "node", "name": "web", "version": "1.0.0"}).encode()
    with tarfile.open(path, "w:gz") as tar:
        for name, data in {"manifest.json": text, **members}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


def install(tmp_path: Path, src: Path, dest: Path, check: bool = False, kind: str = "node") -> dict:
    args = {"src": str(src), "dest": str(dest), "group": GROUP, "kind": kind, "_ansible_check_mode": check}
    if kind == "python":
        args["python"] = sys.executable
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    done = subprocess.run([sys.executable, str(MODULE), str(args_file)], capture_output=True, text=True, timeout=300)
    return json.loads(done.stdout)


def test_a_release_is_unpacked_marked_complete_and_its_artifact_removed(tmp_path):
    src = artifact(tmp_path / ".1.0.0.tar.gz", {"app/server.js": b"console.log(1)\n"})
    dest = tmp_path / "releases" / "1.0.0"
    (tmp_path / "releases").mkdir()

    checked = install(tmp_path, src, dest, check=True)
    assert checked["changed"] is True and not dest.exists() and src.exists(), checked

    done = install(tmp_path, src, dest)
    assert done["changed"] is True and done["manifest"]["version"] == "1.0.0", done
    assert (dest / "app" / "server.js").read_bytes() == b"console.log(1)\n"
    assert json.loads((dest / ".installed").read_text())["name"] == "web"
    assert oct(dest.stat().st_mode & 0o777) == "0o750" and oct((dest / ".installed").stat().st_mode & 0o777) == "0o640"
    assert {(p.stat().st_uid, p.stat().st_gid) for p in dest.rglob("*")} == {(0, os.getgid())}
    assert (dest / "bin").is_dir() and not src.exists()

    again = install(tmp_path, src, dest)
    assert again["changed"] is False, again


def test_an_unfinished_earlier_attempt_is_redone(tmp_path):
    dest = tmp_path / "1.0.0"
    dest.mkdir()
    (dest / "half-written").write_text("left by a run that died")
    done = install(tmp_path, artifact(tmp_path / "a.tar.gz", {"app/index.js": b""}), dest)
    assert done["changed"] is True, done
    assert not (dest / "half-written").exists() and (dest / ".installed").is_file()


@pytest.mark.parametrize("members,links", [
    ({"../outside.txt": b"x"}, None),
    ({"/etc/owned": b"x"}, None),
    ({}, {"app/escape": "../../outside"}),
    ({}, {"app/abs": "/etc/shadow"}),
], ids=["dotdot", "absolute", "link-out", "absolute-link"])
def test_a_member_leaving_the_release_is_refused_and_nothing_is_marked_installed(tmp_path, members, links):
    dest = tmp_path / "releases" / "1.0.0"
    (tmp_path / "releases").mkdir()
    done = install(tmp_path, artifact(tmp_path / "a.tar.gz", members, links), dest)
    assert done.get("failed") is True and "is not a file, folder or link inside the release" in done["msg"], done
    assert not (dest / ".installed").exists()
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "releases" / "outside.txt").exists()


def test_a_missing_artifact_is_named(tmp_path):
    gone = install(tmp_path, tmp_path / "nothing.tar.gz", tmp_path / "1.0.0")
    assert gone.get("failed") is True and "nothing.tar.gz is not on the host" in gone["msg"], gone


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def wheels() -> dict[str, bytes]:
    """A tiny app wheel, and the running pip zipped as the wheel the control node puts in `installer/`."""
    import pip

    root = Path(pip.__file__).parent
    pip_files = {str(p.relative_to(root.parent)): p.read_bytes() for p in root.rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts}
    info = "hello_app-1.0.0.dist-info/"
    app = {"hello_app/__init__.py": b'GREETING = "hello"\n',
           info + "METADATA": b"Metadata-Version: 2.1\nName: hello-app\nVersion: 1.0.0\n",
           info + "WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
           info + "RECORD": b""}
    return {"hello_app-1.0.0-py3-none-any.whl": _zip(app), "pip-0-py3-none-any.whl": _zip(pip_files)}


@pytest.mark.parametrize("with_installer", [True, False], ids=["pip-from-the-artifact", "older-artifact"])
def test_a_python_release_gets_its_virtualenv_and_wheels_with_no_index(tmp_path, wheels, with_installer):
    package = "hello_app-1.0.0-py3-none-any.whl"
    manifest = {"kind": "python", "name": "hello", "version": "1.0.0", "package": package}
    members = {f"wheels/{package}": wheels[package]}
    if with_installer:
        manifest["installer"] = "pip-0-py3-none-any.whl"
        members["installer/pip-0-py3-none-any.whl"] = wheels["pip-0-py3-none-any.whl"]
    dest = tmp_path / "1.0.0"
    done = install(tmp_path, artifact(tmp_path / "a.tar.gz", members, manifest=manifest), dest, kind="python")

    assert done["changed"] is True, done
    python = dest / "venv" / "bin" / "python"
    said = subprocess.run([str(python), "-c", "import hello_app; print(hello_app.GREETING)"],
                          capture_output=True, text=True, timeout=60)
    assert said.stdout.strip() == "hello", said.stderr
    log = (dest / "install.log").read_text()
    assert "--no-index" in log and "Successfully installed hello-app-1.0.0" in log, log
    # The artifact's pip installs and stays out of the release's virtualenv; an older artifact's venv has its own.
    has_pip = any((dest / "venv" / "lib").glob("python3*/site-packages/pip"))
    assert has_pip is not with_installer
    assert (dest / ".installed").is_file()
