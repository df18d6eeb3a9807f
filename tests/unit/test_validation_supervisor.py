"""The supervisor role's input rules (plugins/filter/supervisor_input_errors.py), one case per rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.ec2_fleet.fleet.plugins.filter.supervisor_apps_merged import supervisor_apps_merged
from ansible_collections.ec2_fleet.fleet.plugins.filter.supervisor_input_errors import supervisor_input_errors

ROOT = Path(__file__).resolve().parents[2]
VARS = yaml.safe_load((ROOT / "roles" / "supervisor" / "vars" / "main.yml").read_text())
GOOD = {"name": "web", "command": "/usr/bin/python3 -m http.server", "port": 8080}


def errors(env_name: str = "", **changes: Any) -> list[str]:
    apps = supervisor_apps_merged(
        [{**GOOD, **changes}], VARS["__supervisor_app_defaults"], VARS["__supervisor_health_defaults"], env_name
    )
    return supervisor_input_errors(apps)


def test_a_good_app_has_no_errors() -> None:
    assert errors() == []
    assert errors(instances=4, max_memory_restart="512000K", log_file="/var/log/web.log",
                  writable_paths=["/srv/data"], env={"LOG_LEVEL": "info"}) == []
    assert errors(port=0, socket_activation=False, health={"enabled": False}) == []


def test_the_merge_keeps_the_defaults_and_applies_the_named_env_override() -> None:
    app = {**GOOD, "env": {"A": "1", "B": "1"}, "env_overrides": {"prod": {"B": "2"}}, "health": {"path": "/up"}}
    (merged,) = supervisor_apps_merged(
        [app], VARS["__supervisor_app_defaults"], VARS["__supervisor_health_defaults"], "prod"
    )
    assert merged["env"] == {"A": "1", "B": "2"}
    assert merged["health"] == {**VARS["__supervisor_health_defaults"], "path": "/up"}
    assert merged["user"] == "app"
    assert merged["instances"] == 1
    (plain,) = supervisor_apps_merged([app], VARS["__supervisor_app_defaults"], VARS["__supervisor_health_defaults"])
    assert plain["env"] == {"A": "1", "B": "1"}


P = "supervisor_apps[0] (web)"

CASES = [
    ({"name": "Web"}, "supervisor_apps[0] (Web).name must be lowercase letters, digits and dashes"),
    ({"name": "w" * 41}, ".name must be lowercase letters"),
    ({"command": "python3 app.py"}, f"{P}.command must start with an absolute program path, got 'python3 app.py'"),
    ({"user": "root"}, f"{P}.user must be an unprivileged user, not root"),
    ({"user": "0"}, f"{P}.user must be an unprivileged user, not root"),
    ({"instances": 0, "socket_activation": True}, f"{P}.instances must be between 1 and 64, got 0"),
    ({"instances": 65}, f"{P}.instances must be between 1 and 64, got 65"),
    ({"port": 70000}, f"{P}.port must be between 1 and 65535 (0 for none), got 70000"),
    ({"port": -1}, f"{P}.port must be between 1 and 65535 (0 for none), got -1"),
    ({"port": 0, "health": {"enabled": False}}, f"{P}.port is required with socket_activation: true"),
    ({"instances": 2, "socket_activation": False}, f"{P}.instances > 1 needs socket_activation: true"),
    ({"port": 0, "socket_activation": False}, f"{P}.health.enabled needs a port"),
    ({"health": {"path": "health"}}, f"{P}.health.path must start with '/', got 'health'"),
    ({"health": {"interval": 0}}, f"{P}.health.interval must be at least 1, got 0"),
    ({"health": {"timeout": 0}}, f"{P}.health.timeout must be at least 1, got 0"),
    ({"health": {"failures": 0}}, f"{P}.health.failures must be at least 1, got 0"),
    ({"health": {"timeout": 11}}, f"{P}.health.timeout (11) must not exceed health.interval (10)"),
    ({"kill_timeout": 0}, f"{P}.kill_timeout must be at least 1, got 0"),
    ({"max_restarts": 0}, f"{P}.max_restarts must be at least 1, got 0"),
    ({"restart_window": 0}, f"{P}.restart_window must be at least 1, got 0"),
    ({"exp_backoff_max": 0}, f"{P}.exp_backoff_max must be at least 1, got 0"),
    ({"restart_delay": -1}, f"{P}.restart_delay must not be negative, got -1"),
    ({"backoff_reset_after": -1}, f"{P}.backoff_reset_after must not be negative, got -1"),
    ({"restart_delay": 61}, f"{P}.restart_delay must not exceed exp_backoff_max"),
    ({"max_memory_restart": "300MB"}, f"{P}.max_memory_restart must look like 300M, 1G or 512000K, got '300MB'"),
    ({"max_memory_restart": "0M"}, f"{P}.max_memory_restart must look like"),
    ({"log_file": "web.log"}, f"{P}.log_file must be an absolute path"),
    ({"writable_paths": ["/srv", "data"]}, f"{P}.writable_paths entries must be absolute paths, got 'data'"),
    ({"env": {"BAD-KEY": "1"}}, f"{P}.env key 'BAD-KEY' is not a valid environment variable name"),
]


@pytest.mark.parametrize(("changes", "expected"), CASES, ids=[e.split(" must")[0][len(P):] or e for _, e in CASES])
def test_each_rule_names_the_app_and_the_field(changes: dict, expected: str) -> None:
    found = errors(**changes)
    assert any(expected in e for e in found), found


def test_an_env_override_is_checked_after_the_merge() -> None:
    found = errors(env_name="prod", env_overrides={"prod": {"1BAD": "x"}})
    assert found == [f"{P}.env key '1BAD' is not a valid environment variable name"]


def test_numbers_given_as_text_are_read_as_numbers() -> None:
    # `-e` passes every value as text; the spec accepts "8080" for an int.
    assert errors(port="8080", instances="2") == []
    assert errors(instances="65") == [f"{P}.instances must be between 1 and 64, got 65"]


def test_a_name_used_twice_is_named_once_and_every_problem_is_reported() -> None:
    defaults = (VARS["__supervisor_app_defaults"], VARS["__supervisor_health_defaults"])
    apps = supervisor_apps_merged([GOOD, GOOD, {**GOOD, "name": "api", "port": 70000, "user": "root"}], *defaults)
    found = supervisor_input_errors(apps)
    assert found[0] == "supervisor_apps: the name 'web' is used more than once"
    assert sum("used more than once" in e for e in found) == 1
    assert [e.split(".")[0] for e in found[1:]] == ["supervisor_apps[2] (api)"] * 2
