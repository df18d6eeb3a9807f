"""The execution environment AWX runs the collection in: execution-environment.yml (ansible-builder v3).

No registry is reachable here, so no image is built: `ansible-builder create` writes the build context
(the Containerfile and what it copies) from the collection tarball, and the checks read that context as
`ansible-builder build` would use it. The collection's own Python and system packages come from its
meta/execution-environment.yml, which the image build introspects; `ansible-builder introspect` over the
installed tarball shows what it finds. Nothing here needs the network.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
EE = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
TARBALL = f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
# The development toolchain (requirements.txt): never in the image.
DEV_ONLY = ("moto", "molecule", "molecule-plugins", "pytest", "pytest-testinfra", "ansible-lint", "yamllint", "ruff",
            "matplotlib", "redis")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update({"ANSIBLE_NOCOLOR": "1", "PATH": f"{BIN}:{env.get('PATH', '')}"})
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _create(workdir: Path, definition: dict, context: str = "context") -> subprocess.CompletedProcess:
    (workdir / f"{context}.yml").write_text(yaml.safe_dump(definition, sort_keys=False))
    return _run([str(BIN / "ansible-builder"), "create", "-f", f"{context}.yml", "-c", context], workdir)


def _names(requirements: list[str]) -> set[str]:
    """Package names of pip or bindep lines ('boto3>=1.34.0  # from ...' -> 'boto3')."""
    return {re.split(r"[\s<>=!~;\[]", line.strip(), maxsplit=1)[0].lower() for line in requirements if line.strip()}


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def context_problems(context: Path) -> list[str]:
    """What would make `ansible-builder build` of this context fail or miss the collection."""
    problems = []
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    for entry in requirements["collections"]:
        if entry.get("type") == "file" and not (context / "_build" / entry["name"]).is_file():
            problems.append(f"{entry['name']} is named in the galaxy requirements but not in the build context")
    return problems


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The EE file beside the collection tarball, as the release steps leave them (dist/ next to it)."""
    work = tmp_path_factory.mktemp("ee")
    shutil.copy(ROOT / "execution-environment.yml", work / "execution-environment.yml")
    built = _run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(work / "dist"), str(ROOT)],
                 ROOT)
    assert built.returncode == 0, built.stdout + built.stderr
    return work


@pytest.fixture(scope="module")
def context(workdir: Path) -> Path:
    created = _create(workdir, EE)
    assert created.returncode == 0, created.stdout + created.stderr
    return workdir / "context"


def test_the_file_is_ansible_builder_v3_on_a_named_base_image():
    assert EE["version"] == 3
    assert EE["images"]["base_image"]["name"].startswith("registry.access.redhat.com/ubi9/")


def test_the_containerfile_builds_on_the_base_image_with_the_tested_ansible(context: Path):
    containerfile = (context / "Containerfile").read_text()
    assert f'ARG EE_BASE_IMAGE="{EE["images"]["base_image"]["name"]}"' in containerfile
    # ansible-core and ansible-runner at the versions the project is tested with (requirements.txt).
    pins = dict(line.split("==", 1) for line in _lines((ROOT / "requirements.txt").read_text()) if "==" in line)
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="(.*)"$', containerfile, re.M).group(1).split()
    assert sorted(refs) == sorted(f"{name}=={pins[name]}" for name in ("ansible-core", "ansible-runner")), refs
    assert 'ARG PYCMD="/usr/bin/python3.11"' in containerfile  # ansible-core 2.19 needs Python 3.11
    # The galaxy stage installs the requirements; the builder stage introspects what it installed.
    assert "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml" in containerfile
    assert "introspect.py introspect --write-bindep=/tmp/src/bindep.txt --write-pip=/tmp/src/requirements.txt" \
        in containerfile


