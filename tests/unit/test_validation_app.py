"""The app role's input rules (plugins/filter/app_input_errors.py), one case per rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.ec2_fleet.fleet.plugins.filter.app_input_errors import app_input_errors

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "app"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
VARS = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
INPUTS = [
    "app_name", "app_version", "app_rollback_to", "app_keep_releases", "app_root", "app_user", "app_instances",
    "app_port", "app_health_path", "app_ready_path", "app_activation_timeout", "app_log_lines",
    "app_python_interpreter", "app_node_binary", "app_env", "app_release_env", "app_database_url",
    "app_redis_url", "app_supervisor_options", "app_bake", "app_stage_only",
]  # fmt: skip


def errors(rolling_back: bool = False, **changes: Any) -> list[str]:
    inputs = {name: DEFAULTS[name] for name in INPUTS} | {"app_version": "1.0.0"} | changes
    return app_input_errors(
        inputs,
        rolling_back,
        VARS["__app_version_pattern"],
        VARS["__app_reserved_env"],
        VARS["__app_owned_supervisor_keys"],
    )


def test_the_defaults_with_a_version_have_no_errors() -> None:
    assert errors() == []
    assert errors(app_root="/srv/orders", app_database_url="postgresql://u:p@db/orders",
                  app_redis_url="rediss://cache:6380/0", app_env={"LOG_LEVEL": "info"},
                  app_supervisor_options={"max_memory_restart": "300M"}) == []  # fmt: skip


def test_every_input_the_task_passes_is_a_role_default() -> None:
    task = (ROLE / "tasks" / "validate.yml").read_text()
    assert all(f"{name}: \"{{{{ {name} }}}}\"" in task for name in INPUTS)


def test_a_bake_with_nothing_environment_specific_has_no_errors() -> None:
    assert errors(app_bake=True) == []
    assert errors(rolling_back=True, app_version="", app_bake=True) == [
        "app_bake bakes app_version into an image: it cannot be combined with app_rollback, app_rollback_to or "
        "app_stage_only"
    ]


def test_a_rollback_needs_no_version() -> None:
    assert errors(rolling_back=True, app_version="") == []
    assert errors(rolling_back="True", app_version="", app_rollback_to="1.0.0") == []


CASES = [
    ({"app_name": "Orders"}, "app_name must be lowercase letters, digits and dashes, starting with a letter "
     "(at most 40), got 'Orders'"),
    ({"app_name": "a" * 41}, "app_name must be lowercase letters"),
    ({"app_version": ""}, "app_version is required (the release to deploy), unless app_rollback or "
     "app_rollback_to is set"),
    ({"app_version": "1.0/../../etc"}, "app_version must match ^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$ (letters, "
     "digits, '.', '_', '-'), got '1.0/../../etc'"),
    ({"app_version": "1" * 65}, "app_version must match"),
    ({"app_rollback_to": "-1"}, "app_rollback_to must match ^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$, got '-1'"),
    ({"app_keep_releases": 1}, "app_keep_releases must be at least 2 (the active release and the previous one), "
     "got 1"),
    ({"app_root": "srv/orders"}, "app_root must be an absolute path of the app's own folder (such as "
     "/srv/orders-api), got 'srv/orders'"),
    ({"app_root": "/srv/"}, "app_root must be an absolute path of the app's own folder"),
    ({"app_root": "/"}, "app_root must be an absolute path of the app's own folder"),
    ({"app_user": "root"}, "app_user must be an unprivileged user, not root"),
    ({"app_user": 0}, "app_user must be an unprivileged user, not root"),
    ({"app_instances": 0}, "app_instances must be between 1 and 64, got 0"),
    ({"app_instances": 65}, "app_instances must be between 1 and 64, got 65"),
    ({"app_port": 0}, "app_port must be between 1 and 65535, got 0"),
    ({"app_port": 70000}, "app_port must be between 1 and 65535, got 70000"),
    ({"app_health_path": "health"}, "app_health_path must start with '/', got 'health'"),
    ({"app_ready_path": "ready"}, "app_ready_path must start with '/', got 'ready'"),
    ({"app_activation_timeout": 0}, "app_activation_timeout must be at least 1, got 0"),
    ({"app_log_lines": 0}, "app_log_lines must be at least 1, got 0"),
    ({"app_python_interpreter": "python3"}, "app_python_interpreter must be an absolute path, got 'python3'"),
    ({"app_node_binary": "node"}, "app_node_binary must be an absolute path, got 'node'"),
    ({"app_env": {"BAD-KEY": "1"}}, "app_env key 'BAD-KEY' is not a valid environment variable name"),
    ({"app_release_env": {"1X": "1"}}, "app_release_env key '1X' is not a valid environment variable name"),
    ({"app_env": {"DATABASE_URL": "x"}}, "app_env must not set DATABASE_URL (set app_version, app_database_url "
     "or app_redis_url instead)"),
    ({"app_env": {"APP_VERSION": "x"}}, "app_env must not set APP_VERSION"),
    ({"app_database_url": "mysql://db/x"}, "app_database_url must be a postgresql:// URL with a host (value not "
     "shown)"),
    ({"app_redis_url": "redis:///0"}, "app_redis_url must be a redis:// or rediss:// URL with a host (value not "
     "shown)"),
    ({"app_bake": True, "app_stage_only": True}, "app_bake bakes app_version into an image: it cannot be combined "
     "with app_rollback, app_rollback_to or app_stage_only"),
    ({"app_bake": True, "app_database_url": "postgresql://u:p@db/orders", "app_env": {"A": "1"}},
     "app_bake: nothing environment-specific is baked into an image, so app_database_url, app_env must be empty "
     "(the instance reads its environment's values at boot)"),
    ({"app_supervisor_options": {"command": "/bin/true", "port": 1, "kill_timeout": 5}},
     "app_supervisor_options must not set command, port (the role sets them from its own app_* inputs)"),
]


@pytest.mark.parametrize(("changes", "expected"), CASES, ids=[e[:50] for _, e in CASES])
def test_each_rule_names_the_variable(changes: dict, expected: str) -> None:
    found = errors(**changes)
    assert any(expected in e for e in found), found


@pytest.mark.parametrize("variable", ["app_database_url", "app_redis_url"])
def test_a_bad_secret_url_is_not_shown(variable: str) -> None:
    found = errors(**{variable: "mysql://orders:s3cr3t@db.internal/orders"})
    assert len(found) == 1
    assert "s3cr3t" not in found[0]


def test_numbers_given_as_text_are_read_as_numbers_and_every_problem_is_reported() -> None:
    assert errors(app_port="8080", app_instances="4", app_keep_releases="3") == []
    found = errors(app_port="80000", app_user="root", app_log_lines=0)
    assert [e.split(" ")[0] for e in found] == ["app_user", "app_port", "app_log_lines"]
