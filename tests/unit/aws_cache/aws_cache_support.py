"""Constants and helpers shared by the aws_cache tests (fixtures are in conftest.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ROLE = ROOT / "roles" / "aws_cache"
REGION = "us-east-1"
CREDENTIALS = {"access_key": "testing", "secret_key": "testing"}


def _load_top_conftest():
    """tests/conftest.py by path: two files named conftest.py make `import conftest` ambiguous."""
    spec = importlib.util.spec_from_file_location("ec2_fleet_top_conftest", ROOT / "tests" / "conftest.py")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = loaded
    spec.loader.exec_module(loaded)
    return loaded


_top = _load_top_conftest()
PlayResult = _top.PlayResult
run_playbook = _top.run_playbook
assert_rejected = _top.assert_rejected
