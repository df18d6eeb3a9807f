# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""What is wrong with the runtime role's inputs (what meta/argument_specs.yml cannot say)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.ec2_fleet.fleet.plugins.plugin_utils.input_checks import as_int, int_between, matches

PYTHON_VERSION_RE = r"^[0-9]+\.[0-9]+(\.[0-9]+)?$"
NODE_VERSION_RE = r"^[0-9]+(\.[0-9]+){0,2}$"
NODESOURCE_URL_RE = r"^https?://[^\s/]+(/\S*)?$"
KEY_URL_RE = r"^(https?|file)://\S+$"


def runtime_input_errors(inputs: Mapping[str, Any]) -> list[str]:
    """Every problem with the runtime_* inputs (inputs maps each variable's name to its value).

    The last rule (a minimum Node.js version NodeSource's major can meet) is checked only when
    every other input is right, since it reads two of them.
    """
    v = inputs
    e = []
    if not (
        matches(PYTHON_VERSION_RE, v["runtime_python_min_version"])
        and matches(NODE_VERSION_RE, v["runtime_node_min_version"])
    ):
        e.append(
            "runtime_python_min_version must be MAJOR.MINOR[.PATCH] and runtime_node_min_version "
            f"MAJOR[.MINOR[.PATCH]] (digits only); got runtime_python_min_version={v['runtime_python_min_version']}, "
            f"runtime_node_min_version={v['runtime_node_min_version']}"
        )
    node_major = as_int(v["runtime_node_major"])
    if node_major is None or not (18 <= node_major <= 98 and node_major % 2 == 0):
        e.append(f"runtime_node_major must be an even (LTS) Node.js major release >= 18; got {v['runtime_node_major']}")
    if not (
        matches(NODESOURCE_URL_RE, v["runtime_nodesource_url"]) and matches(KEY_URL_RE, v["runtime_nodesource_key_url"])
    ):
        e.append(
            "runtime_nodesource_url must be an http(s) URL and runtime_nodesource_key_url an http(s) or "
            f"file URL; got runtime_nodesource_url={v['runtime_nodesource_url']}, "
            f"runtime_nodesource_key_url={v['runtime_nodesource_key_url']}"
        )
    if not (int_between(v["runtime_apt_lock_timeout"], 0) and int_between(v["runtime_cloud_init_timeout"], 1)):
        e.append(
            "runtime_apt_lock_timeout must be >= 0 and runtime_cloud_init_timeout >= 1 seconds; got "
            f"runtime_apt_lock_timeout={v['runtime_apt_lock_timeout']}, "
            f"runtime_cloud_init_timeout={v['runtime_cloud_init_timeout']}"
        )
    if (
        not e
        and v["runtime_kind"] == "node"
        and v["runtime_node_source"] == "nodesource"
        and int(v["runtime_node_min_version"].split(".")[0]) > node_major
    ):
        e.append(
            f"runtime_node_min_version {v['runtime_node_min_version']} can never be met by NodeSource's "
            f"runtime_node_major {v['runtime_node_major']}"
        )
    return e


class FilterModule:
    """Filters: runtime_input_errors."""

    def filters(self) -> dict:
        return {"runtime_input_errors": runtime_input_errors}
