# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""The supervisor role's apps merged over the role's defaults, as every later task reads them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def supervisor_apps_merged(
    apps: list[Mapping[str, Any]],
    app_defaults: Mapping[str, Any],
    health_defaults: Mapping[str, Any],
    env_name: str = "",
) -> list[dict[str, Any]]:
    """Every app over the role's defaults, its health over the health defaults, and its env with
    the ``env_overrides`` entry of env_name (PM2's ``--env NAME``; "" for none) merged over it."""
    merged_apps = []
    for app in apps:
        merged = {**app_defaults, **app}
        env = dict(merged.get("env") or {})
        if env_name:
            env.update((merged.get("env_overrides") or {}).get(env_name) or {})
        merged_apps.append({**merged, "health": {**health_defaults, **(app.get("health") or {})}, "env": env})
    return merged_apps


class FilterModule:
    """Filters: supervisor_apps_merged."""

    def filters(self) -> dict:
        return {"supervisor_apps_merged": supervisor_apps_merged}
