"""ec2_fleet.fleet.fleet_files: what it compares, what it writes, what it reports and which handlers it notifies."""

from __future__ import annotations

import base64
import grp
import hashlib
import json
import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleActionFail
from ansible_collections.ec2_fleet.fleet.plugins.action import fleet_files as action
from ansible_collections.ec2_fleet.fleet.plugins.module_utils import fleet_files as host
from ansible_collections.ec2_fleet.fleet.plugins.modules import fleet_files as module

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class Failed(Exception):
    """fail_json of the fake module."""


class FakeModule:
    """Just what fleet_files' run() uses of AnsibleModule."""

    def __init__(self, files=(), read=None, apply=False, check_mode=False, diff=False, commands=None):
        self.params = {"files": list(files), "read": read or {}, "apply": apply}
        self.check_mode = check_mode
        self._diff = diff
        self.commands = commands or {}
        self.ran: list = []

    def run_command(self, args):
        self.ran.append(args)
        if isinstance(args, str):
            done = subprocess.run(args, shell=True, capture_output=True, text=True)
            return done.returncode, done.stdout, done.stderr
        return self.commands.get(args[0], (0, "", ""))

    def fail_json(self, **kwargs):
        raise Failed(kwargs["msg"])


def wanted_file(path: Path, data: bytes, **extra) -> dict:
    return {"path": str(path), "state": "file", "checksum": sha1(data), "mode": "0640", "owner": ME,
            "group": MY_GROUP, **extra}


def with_data(item: dict, data: bytes) -> dict:
    return {**item, "data": base64.b64encode(data).decode()}


# --- comparing ---------------------------------------------------------------------------


