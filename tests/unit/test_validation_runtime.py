"""The runtime role's input rules (plugins/filter/runtime_input_errors.py), one case per rule."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.ec2_fleet.fleet.plugins.filter.runtime_input_errors import runtime_input_errors

ROLE = Path(__file__).resolve().parents[2] / "roles" / "runtime"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()) | {"runtime_kind": "node"}
TASK = (ROLE / "tasks" / "validate.yml").read_text()
INPUTS = re.findall(r"^      (runtime_[a-z0-9_]+): ", TASK, re.MULTILINE)


def errors(**changes: Any) -> list[str]:
    return runtime_input_errors({name: DEFAULTS[name] for name in INPUTS} | changes)


def test_the_task_passes_the_role_defaults_and_they_have_no_errors() -> None:
    assert len(INPUTS) == 9
    assert errors() == []
    assert errors(runtime_kind="python", runtime_python_min_version="3.12.1", runtime_node_min_version="20") == []
    assert errors(runtime_nodesource_key_url="file:///etc/keys/nodesource.gpg", runtime_node_major="24") == []


CASES = [
    ({"runtime_python_min_version": "3"}, "runtime_python_min_version must be MAJOR.MINOR[.PATCH] and "
     "runtime_node_min_version MAJOR[.MINOR[.PATCH]] (digits only); got runtime_python_min_version=3, "
     "runtime_node_min_version=18.0"),
    ({"runtime_node_min_version": "v18"}, "runtime_node_min_version=v18"),
    ({"runtime_node_major": 21}, "runtime_node_major must be an even (LTS) Node.js major release >= 18; got 21"),
    ({"runtime_node_major": 16}, "runtime_node_major must be an even (LTS) Node.js major release >= 18; got 16"),
    ({"runtime_node_major": 100}, "runtime_node_major must be an even (LTS) Node.js major release"),
    ({"runtime_nodesource_url": "deb.nodesource.com"}, "runtime_nodesource_url must be an http(s) URL and "
     "runtime_nodesource_key_url an http(s) or file URL; got runtime_nodesource_url=deb.nodesource.com, "
     "runtime_nodesource_key_url=https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key"),
    ({"runtime_nodesource_key_url": "ftp://keys/x.gpg"}, "runtime_nodesource_key_url=ftp://keys/x.gpg"),
    ({"runtime_apt_lock_timeout": -1}, "runtime_apt_lock_timeout must be >= 0 and runtime_cloud_init_timeout "
     ">= 1 seconds; got runtime_apt_lock_timeout=-1, runtime_cloud_init_timeout=600"),
    ({"runtime_cloud_init_timeout": 0}, "runtime_cloud_init_timeout=0"),
    ({"runtime_node_source": "nodesource", "runtime_node_min_version": "24.1"}, "runtime_node_min_version 24.1 "
     "can never be met by NodeSource's runtime_node_major 22"),
]


@pytest.mark.parametrize(("changes", "expected"), CASES, ids=[f"{c}"[:60] for c, _ in CASES])
def test_each_rule_names_the_variable(changes: dict, expected: str) -> None:
    found = errors(**changes)
    assert len(found) == 1, found
    assert expected in found[0]


def test_the_unreachable_minimum_is_checked_only_for_nodesource_node_with_good_inputs() -> None:
    too_new = {"runtime_node_min_version": "24.1"}
    assert errors(runtime_node_source="distro", **too_new) == []
    assert errors(runtime_kind="python", runtime_node_source="nodesource", **too_new) == []
    found = errors(runtime_node_source="nodesource", runtime_apt_lock_timeout=-1, **too_new)
    assert len(found) == 1
    assert found[0].startswith("runtime_apt_lock_timeout")
