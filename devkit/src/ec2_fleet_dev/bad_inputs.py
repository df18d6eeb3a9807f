"""A pytest plugin (`pytest -p ec2_fleet_dev.bad_inputs`) that records every refusal the tests see, for
tools/bad_inputs_table.py: each ansible-playbook run the tests make (its playbook or the roles of a generated
play, its extra vars, its exit code, the "msg" of each failed task and the changed count of its recap) and
every fail_json of a module the tests run in-process, one JSON line each in the file EC2_FLEET_BAD_INPUTS_LOG
names. Runs that share one pytest node (cases run in a thread pool by a fixture) name their case with the
environment variable EC2_FLEET_TEST_CASE. Without EC2_FLEET_BAD_INPUTS_LOG it does nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from ec2_fleet_dev.plays import ROOT, PlayResult, failure_messages

LOG_ENV = "EC2_FLEET_BAD_INPUTS_LOG"
CASE_ENV = "EC2_FLEET_TEST_CASE"

_lock = threading.Lock()
_current: dict[str, Any] = {}


def _write(record: dict[str, Any]) -> None:
    record = {**record, "nodeid": _current.get("nodeid", ""), "params": _current.get("params", {})}
    with _lock, open(os.environ[LOG_ENV], "a", encoding="utf-8") as log:
        log.write(json.dumps(record, default=repr) + "\n")


def _messages(output: str) -> list[str]:
    """The msg of every failed task, else the last [ERROR] line (a failure before any task runs)."""
    errors = [line for line in output.splitlines() if line.startswith(("[ERROR]", "ERROR!"))]
    return failure_messages(output) or errors[-1:]


def _changed(output: str) -> int | None:
    recap = PlayResult(0, output).recap()
    return sum(counts.get("changed", 0) for counts in recap.values()) if recap else None


def _target(args: list[str]) -> tuple[str, dict[str, Any]]:
    """The playbook (or the roles of a generated play) and the extra vars of an ansible-playbook command."""
    extra: dict[str, Any] = {}
    playbook = ""
    skip = False
    for i, arg in enumerate(args[1:], start=1):
        if skip:
            skip = False
            continue
        if arg in ("-i", "--inventory", "-l", "--limit", "-t", "--tags"):
            skip = True
        elif arg in ("-e", "--extra-vars"):
            skip = True
            with contextlib.suppress(json.JSONDecodeError, IndexError):
                extra.update(json.loads(args[i + 1]))
        elif not arg.startswith("-") and not playbook:
            playbook = arg
    path = Path(playbook)
    if path.is_file() and ROOT not in path.resolve().parents:
        try:
            roles = [r["role"] for play in json.loads(path.read_text()) for r in play.get("roles", [])]
            return "role " + ", ".join(roles), extra
        except (ValueError, KeyError, TypeError):
            pass
    return path.name, extra


def pytest_configure(config: Any) -> None:
    if not os.environ.get(LOG_ENV):
        return
    real_run = subprocess.run

    def run(args: Any, *rest: Any, **kwargs: Any) -> subprocess.CompletedProcess:
        result = real_run(args, *rest, **kwargs)
        if isinstance(args, list) and args and str(args[0]).endswith("ansible-playbook"):
            output = (result.stdout or "") + (result.stderr or "") if kwargs.get("text") else ""
            target, extra = _target([str(a) for a in args])
            _write(
                {
                    "kind": "playbook",
                    "case": (kwargs.get("env") or {}).get(CASE_ENV, ""),
                    "target": target,
                    "extra": extra,
                    "rc": result.returncode,
                    "messages": _messages(output),
                    "changed": _changed(output),
                }
            )
        return result

    subprocess.run = run

    from ansible.module_utils.basic import AnsibleModule

    real_fail = AnsibleModule.fail_json

    def fail_json(self: Any, msg: str, **kwargs: Any) -> None:
        _write({"kind": "module", "case": "", "target": "", "extra": {}, "rc": 1, "messages": [msg], "changed": None})
        real_fail(self, msg, **kwargs)

    AnsibleModule.fail_json = fail_json


def pytest_runtest_logreport(report: Any) -> None:
    if os.environ.get(LOG_ENV) and report.failed:
        with _lock, open(os.environ[LOG_ENV], "a", encoding="utf-8") as log:
            log.write(json.dumps({"kind": "failed test", "nodeid": report.nodeid}) + "\n")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: Any) -> None:
    callspec = getattr(item, "callspec", None)
    _current.update(nodeid=item.nodeid, params=dict(callspec.params) if callspec else {})