def test_the_context_holds_the_collection_tarball_and_its_galaxy_dependencies(context: Path):
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())["collections"]
    files = [r["name"] for r in requirements if r.get("type") == "file"]
    assert [Path(f).name for f in files] == [TARBALL], files  # galaxy.yml's version: a bump updates both
    assert context_problems(context) == []
    # The collections it depends on, in the ranges its galaxy.yml declares (containers.podman is the tests').
    ranges = {r["name"]: r.get("version") for r in requirements if r.get("type") != "file"}
    assert ranges == GALAXY["dependencies"]


def test_the_collection_in_the_context_declares_its_control_node_packages(context: Path):
    with tarfile.open(context / "_build" / "collections" / TARBALL) as tarball:
        def read(name: str) -> str:
            return tarball.extractfile(name).read().decode()

        names = set(tarball.getnames())
        meta = yaml.safe_load(read("meta/execution-environment.yml"))
        python, system = (read(meta["dependencies"][kind]) for kind in ("python", "system"))
    assert "execution-environment.yml" not in names  # the image recipe is not part of the collection
    assert {"boto3", "botocore"} <= _names(_lines(python))
    assert not _names(_lines(python)) & set(DEV_ONLY), _lines(python)
    assert {"openssh-clients [platform:rpm]", "openssh-client [platform:dpkg]"} <= set(_lines(system))


def test_introspect_finds_the_collections_packages_and_no_development_tool(context: Path, tmp_path: Path):
    """What the image's builder stage does: introspect the installed collection."""
    collections = tmp_path / "collections"
    installed = _run([str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "-p",
                      str(collections), str(context / "_build" / "collections" / TARBALL)], tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    found = _run([str(BIN / "ansible-builder"), "introspect", str(collections),
                  "--write-pip", "pip.txt", "--write-bindep", "bindep.txt"], tmp_path)
    assert found.returncode == 0, found.stdout + found.stderr
    pip = _lines((tmp_path / "pip.txt").read_text())
    bindep = _lines((tmp_path / "bindep.txt").read_text())
    assert {"boto3", "botocore"} <= _names(pip), pip
    assert not _names(pip) & set(DEV_ONLY), pip
    assert all(line.endswith("# from collection ec2_fleet.fleet") for line in pip + bindep), pip + bindep
    assert "openssh-clients" in _names(bindep), bindep


def _with(change) -> dict:
    definition = yaml.safe_load(yaml.safe_dump(EE))
    change(definition)
    return definition


@pytest.mark.parametrize(("case", "change", "message"), [
    ("version 2 file", lambda d: d.update(version=2), "Additional properties are not allowed"),
    ("version 2 key in a version 3 file",
     lambda d: d.update(build_arg_defaults={"EE_BASE_IMAGE": "quay.io/ansible/ansible-runner:latest"}),
     "'EE_BASE_IMAGE' was unexpected"),
    ("missing python requirements file", lambda d: d["dependencies"].update(python="meta/ee-missing.txt"),
     "Dependency file meta/ee-missing.txt does not exist"),
])
def test_a_broken_definition_is_refused_and_writes_no_context(workdir: Path, case: str, change, message: str):
    created = _create(workdir, _with(change), context=f"broken-{case.replace(' ', '-')}")
    assert created.returncode != 0, created.stdout
    assert message in created.stdout + created.stderr, created.stdout + created.stderr
    assert not (workdir / f"broken-{case.replace(' ', '-')}" / "Containerfile").exists()


def test_a_context_without_the_named_tarball_is_caught(workdir: Path):
    """ansible-builder only warns when additional_build_files matches nothing (here: galaxy.yml's version
    bumped, the EE file not): the context check names the tarball the image build would not find."""
    stale = "ec2_fleet-fleet-0.0.1.tar.gz"

    def point_at_an_unbuilt_version(d: dict) -> None:
        d["additional_build_files"][0]["src"] = f"dist/{stale}"
        d["dependencies"]["galaxy"]["collections"][0]["name"] = f"collections/{stale}"

    created = _create(workdir, _with(point_at_an_unbuilt_version), context="stale")
    assert created.returncode == 0, created.stdout + created.stderr
    assert context_problems(workdir / "stale") == [
        f"collections/{stale} is named in the galaxy requirements but not in the build context"]
