"""The repo as a user gets it: the collection tarball, installed into an empty collections path, used by
a consumer project outside the repo (its own ansible.cfg, no path back to this checkout).

One build and one install per session; the consumer's playbook runs a role and a module of the
collection by FQCN against moto on 127.0.0.1, and ansible-doc shows every module, the inventory
plugin and every role's entry points of the installed copy.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import yaml
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"
REGION = "us-east-1"
# Top-level folders and files of the repo that are development parts, caches or secrets.
NOT_SHIPPED = ("tests", "lab", "bench", "tools", "devkit", "molecule", "inventories", "group_vars", "collections",
               ".cache", ".venv", ".git", ".ansible", ".pytest_cache", ".ruff_cache", "app", "ansible.cfg",
               "Makefile", "pyproject.toml")


def _tool(name: str) -> str:
    """The venv's ansible-* command (the one the tests run with)."""
    return str(BIN / name)


def _run(args: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        output = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{output}")
    return result


def _clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without anything that points Ansible (or Python) back at this repo."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "AWS_")) and k != "PYTHONPATH"}
    env.update({"ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "PATH": f"{BIN}:{env.get('PATH', '')}"})
    env.update(extra)
    return env


def _build(output: Path) -> Path:
    _run([_tool("ansible-galaxy"), "collection", "build", "--output-path", str(output), str(ROOT)], ROOT, _clean_env())
    (tarball,) = output.glob(f"{GALAXY['namespace']}-{GALAXY['name']}-*.tar.gz")
    return tarball


def _install(tarball: Path, collections: Path, env: dict[str, str]) -> None:
    # --offline --no-deps: the dependencies (amazon.aws, community.aws, ...) come from the venv's ansible package.
    _run([_tool("ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "-p", str(collections),
          str(tarball)], tarball.parent, env)


def _consumer(base: Path, collections: Path) -> tuple[Path, dict[str, str]]:
    """A project of its own: ansible.cfg with the installed collections only (the venv's come from sys.path)."""
    project = base / "consumer"
    project.mkdir()
    (project / "ansible.cfg").write_text(
        "[defaults]\n"
        f"collections_path = {collections}\n"
        "inventory = localhost,\n"
        "retry_files_enabled = false\n"
        "interpreter_python = auto_silent\n"
    )
    env = _clean_env(ANSIBLE_CONFIG=str(project / "ansible.cfg"), HOME=str(base / "home"))
    (base / "home").mkdir()
    return project, env


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def consumer(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    base = tmp_path_factory.mktemp("consumer")
    assert not base.resolve().is_relative_to(ROOT), "the consumer project must live outside the repo"
    project, env = _consumer(base, base / "collections")
    _install(tarball, base / "collections", env)
    return project, env


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _members(tarball: Path) -> list[str]:
    with tarfile.open(tarball) as tar:
        return [m.name.removeprefix("./") for m in tar.getmembers()]


def _roles(tarball: Path) -> list[str]:
    return sorted({n.split("/")[1] for n in _members(tarball) if n.startswith("roles/") and n.count("/") >= 2})


def test_tarball_holds_the_collection_and_nothing_of_the_development_parts(tarball: Path) -> None:
    members = _members(tarball)
    tops = {name.split("/")[0] for name in members}
    assert {"MANIFEST.json", "FILES.json", "meta", "plugins", "roles", "playbooks"} <= tops
    shipped = sorted(tops & set(NOT_SHIPPED))
    assert not shipped, f"the tarball ships development parts: {shipped}"
    cached = [n for n in members if "__pycache__" in n.split("/") or n.endswith(".pyc") or "/.pytest_cache" in n]
    assert not cached, cached[:5]
    secrets = [n for n in members if n.split("/")[-1] in ("vault.yml", "vault.yaml")]
    assert not secrets, secrets
    # collections/ansible_collections/ec2_fleet/fleet links back to the repo root: never a loop in the tarball.
    assert not [n for n in members if "ansible_collections" in n.split("/")]
    # Every role of the repo is in it, with its interface.
    repo_roles = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
    assert _roles(tarball) == repo_roles
    for role in repo_roles:
        assert f"roles/{role}/meta/argument_specs.yml" in members, role


def test_installed_collection_is_the_tarball_not_the_checkout(consumer: tuple[Path, dict[str, str]]) -> None:
    project, env = consumer
    listed = _run([_tool("ansible-galaxy"), "collection", "list", FQCN, "--format", "json"], project, env)
    paths = list(json.loads(listed.stdout))
    assert len(paths) == 1, paths
    assert not Path(paths[0]).resolve().is_relative_to(ROOT), f"{FQCN} resolves to the checkout: {paths}"
    installed = Path(paths[0]) / GALAXY["namespace"] / GALAXY["name"]
    assert (installed / "MANIFEST.json").is_file()
    assert not (installed / "tests").exists()


def test_ansible_doc_lists_every_module_of_the_collection(tarball: Path, consumer: tuple[Path, dict[str, str]]) -> None:
    project, env = consumer
    listed = json.loads(_run([_tool("ansible-doc"), "-t", "module", "-l", FQCN, "--json"], project, env).stdout)
    shipped = sorted(
        f"{FQCN}.{Path(n).stem}" for n in _members(tarball)
        if n.startswith("plugins/modules/") and n.endswith(".py") and not n.endswith("__init__.py")
    )
    assert shipped, "no module in the tarball"
    assert sorted(listed) == shipped
    # Each one's documentation renders (a broken DOCUMENTATION block would only show here).
    for module in shipped:
        doc = json.loads(_run([_tool("ansible-doc"), "-t", "module", module, "--json"], project, env).stdout)
        assert doc[module]["doc"]["short_description"], module


def test_ansible_doc_shows_the_inventory_plugin(consumer: tuple[Path, dict[str, str]]) -> None:
    project, env = consumer
    name = f"{FQCN}.fleet_aws_ec2"
    doc = json.loads(_run([_tool("ansible-doc"), "-t", "inventory", name, "--json"], project, env).stdout)
    assert "hostvars_include" in doc[name]["doc"]["options"]


def test_ansible_doc_shows_every_role_entry_point(tarball: Path, consumer: tuple[Path, dict[str, str]]) -> None:
    project, env = consumer
    roles = _roles(tarball)
    for role in roles:
        doc = json.loads(_run([_tool("ansible-doc"), "-t", "role", f"{FQCN}.{role}", "--json"], project, env).stdout)
        entry_points = doc[f"{FQCN}.{role}"]["entry_points"]
        spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
        assert sorted(entry_points) == sorted(spec["argument_specs"]), role
        assert entry_points["main"]["short_description"], role


@pytest.mark.parametrize("playbook", ["site", "provision", "teardown", "verify", "rolling_update", "rollback"])
def test_playbooks_pass_syntax_check_by_fqcn(playbook: str, consumer: tuple[Path, dict[str, str]]) -> None:
    project, env = consumer
    _run([_tool("ansible-playbook"), f"{FQCN}.{playbook}", "--syntax-check"], project, env)


CONSUMER_PLAY = """\
- name: Use the installed collection
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/{fqcn}.aws:
      endpoint_url: "{endpoint}"
      region: {region}
      access_key: testing
      secret_key: testing
  tasks:
    - name: Create the network with the collection's role
      ansible.builtin.import_role:
        name: {fqcn}.aws_network
      vars:
        aws_network_name_prefix: consumer
        aws_network_tags: {{Project: consumer, Environment: test}}
        aws_network_database_cidrs: [10.20.30.0/24]

    - name: Create a target group (community.aws, reached by the same module_defaults)
      community.aws.elb_target_group:
        name: consumer-tg
        protocol: HTTP
        port: 8000
        vpc_id: "{{{{ aws_network_outputs.vpc_id }}}}"
        state: present
      register: target_group

    - name: Ramp new targets up over 45 s with the collection's module
      {fqcn}.aws_alb_attributes:
        arn: "{{{{ target_group.target_group_arn }}}}"
        attributes:
          slow_start.duration_seconds: 45
      register: attributes

    - name: Read a parameter with the collection's module
      {fqcn}.fleet_ssm_parameter_info:
        name: /consumer/greeting
      register: greeting

    - name: Keep what the play saw
      ansible.builtin.copy:
        content: "{{{{ {{'vpc_id': aws_network_outputs.vpc_id, 'changed': attributes.changed,
                        'greeting': greeting.value}} | to_json }}}}"
        dest: "{{{{ playbook_dir }}}}/result.json"
        mode: '0644'
"""


def _play(project: Path, env: dict[str, str], moto_url: str) -> subprocess.CompletedProcess:
    (project / "play.yml").write_text(CONSUMER_PLAY.format(fqcn=FQCN, endpoint=moto_url, region=REGION))
    return _run([_tool("ansible-playbook"), "play.yml"], project, env, check=False)


def test_consumer_runs_a_role_and_a_module_of_the_collection_against_moto(
    consumer: tuple[Path, dict[str, str]], moto_url: str
) -> None:
    project, env = consumer
    aws = {"endpoint_url": moto_url, "region_name": REGION, "aws_access_key_id": "checks",
           "aws_secret_access_key": "checks"}
    boto3.client("ssm", **aws).put_parameter(Name="/consumer/greeting", Value="hello", Type="String", Overwrite=True)
    result = _play(project, env, moto_url)
    assert result.returncode == 0, result.stdout[-4000:]
    seen = json.loads((project / "result.json").read_text())
    assert seen == {"vpc_id": seen["vpc_id"], "changed": True, "greeting": "hello"}
    ec2 = boto3.client("ec2", **aws)
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Project", "Values": ["consumer"]}])["Vpcs"]
    assert [v["VpcId"] for v in vpcs] == [seen["vpc_id"]]
    elbv2 = boto3.client("elbv2", **aws)
    (tg,) = elbv2.describe_target_groups(Names=["consumer-tg"])["TargetGroups"]
    attributes = {a["Key"]: a["Value"] for a in elbv2.describe_target_group_attributes(
        TargetGroupArn=tg["TargetGroupArn"])["Attributes"]}
    assert attributes["slow_start.duration_seconds"] == "45"


def test_a_collection_without_a_module_fails_the_consumer(
    tarball: Path, tmp_path_factory: pytest.TempPathFactory, moto_url: str
) -> None:
    """The checks above can fail: a tarball that lacks a module breaks ansible-doc's list and the play."""
    base = tmp_path_factory.mktemp("broken")
    source = base / "source"
    shutil.unpack_archive(tarball, source)
    (source / "plugins" / "modules" / "aws_alb_attributes.py").unlink()
    manifest = json.loads((source / "FILES.json").read_text())
    manifest["files"] = [f for f in manifest["files"] if f["name"] != "plugins/modules/aws_alb_attributes.py"]
    (source / "FILES.json").write_text(json.dumps(manifest))
    collections = base / "collections" / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    shutil.copytree(source, collections)
    project, env = _consumer(base, base / "collections")
    listed = json.loads(_run([_tool("ansible-doc"), "-t", "module", "-l", FQCN, "--json"], project, env).stdout)
    assert f"{FQCN}.aws_alb_attributes" not in listed
    result = _play(project, env, moto_url)
    assert result.returncode != 0
    assert "aws_alb_attributes" in result.stdout + result.stderr
