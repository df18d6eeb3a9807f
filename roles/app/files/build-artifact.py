#!/usr/bin/env python3
"""Build one release artifact of an app on the control node (the `app` role runs this once per version).

python: the service's wheel plus the wheel of every dependency, downloaded for the target's Python
        version, CPU and glibc (never for the control node's own), in wheels/.
node:   the app's files with its production node_modules (npm ci --omit=dev), in app/.

Both get a manifest.json and are packed as one .tar.gz, written atomically: a tarball that exists
is complete, so the role reuses it (build once, deploy many). The source tree is copied first, so
building never writes into it (no build/, *.egg-info or node_modules left behind).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

IGNORED = shutil.ignore_patterns(
    "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".pytest_cache", ".venv", "node_modules", ".git",
)


def run(cmd: list[str], cwd: Path | None = None) -> None:
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def manylinux_platforms(arch: str, glibc: str) -> list[str]:
    """Every manylinux tag the target's glibc accepts (manylinux2014 = glibc 2.17, the oldest we take)."""
    major, minor = (int(x) for x in glibc.split(".")[:2])
    if major != 2:
        sys.exit(f"build-artifact: unexpected glibc version {glibc}")
    return [f"manylinux_2_{m}_{arch}" for m in range(minor, 16, -1)] + [f"manylinux2014_{arch}"]


def build_python(src: Path, out: Path, args: argparse.Namespace) -> dict:
    wheels = out / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run([*pip, "wheel", "--no-deps", "--wheel-dir", str(wheels), str(src)])
    built = sorted(wheels.glob("*.whl"))
    if len(built) != 1:
        sys.exit(f"build-artifact: expected one wheel from {args.source}, got {[p.name for p in built]}")
    package = built[0]
    abi = "cp" + args.python_version.replace(".", "")
    platforms = [f for p in manylinux_platforms(args.arch, args.glibc) for f in ("--platform", p)]
    run([*pip, "download", "--only-binary=:all:", "--python-version", args.python_version,
         "--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none", *platforms,
         "--dest", str(wheels), str(package)])
    # The pip that installs the wheels on the host, run from its wheel there: the host's virtualenv is made
    # without pip (ensurepip takes seconds per host and installs a pip the release never uses again).
    installer = out / "installer"
    run([*pip, "download", "--no-deps", "--only-binary=:all:", "--python-version", args.python_version,
         "--dest", str(installer), f"pip=={importlib.metadata.version('pip')}"])
    return {"package": package.name, "wheels": sorted(p.name for p in wheels.glob("*.whl")),
            "installer": next(installer.glob("pip-*.whl")).name,
            "python_version": args.python_version, "arch": args.arch, "glibc": args.glibc}


def build_node(src: Path, out: Path, args: argparse.Namespace) -> dict:
    app = out / "app"
    shutil.copytree(src, app, ignore=IGNORED)
    npm = ["npm", "--no-audit", "--no-fund", "--omit=dev"]
    if (app / "package-lock.json").exists():
        run([*npm, "ci"], cwd=app)
    else:  # no lock file: resolve the production dependencies once, here
        run([*npm, "install", "--no-package-lock"], cwd=app)
    package = json.loads((app / "package.json").read_text())
    return {"package": package.get("name", ""), "dependencies": sorted(package.get("dependencies", {}))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=["python", "node"], required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True, help="the .tar.gz to write")
    parser.add_argument("--python-version", default="")
    parser.add_argument("--arch", default="x86_64")
    parser.add_argument("--glibc", default="2.17")
    args = parser.parse_args()

    if not args.source.is_dir():
        sys.exit(f"build-artifact: source directory {args.source} does not exist")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ec2-fleet-build-") as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        out.mkdir()
        if args.kind == "python":
            shutil.copytree(args.source, src, ignore=IGNORED)
            details = build_python(src, out, args)
        else:
            details = build_node(args.source, out, args)
        manifest = {"name": args.name, "version": args.version, "kind": args.kind, **details}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        partial = args.output.with_name(args.output.name + f".partial-{os.getpid()}")
        with tarfile.open(partial, "w:gz") as tar:
            for entry in sorted(out.iterdir()):
                tar.add(entry, arcname=entry.name)
        partial.replace(args.output)
    print(json.dumps(manifest, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
