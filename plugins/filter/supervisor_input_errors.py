# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""What is wrong with the supervisor role's apps, once merged over their defaults (supervisor_apps_merged)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.ec2_fleet.fleet.plugins.plugin_utils.input_checks import as_bool, as_int, matches

NAME_RE = r"^[a-z][a-z0-9-]{0,39}$"
MEMORY_RE = r"^[1-9][0-9]*[KMG]?$"
ENV_KEY_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"


def _app_errors(index: int, app: Mapping[str, Any]) -> list[str]:
    """What is wrong with one merged app, each message prefixed with where the app is."""
    p = f"supervisor_apps[{index}] ({app.get('name')})"
    errors = []
    health = app.get("health") or {}
    port = as_int(app.get("port"))
    instances = as_int(app.get("instances"))
    socket_activation = as_bool(app.get("socket_activation"))
    if not matches(NAME_RE, app.get("name")):
        errors.append(f"{p}.name must be lowercase letters, digits and dashes, starting with a letter (at most 40)")
    if not str(app.get("command") or "").strip().startswith("/"):
        errors.append(f"{p}.command must start with an absolute program path, got '{app.get('command')}'")
    if str(app.get("user")) in ("root", "0"):
        errors.append(f"{p}.user must be an unprivileged user, not root")
    if instances is None or not 1 <= instances <= 64:
        errors.append(f"{p}.instances must be between 1 and 64, got {app.get('instances')}")
    if port is None or not 0 <= port <= 65535:
        errors.append(f"{p}.port must be between 1 and 65535 (0 for none), got {app.get('port')}")
    if socket_activation and port == 0:
        errors.append(
            f"{p}.port is required with socket_activation: true "
            "(set socket_activation: false for an app without a port)"
        )
    if instances is not None and instances > 1 and not socket_activation:
        errors.append(f"{p}.instances > 1 needs socket_activation: true (instances share the socket systemd holds)")
    if as_bool(health.get("enabled")) and port == 0:
        errors.append(f"{p}.health.enabled needs a port (set health: {{enabled: false}} for an app without one)")
    if not str(health.get("path") or "").startswith("/"):
        errors.append(f"{p}.health.path must start with '/', got '{health.get('path')}'")
    for key in ("interval", "timeout", "failures"):
        if (as_int(health.get(key)) or 0) < 1:
            errors.append(f"{p}.health.{key} must be at least 1, got {health.get(key)}")
    interval, timeout = as_int(health.get("interval")), as_int(health.get("timeout"))
    if interval is not None and timeout is not None and timeout > interval:
        errors.append(f"{p}.health.timeout ({timeout}) must not exceed health.interval ({interval})")
    for key in ("kill_timeout", "max_restarts", "restart_window", "exp_backoff_max"):
        if (as_int(app.get(key)) or 0) < 1:
            errors.append(f"{p}.{key} must be at least 1, got {app.get(key)}")
    for key in ("restart_delay", "backoff_reset_after"):
        if (as_int(app.get(key)) or 0) < 0:
            errors.append(f"{p}.{key} must not be negative, got {app.get(key)}")
    delay, backoff_max = as_int(app.get("restart_delay")), as_int(app.get("exp_backoff_max"))
    if delay is not None and backoff_max is not None and delay > backoff_max:
        errors.append(f"{p}.restart_delay must not exceed exp_backoff_max")
    memory = app.get("max_memory_restart")
    if memory and not matches(MEMORY_RE, str(memory)):
        errors.append(f"{p}.max_memory_restart must look like 300M, 1G or 512000K, got '{memory}'")
    if app.get("log_file") and not str(app.get("log_file")).startswith("/"):
        errors.append(f"{p}.log_file must be an absolute path")
    for path in app.get("writable_paths") or []:
        if not str(path).startswith("/"):
            errors.append(f"{p}.writable_paths entries must be absolute paths, got '{path}'")
    for key in app.get("env") or {}:
        if not matches(ENV_KEY_RE, key):
            errors.append(f"{p}.env key '{key}' is not a valid environment variable name")
    return errors


def supervisor_input_errors(apps: list[Mapping[str, Any]]) -> list[str]:
    """What is wrong with the apps merged over their defaults (supervisor_apps_merged): names used
    twice, then every app's formats, ranges and the rules between its fields."""
    errors = []
    names = [app.get("name") for app in apps]
    for name in dict.fromkeys(names):
        if names.count(name) > 1:
            errors.append(f"supervisor_apps: the name '{name}' is used more than once")
    for index, app in enumerate(apps):
        errors.extend(_app_errors(index, app))
    return errors


class FilterModule:
    """Filters: supervisor_input_errors."""

    def filters(self) -> dict:
        return {"supervisor_input_errors": supervisor_input_errors}
