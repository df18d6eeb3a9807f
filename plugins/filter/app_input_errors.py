# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""What is wrong with the app role's inputs (formats, ranges and the rules between them)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.ec2_fleet.fleet.plugins.plugin_utils.input_checks import as_bool, as_int, matches

NAME_RE = r"^[a-z][a-z0-9-]{0,39}$"
ENV_KEY_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"
DATABASE_URL_RE = r"^postgres(ql)?://[^/?#]+"
REDIS_URL_RE = r"^rediss?://[^/?#]+"
# Folders that hold many apps: app_root must be an app's own folder, not one of these.
SHARED_ROOTS = ("", "/usr", "/etc", "/var", "/srv", "/opt", "/home")


def app_input_errors(
    inputs: Mapping[str, Any],
    rolling_back: Any,
    version_pattern: str,
    reserved_env: Iterable[str],
    owned_supervisor_keys: Iterable[str],
) -> list[str]:
    """Every problem with the app_* inputs, each message naming the variable (never a secret's value).

    inputs maps the app_* variable names to their values; rolling_back says whether this run rolls
    back (then app_version may be empty); version_pattern is what a release name must match;
    reserved_env are the environment keys the role sets itself; owned_supervisor_keys the keys of
    the supervisor's app entry that come from app_* inputs.
    """
    e = []
    name = inputs["app_name"]
    version = str(inputs["app_version"] or "")
    rollback_to = str(inputs["app_rollback_to"] or "")
    if not matches(NAME_RE, name):
        e.append(
            "app_name must be lowercase letters, digits and dashes, starting with a letter (at most 40), "
            f"got '{name}'"
        )
    if not as_bool(rolling_back) and not version:
        e.append("app_version is required (the release to deploy), unless app_rollback or app_rollback_to is set")
    elif version and not matches(version_pattern, version):
        e.append(f"app_version must match {version_pattern} (letters, digits, '.', '_', '-'), got '{version}'")
    if rollback_to and not matches(version_pattern, rollback_to):
        e.append(f"app_rollback_to must match {version_pattern}, got '{rollback_to}'")
    if as_bool(inputs.get("app_bake")):
        if as_bool(rolling_back) or as_bool(inputs.get("app_stage_only")):
            e.append("app_bake bakes app_version into an image: it cannot be combined with app_rollback, "
                     "app_rollback_to or app_stage_only")
        baked = [k for k in ("app_database_url", "app_redis_url", "app_env") if inputs.get(k)]
        if baked:
            e.append(f"app_bake: nothing environment-specific is baked into an image, so {', '.join(baked)} must be "
                     "empty (the instance reads its environment's values at boot)")
    if (as_int(inputs["app_keep_releases"]) or 0) < 2:
        e.append(
            "app_keep_releases must be at least 2 (the active release and the previous one), "
            f"got {inputs['app_keep_releases']}"
        )
    root = str(inputs["app_root"] or "")
    if root and (not root.startswith("/") or root.rstrip("/") in SHARED_ROOTS):
        e.append(f"app_root must be an absolute path of the app's own folder (such as /srv/{name}), got '{root}'")
    if str(inputs["app_user"]) in ("root", "0"):
        e.append("app_user must be an unprivileged user, not root")
    instances = as_int(inputs["app_instances"])
    if instances is None or not 1 <= instances <= 64:
        e.append(f"app_instances must be between 1 and 64, got {inputs['app_instances']}")
    port = as_int(inputs["app_port"])
    if port is None or not 1 <= port <= 65535:
        e.append(f"app_port must be between 1 and 65535, got {inputs['app_port']}")
    for key in ("app_health_path", "app_ready_path"):
        if not str(inputs[key]).startswith("/"):
            e.append(f"{key} must start with '/', got '{inputs[key]}'")
    for key in ("app_activation_timeout", "app_log_lines"):
        if (as_int(inputs[key]) or 0) < 1:
            e.append(f"{key} must be at least 1, got {inputs[key]}")
    for key in ("app_python_interpreter", "app_node_binary"):
        if not str(inputs[key]).startswith("/"):
            e.append(f"{key} must be an absolute path, got '{inputs[key]}'")
    for key in ("app_env", "app_release_env"):
        for env_key in inputs[key] or {}:
            if not matches(ENV_KEY_RE, env_key):
                e.append(f"{key} key '{env_key}' is not a valid environment variable name")
    reserved = set(reserved_env)
    for env_key in inputs["app_env"] or {}:
        if env_key in reserved:
            e.append(f"app_env must not set {env_key} (set app_version, app_database_url or app_redis_url instead)")
    database_url = str(inputs["app_database_url"] or "")
    if database_url and not matches(DATABASE_URL_RE, database_url):
        e.append("app_database_url must be a postgresql:// URL with a host (value not shown)")
    redis_url = str(inputs["app_redis_url"] or "")
    if redis_url and not matches(REDIS_URL_RE, redis_url):
        e.append("app_redis_url must be a redis:// or rediss:// URL with a host (value not shown)")
    owned = set(owned_supervisor_keys)
    overridden = [key for key in inputs["app_supervisor_options"] or {} if key in owned]
    if overridden:
        e.append(
            f"app_supervisor_options must not set {', '.join(overridden)} "
            "(the role sets them from its own app_* inputs)"
        )
    return e


class FilterModule:
    """Filters: app_input_errors."""

    def filters(self) -> dict:
        return {"app_input_errors": app_input_errors}
