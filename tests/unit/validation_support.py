"""What the input-rule unit tests share: a role's defaults and the inputs its validate.yml passes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def role_defaults(role: str) -> dict[str, Any]:
    """The role's defaults/main.yml."""
    return yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())


def task_inputs(role: str) -> list[str]:
    """The variables the role's validate.yml hands its filter (``name: "{{ name }}"`` lines)."""
    task = (ROOT / "roles" / role / "tasks" / "validate.yml").read_text()
    return re.findall(rf'^ +({role}_[a-z0-9_]+): "{{{{ \1 }}}}"$', task, re.MULTILINE)


def good_inputs(role: str, **values: Any) -> dict[str, Any]:
    """The inputs validate.yml passes, from the role's defaults with the given values over them."""
    defaults = role_defaults(role) | values
    names = task_inputs(role)
    assert names, f"roles/{role}/tasks/validate.yml passes no inputs"
    assert set(names) <= set(defaults), f"inputs without a default: {set(names) - set(defaults)}"
    return {name: defaults[name] for name in names}