def test_a_file_as_wanted_has_no_differences(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x\n")
    path.chmod(0o640)
    assert host.differences(wanted_file(path, b"x\n"), host.path_state(str(path))) == []


def test_content_mode_owner_and_group_are_compared(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old\n")
    path.chmod(0o600)
    want = wanted_file(path, b"new\n", owner="nobody-such-user", group="nobody-such-group")
    assert host.differences(want, host.path_state(str(path))) == ["content", "mode", "owner", "group"]


def test_a_missing_path_or_another_type_differs_in_state(tmp_path):
    assert host.differences(wanted_file(tmp_path / "nope", b""), host.path_state(str(tmp_path / "nope"))) == ["state"]
    assert host.differences({"path": str(tmp_path), "state": "file"}, host.path_state(str(tmp_path))) == ["state"]


def test_unmanaged_attributes_are_not_compared(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir(mode=0o700)
    assert host.differences({"path": str(folder), "state": "directory"}, host.path_state(str(folder))) == []


def test_a_link_is_compared_by_its_target_not_followed(tmp_path):
    (tmp_path / "l").symlink_to("a")
    have = host.path_state(str(tmp_path / "l"))
    assert have["state"] == "link" and have["src"] == "a"
    assert host.differences({"path": str(tmp_path / "l"), "state": "link", "src": "a", "mode": "0755"}, have) == []
    assert host.differences({"path": str(tmp_path / "l"), "state": "link", "src": "b"}, have) == ["src"]


def test_absent_differs_only_when_something_is_there(tmp_path):
    assert host.differences({"path": "x", "state": "absent"}, {"state": "absent"}) == []
    assert host.differences({"path": "x", "state": "absent"}, {"state": "file"}) == ["state"]


@pytest.mark.parametrize(("mode", "normal"), [("644", "0644"), ("0644", "0644"), (0o750, "0750"), (None, None)])
def test_modes_are_compared_as_four_octal_digits(mode, normal):
    assert host.normal_mode(mode) == normal


def test_a_mode_that_is_not_octal_is_refused():
    with pytest.raises(ValueError, match="octal"):
        host.normal_mode("u+rw")


def test_a_diff_shows_text_but_not_binary_or_large_files(tmp_path):
    text, binary, large = tmp_path / "t", tmp_path / "b", tmp_path / "l"
    text.write_text("a\n")
    binary.write_bytes(b"\0\1")
    large.write_bytes(b"a" * (host.DIFF_MAX_BYTES + 1))
    assert host.diff_text(str(text), host.path_state(str(text))) == "a\n"
    assert host.diff_text(str(binary), host.path_state(str(binary))) is None
    assert host.diff_text(str(large), host.path_state(str(large))) is None


# --- the module: one call to compare, one to write ---------------------------------------


def test_the_compare_call_reports_and_writes_nothing(tmp_path):
    want = wanted_file(tmp_path / "f", b"x\n")
    result = module.run(FakeModule([want]))
    assert result["changed"] is True
    assert result["results"][0]["differences"] == ["state"]
    assert not (tmp_path / "f").exists()


def test_the_write_call_writes_content_and_attributes_then_reports_nothing_left(tmp_path):
    path = tmp_path / "f"
    want = wanted_file(path, b"x\n")
    assert module.run(FakeModule([with_data(want, b"x\n")], apply=True))["changed"] is True
    assert path.read_bytes() == b"x\n"
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    again = module.run(FakeModule([want]))
    assert again["changed"] is False and again["results"][0]["differences"] == []


def test_check_mode_writes_nothing_even_when_asked_to_apply(tmp_path):
    want = with_data(wanted_file(tmp_path / "f", b"x\n"), b"x\n")
    assert module.run(FakeModule([want], apply=True, check_mode=True))["changed"] is True
    assert not (tmp_path / "f").exists()


def test_only_the_mode_is_fixed_when_only_the_mode_differs(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x\n")
    path.chmod(0o644)
    inode = path.stat().st_ino
    result = module.run(FakeModule([wanted_file(path, b"x\n")], apply=True))  # no data sent: none needed
    assert result["results"][0]["differences"] == ["mode"]
    assert oct(path.stat().st_mode & 0o777) == "0o640" and path.stat().st_ino == inode


def test_a_file_that_fails_validation_is_not_written(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"good\n")
    bad = with_data(wanted_file(path, b"bad\n", validate="grep -q good %s"), b"bad\n")
    with pytest.raises(Failed, match="failed to validate"):
        module.run(FakeModule([bad], apply=True))
    assert path.read_bytes() == b"good\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]  # no temporary file left behind


def test_a_file_that_passes_validation_replaces_the_old_one(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old\n")
    good = with_data(wanted_file(path, b"good\n", validate="grep -q good %s"), b"good\n")
    module.run(FakeModule([good], apply=True))
    assert path.read_bytes() == b"good\n"


def test_folders_links_and_removals_in_order(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "x").write_text("x")
    items = [
        {"path": str(tmp_path / "d" / "e"), "state": "directory", "mode": "0750"},
        {"path": str(tmp_path / "l"), "state": "link", "src": str(tmp_path / "d")},
        {"path": str(tmp_path / "old"), "state": "absent"},
        {"path": str(tmp_path / "never"), "state": "absent"},
    ]
    result = module.run(FakeModule(items, apply=True))
    assert [r["changed"] for r in result["results"]] == [True, True, True, False]
    assert (tmp_path / "d" / "e").is_dir() and oct((tmp_path / "d" / "e").stat().st_mode & 0o777) == "0o750"
    assert os.readlink(tmp_path / "l") == str(tmp_path / "d")
    assert not (tmp_path / "old").exists()
    assert module.run(FakeModule(items))["changed"] is False


def test_a_link_replaces_a_file_in_its_way(tmp_path):
    (tmp_path / "l").write_text("in the way")
    module.run(FakeModule([{"path": str(tmp_path / "l"), "state": "link", "src": "target"}], apply=True))
    assert os.readlink(tmp_path / "l") == "target"


def test_an_item_whose_required_path_is_missing_is_skipped(tmp_path):
    item = with_data(wanted_file(tmp_path / "f", b"x\n", requires=str(tmp_path / ".installed")), b"x\n")
    result = module.run(FakeModule([item], apply=True))
    assert result["changed"] is False and result["results"][0]["skipped"] is True
    assert not (tmp_path / "f").exists()
    (tmp_path / ".installed").touch()
    assert module.run(FakeModule([item], apply=True))["results"][0]["changed"] is True
    assert (tmp_path / "f").read_bytes() == b"x\n"


def test_under_diff_the_current_text_comes_back_for_changed_content(tmp_path):
    path = tmp_path / "f"
    path.write_text("old\n")
    path.chmod(0o640)
    result = module.run(FakeModule([wanted_file(path, b"new\n")], diff=True))
    assert result["results"][0]["before_content"] == "old\n"
    secret = module.run(FakeModule([wanted_file(path, b"new\n", diff=False)], diff=True))
    assert "before_content" not in secret["results"][0]


def test_unknown_item_keys_are_refused():
    with pytest.raises(Failed, match="unknown keys"):
        module.run(FakeModule([{"path": "/x", "colour": "red"}]))


# --- reading the rest of the host's state --------------------------------------------------


def test_packages_installed_are_read_from_dpkg():
    out = "chrony ii \ncurl un \nacl hi \n"
    fake = FakeModule(commands={"dpkg-query": (1, out, "")})
    assert host.packages(fake.run_command, ["chrony", "curl", "acl", "jq"]) == {
        "chrony": True, "curl": False, "acl": True, "jq": False}


def test_services_are_enabled_and_active_from_systemctl():
    calls = []

    def run(argv):
        calls.append(argv)
        return (0 if argv[1] == "is-enabled" else 3), "", ""

    assert host.services(run, ["chrony"]) == {"chrony": {"enabled": True, "active": False}}


def test_sysctl_values_are_read_with_whitespace_runs_as_one_space(tmp_path):
    (tmp_path / "net" / "ipv4").mkdir(parents=True)
    (tmp_path / "net" / "ipv4" / "ip_local_port_range").write_text("10240\t65535\n")
    state = host.sysctl(["net.ipv4.ip_local_port_range", "fs.nope"], proc=str(tmp_path))
    assert state["net.ipv4.ip_local_port_range"]["value"] == "10240 65535"
    assert state["fs.nope"] == {"writable": False, "value": ""}


def test_pid1_open_file_limit_is_read_from_its_limits(tmp_path):
    limits = tmp_path / "limits"
    limits.write_text("Limit                     Soft Limit           Hard Limit           Units\n"
                      "Max open files            1024                 524288               files\n")
    assert host.pid1_nofile_hard(str(limits)) == 524288
    assert host.pid1_nofile_hard(str(tmp_path / "missing")) == -1


def test_the_release_layout_is_read_with_links_and_installed_marks(tmp_path):
    for name in ("1.0.0", "2.0.0"):
        (tmp_path / "releases" / name).mkdir(parents=True)
    (tmp_path / "releases" / "2.0.0" / ".installed").touch()
    (tmp_path / "current").symlink_to("releases/2.0.0")
    (tmp_path / "previous").symlink_to("releases/1.0.0/")
    layout = host.releases(str(tmp_path))
    assert (layout["current"], layout["previous"]) == ("2.0.0", "1.0.0")
    assert [(r["name"], r["installed"]) for r in layout["releases"]] == [("1.0.0", False), ("2.0.0", True)]
    assert host.releases(str(tmp_path / "none")) == {"current": "", "previous": "", "releases": []}


def test_accounts_and_groups_are_read():
    assert host.user("root")["exists"] is True and host.user("root")["home"] == "/root"
    assert host.user("no-such-account-here") == {"exists": False}
    assert host.group("root") == {"exists": True}
    assert host.group("no-such-group-here") == {"exists": False}


def test_read_only_what_is_asked():
    fake = FakeModule(commands={"dpkg-query": (0, "acl ii \n", "")})
    assert set(host.read_host(fake.run_command, {"packages": ["acl"], "users": ["root"]})) == {"packages", "users"}
    assert host.read_host(fake.run_command, {}) == {}


# --- the action: items, diffs and notifications --------------------------------------------


@pytest.mark.parametrize(("item", "problem"), [
    ({"path": "relative"}, "absolute path"),
    ({"path": "/x", "template": "a.j2", "content": "b"}, "exactly one of template, src or content"),
    ({"path": "/x"}, "exactly one of template, src or content"),
    ({"path": "/x", "state": "link"}, "a link needs src"),
    ({"path": "/x", "state": "directory", "content": "b"}, "a directory takes no content"),
    ({"path": "/x", "state": "fifo"}, "state must be one of"),
    ({"path": "/x", "content": "b", "notify": "Restart x"}, "notify must be a list"),
    ({"path": "/x", "content": "b", "colour": "red"}, "unknown keys ['colour']"),
])
def test_wrong_items_are_refused_naming_the_item(item, problem):
    assert problem in action.check_item(item, 3)
    assert "files[3]" in action.check_item(item, 3)


def test_a_good_item_passes():
    assert action.check_item({"path": "/x", "template": "a.j2", "mode": "0644", "notify": ["Reload"]}, 0) is None


def test_the_host_gets_a_checksum_never_the_template_or_its_vars():
    item = {"path": "/x", "template": "a.j2", "vars": {"app": {"env": {"TOKEN": "secret"}}}, "mode": "0644"}
    sent = action.module_item(item, b"rendered")
    assert sent == {"path": "/x", "state": "file", "mode": "0644", "checksum": sha1(b"rendered")}


def test_handlers_of_changed_items_only_each_once():
    results = [
        {"changed": True, "notify": ["Reload systemd", "Reload changed apps"]},
        {"changed": False, "notify": ["Restart journald"]},
        {"changed": True, "notify": ["Reload systemd"]},
        {"changed": True, "notify": []},
    ]
    assert action.notifications(results) == ["Reload systemd", "Reload changed apps"]


def test_a_content_diff_for_text_an_attribute_diff_otherwise():
    item = {"path": "/x", "state": "file", "mode": "0644", "owner": "root"}
    text = action.item_diff(item, {"differences": ["content"], "before_content": "a\n"}, "b\n")
    assert text == {"before_header": "/x", "after_header": "/x", "before": "a\n", "after": "b\n"}
    before = {"state": "file", "mode": "0600", "owner": "root", "group": "adm"}
    attrs = action.item_diff(item, {"differences": ["mode"], "before": before}, "b\n")
    assert attrs["before"] == {"path": "/x", "state": "file", "mode": "0600", "owner": "root"}
    assert attrs["after"] == {"path": "/x", "state": "file", "mode": "0644", "owner": "root"}


def test_a_failed_write_never_returns_the_contents_it_was_sent():
    failed = {"failed": True, "msg": "boom", "invocation": {"module_args": {"files": [{"data": "c2VjcmV0"}]}}}
    assert action.failure(failed) == {"failed": True, "msg": "boom"}


class FakeTask:
    def __init__(self, args, check_mode=False, diff=False):
        self.args = args
        self.check_mode = check_mode
        self.diff = diff


def run_action(monkeypatch, tmp_path, files, check_mode=False, diff=False, read=None):
    """The action's run() with the host side run in-process on tmp_path."""
    plugin = action.ActionModule.__new__(action.ActionModule)
    plugin._task = FakeTask({"files": files, "read": read or {}}, check_mode, diff)
    calls = []

    def execute(name, module_args, task_vars):
        calls.append(module_args)
        fake = FakeModule(module_args["files"], module_args.get("read"), module_args["apply"], check_mode, diff)
        return module.run(fake)

    monkeypatch.setattr(action.ActionBase, "run", lambda self, tmp=None, task_vars=None: {})
    monkeypatch.setattr(plugin, "_execute_module", execute, raising=False)
    monkeypatch.setattr(plugin, "_remove_tmp_path", lambda path: None, raising=False)
    monkeypatch.setattr(plugin, "_render", lambda item, task_vars: f"rendered {item['template']}\n".encode(),
                        raising=False)
    plugin._connection = type("C", (), {"_shell": type("S", (), {"tmpdir": None})()})()
    return plugin.run(task_vars={}), calls


def test_one_call_when_nothing_differs_two_when_something_does(monkeypatch, tmp_path):
    files = [
        {"path": str(tmp_path / "a.conf"), "template": "a.j2", "mode": "0644", "notify": ["Restart a"]},
        {"path": str(tmp_path / "b.conf"), "content": "b\n", "mode": "0644", "notify": ["Restart b"]},
    ]
    (tmp_path / "b.conf").write_text("b\n")
    (tmp_path / "b.conf").chmod(0o644)
    result, calls = run_action(monkeypatch, tmp_path, files)
    assert len(calls) == 2
    assert [c["path"] for c in calls[1]["files"]] == [str(tmp_path / "a.conf")]  # only what differs is sent
    assert [r["changed"] for r in result["results"]] == [True, False]
    assert result["_ansible_notify"] == ["Restart a"]
    assert (tmp_path / "a.conf").read_text() == "rendered a.j2\n"

    again, calls = run_action(monkeypatch, tmp_path, files)
    assert len(calls) == 1 and again["changed"] is False and "_ansible_notify" not in again


def test_check_mode_compares_reports_and_notifies_but_sends_nothing(monkeypatch, tmp_path):
    files = [{"path": str(tmp_path / "a.conf"), "template": "a.j2", "mode": "0644", "notify": ["Restart a"]}]
    result, calls = run_action(monkeypatch, tmp_path, files, check_mode=True, diff=True)
    assert len(calls) == 1 and result["changed"] is True and result["_ansible_notify"] == ["Restart a"]
    assert not (tmp_path / "a.conf").exists()
    assert result["diff"][0]["after"]["state"] == "file"


def test_a_secret_item_shows_no_diff(monkeypatch, tmp_path):
    (tmp_path / "app.env").write_text("TOKEN=old\n")
    files = [{"path": str(tmp_path / "app.env"), "content": "TOKEN=new\n", "diff": False}]
    result, _ = run_action(monkeypatch, tmp_path, files, diff=True)
    assert result["changed"] is True and result["diff"] == []
    assert "TOKEN" not in repr(result)


def test_read_results_come_back_beside_the_items(monkeypatch, tmp_path):
    result, calls = run_action(monkeypatch, tmp_path, [], read={"releases": str(tmp_path)})
    assert len(calls) == 1 and result["releases"]["current"] == "" and result["results"] == []


def test_a_wrong_item_fails_before_any_call(monkeypatch, tmp_path):
    with pytest.raises(AnsibleActionFail, match="files\\[0\\]"):
        run_action(monkeypatch, tmp_path, [{"path": "/x"}])


# --- the real thing, on this machine ----------------------------------------------------------

TEMPLATE = """{{ ansible_managed | comment }}
[Unit]
Description={{ app.name }} ({{ inventory_hostname }})
{% for key, value in app.env.items() %}
Environment={{ key }}={{ value }}
{% endfor %}
"""

PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  roles: [r]
"""

TASKS = """
- name: Write with fleet_files
  ec2_fleet.fleet.fleet_files:
    files:
      - {path: "{{ out }}/a", template: unit.j2, mode: "0640", vars: {app: "{{ the_app }}"}, notify: [Note a]}
      - {path: "{{ out }}/d", state: directory, mode: "0750"}
  register: written
- name: Write the same with ansible.builtin.template
  ansible.builtin.template: {src: unit.j2, dest: "{{ out }}/b", mode: "0640"}
  vars: {app: "{{ the_app }}"}
- name: Show what fleet_files reported
  ansible.builtin.debug:
    msg: "FLEET_FILES {{ written.results | map(attribute='changed') | list | to_json }}"
"""

HANDLERS = """
- name: Note a
  ansible.builtin.debug: {msg: HANDLER_A_RAN}
"""


def test_a_template_is_rendered_as_ansible_builtin_template_renders_it(tmp_path):
    root = Path(__file__).resolve().parents[2]
    role = tmp_path / "roles" / "r"
    for folder, name, text in (("templates", "unit.j2", TEMPLATE), ("tasks", "main.yml", TASKS),
                               ("handlers", "main.yml", HANDLERS)):
        (role / folder).mkdir(parents=True, exist_ok=True)
        (role / folder / name).write_text(text)
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "ansible.cfg").write_text(f"[defaults]\ncollections_path = {root / 'collections'}\n"
                                          f"roles_path = {tmp_path / 'roles'}\n")
    out = tmp_path / "out"
    out.mkdir()
    extra = json.dumps({"out": str(out), "the_app": {"name": "orders-api", "env": {"A": "1", "B": "two"}}})
    env = {**os.environ, "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    playbook = [str(Path(sys.executable).with_name("ansible-playbook")), "-e", extra, str(tmp_path / "play.yml")]

    def run() -> tuple[list[bool], str]:
        done = subprocess.run(playbook, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return json.loads(re.search(r"FLEET_FILES (\[.*?\])", done.stdout).group(1)), done.stdout

    first, output = run()
    assert first == [True, True] and "HANDLER_A_RAN" in output
    assert (out / "a").read_bytes() == (out / "b").read_bytes()
    assert "Environment=B=two\n" in (out / "a").read_text()
    again, output = run()
    assert again == [False, False] and "HANDLER_A_RAN" not in output
