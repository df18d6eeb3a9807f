# Copyright: ec2-fleet. GNU General Public License v3.0+.
"""The CloudWatch agent's configuration of an app host, and the checks of it and of the role's inputs.

`cloudwatch_agent_config` builds the agent's JSON configuration (as data, so that nothing is left to string
templating); `cloudwatch_agent_config_errors` checks a configuration against the rules of the agent's
documented schema for the sections this project writes ("Manually create or edit the CloudWatch agent
configuration file" in the CloudWatch user guide): the agent refuses a file that breaks them when it loads
it (`amazon-cloudwatch-agent-ctl -a fetch-config`), which on a host without the agent (the lab) nobody
would see. `cloudwatch_agent_input_errors` names the role's wrong inputs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.ec2_fleet.fleet.plugins.plugin_utils.input_checks import as_bool, matches, to_json

LOG_GROUP_RE = r"^[A-Za-z0-9_./#-]{1,512}$"
NAMESPACE_RE = r"^(?!AWS/)[A-Za-z0-9 _./#:-]{1,255}$"
SYSLOG_TAG_RE = r"^[A-Za-z0-9_.@-]{1,64}$"
# The placeholders a log stream name may hold, and no ':' or '*' otherwise (CloudWatch Logs' rule).
STREAM_PLACEHOLDERS = ("{instance_id}", "{hostname}", "{local_hostname}", "{ip_address}")
STREAM_RE = r"^[^:*]{1,512}$"
RETENTION_DAYS = (-1, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                  3288, 3653)  # fmt: skip
# append_dimensions: the four the agent fills in from the instance, each only with its own placeholder.
APPEND_DIMENSIONS = {
    "ImageId": "${aws:ImageId}",
    "InstanceId": "${aws:InstanceId}",
    "InstanceType": "${aws:InstanceType}",
    "AutoScalingGroupName": "${aws:AutoScalingGroupName}",
}
# The measurements of the plugins this project collects (with or without the plugin's prefix: mem_used_percent).
MEASUREMENTS = {
    "mem": {"active", "available", "available_percent", "buffered", "cached", "free", "inactive", "shared", "total",
            "used", "used_percent"},
    "disk": {"free", "total", "used", "used_percent", "inodes_free", "inodes_used", "inodes_total"},
    "swap": {"free", "used", "used_percent"},
}  # fmt: skip
SECTIONS = {"agent", "metrics", "logs"}
AGENT_KEYS = {"metrics_collection_interval", "region", "logfile", "debug", "run_as_user", "omit_hostname"}
METRICS_KEYS = {"namespace", "append_dimensions", "aggregation_dimensions", "metrics_collected",
                "force_flush_interval"}  # fmt: skip
PLUGIN_KEYS = {"measurement", "metrics_collection_interval", "resources", "ignore_file_system_types", "drop_device"}
LOGS_KEYS = {"logs_collected", "force_flush_interval", "log_stream_name"}
FILE_KEYS = {"file_path", "log_group_name", "log_stream_name", "timezone", "retention_in_days", "encoding",
             "multi_line_start_pattern", "timestamp_format", "auto_removal", "log_group_class"}  # fmt: skip


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _measurement_ok(plugin: str, name: Any) -> bool:
    return isinstance(name, str) and name.removeprefix(plugin + "_") in MEASUREMENTS[plugin]


def _stream_ok(name: Any) -> bool:
    if not isinstance(name, str):
        return False
    bare = name
    for placeholder in STREAM_PLACEHOLDERS:
        bare = bare.replace(placeholder, "x")
    return matches(STREAM_RE, bare) and "{" not in bare and "}" not in bare


def cloudwatch_agent_config(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The agent's configuration: the apps' logs and the system's to the log group, memory and disk metrics.

    settings: log_group_name, app_log_files ({app name: file path}), system_log_file ("" = none),
    namespace, interval (seconds), disk_paths, flush_interval (seconds).
    """
    collect = [
        {"file_path": path, "log_group_name": settings["log_group_name"],
         "log_stream_name": "{instance_id}/" + name, "timezone": "UTC"}
        for name, path in sorted(dict(settings["app_log_files"]).items())
    ]  # fmt: skip
    if settings.get("system_log_file"):
        collect.append({"file_path": settings["system_log_file"], "log_group_name": settings["log_group_name"],
                        "log_stream_name": "{instance_id}/system", "timezone": "UTC"})  # fmt: skip
    return {
        "agent": {"metrics_collection_interval": int(settings["interval"])},
        "metrics": {
            "namespace": settings["namespace"],
            # InstanceId for the per-host view; AutoScalingGroupName (only on an instance of a group) and its
            # aggregation give the group's average, which a target-tracking policy on memory needs.
            "append_dimensions": {k: APPEND_DIMENSIONS[k] for k in ("InstanceId", "AutoScalingGroupName")},
            "aggregation_dimensions": [["AutoScalingGroupName"]],
            "metrics_collected": {
                "mem": {"measurement": ["mem_used_percent"]},
                "disk": {"measurement": ["used_percent"], "resources": list(settings["disk_paths"]),
                         "ignore_file_system_types": ["sysfs", "devtmpfs", "tmpfs", "overlay", "squashfs"]},
            },
        },
        "logs": {"logs_collected": {"files": {"collect_list": collect}},
                 "force_flush_interval": int(settings["flush_interval"])},
    }


def cloudwatch_agent_config_errors(config: Any) -> list[str]:
    """What the agent would refuse in this configuration, for the sections and keys this project writes."""
    if not isinstance(config, Mapping):
        return [f"the configuration must be a JSON object (got {to_json(config)})"]
    e = [f"unknown section '{k}' (this project writes {sorted(SECTIONS)})" for k in config if k not in SECTIONS]
    agent = config.get("agent", {})
    e += [f"agent: unknown key '{k}'" for k in agent if k not in AGENT_KEYS]
    if "metrics_collection_interval" in agent and not _positive_int(agent["metrics_collection_interval"]):
        got = agent["metrics_collection_interval"]
        e.append(f"agent.metrics_collection_interval must be a positive integer (got {got})")
    metrics = config.get("metrics", {})
    e += [f"metrics: unknown key '{k}'" for k in metrics if k not in METRICS_KEYS]
    if "namespace" in metrics and not matches(NAMESPACE_RE, metrics["namespace"]):
        e.append(f"metrics.namespace must be 1-255 characters and not start with AWS/ (got '{metrics['namespace']}')")
    for key, value in dict(metrics.get("append_dimensions", {})).items():
        if APPEND_DIMENSIONS.get(key) != value:
            e.append(f"metrics.append_dimensions.{key} must be one of {sorted(APPEND_DIMENSIONS)} with its own "
                     f"placeholder (got {key}: {value})")  # fmt: skip
    for group in metrics.get("aggregation_dimensions", []):
        if not isinstance(group, list) or not all(isinstance(d, str) and d for d in group):
            e.append(f"metrics.aggregation_dimensions must be lists of dimension names (got {to_json(group)})")
    collected = metrics.get("metrics_collected", {})
    if "metrics" in config and not collected:
        e.append("metrics.metrics_collected must name at least one plugin")
    for plugin, body in dict(collected).items():
        if plugin not in MEASUREMENTS:
            e.append(f"metrics.metrics_collected.{plugin}: not a plugin this project collects ({sorted(MEASUREMENTS)})")
            continue
        e += [f"metrics.metrics_collected.{plugin}: unknown key '{k}'" for k in body if k not in PLUGIN_KEYS]
        measurement = body.get("measurement")
        if not measurement or not all(_measurement_ok(plugin, m) for m in measurement):
            e.append(f"metrics.metrics_collected.{plugin}.measurement must list some of "
                     f"{sorted(MEASUREMENTS[plugin])} (got {to_json(measurement)})")  # fmt: skip
        for path in body.get("resources", []):
            if path != "*" and not str(path).startswith("/"):
                e.append(f"metrics.metrics_collected.{plugin}.resources: '{path}' is not a mount point or '*'")
    logs = config.get("logs", {})
    e += [f"logs: unknown key '{k}'" for k in logs if k not in LOGS_KEYS]
    if "force_flush_interval" in logs and not _positive_int(logs["force_flush_interval"]):
        e.append(f"logs.force_flush_interval must be a positive integer (got {logs['force_flush_interval']})")
    files = dict(dict(logs.get("logs_collected", {})).get("files", {})).get("collect_list", [])
    if "logs" in config and not files:
        e.append("logs.logs_collected.files.collect_list must name at least one file")
    paths = [entry.get("file_path") for entry in files]
    e += [f"logs: the file {p} is collected twice" for p in sorted({p for p in paths if paths.count(p) > 1})]
    for i, entry in enumerate(files):
        where = f"logs.logs_collected.files.collect_list[{i}]"
        e += [f"{where}: unknown key '{k}'" for k in entry if k not in FILE_KEYS]
        if not str(entry.get("file_path", "")).startswith("/"):
            e.append(f"{where}.file_path must be an absolute path (got {to_json(entry.get('file_path'))})")
        if "log_group_name" in entry and not matches(LOG_GROUP_RE, entry["log_group_name"]):
            got = entry["log_group_name"]
            e.append(f"{where}.log_group_name must be 1-512 letters, digits or _-./# (got '{got}')")
        if "log_stream_name" in entry and not _stream_ok(entry["log_stream_name"]):
            e.append(f"{where}.log_stream_name must be 1-512 characters without ':' or '*', placeholders only among "
                     f"{', '.join(STREAM_PLACEHOLDERS)} (got '{entry['log_stream_name']}')")  # fmt: skip
        if entry.get("timezone", "UTC") not in ("UTC", "Local"):
            e.append(f"{where}.timezone must be UTC or Local (got '{entry['timezone']}')")
        if "retention_in_days" in entry and entry["retention_in_days"] not in RETENTION_DAYS:
            e.append(f"{where}.retention_in_days must be one of {RETENTION_DAYS} (got {entry['retention_in_days']})")
    return e


def cloudwatch_agent_input_errors(inputs: Mapping[str, Any]) -> list[str]:
    """Every problem with the cloudwatch_agent_* inputs (a map of each variable's name to its value)."""
    v = inputs
    e = []
    if not matches(LOG_GROUP_RE, v["cloudwatch_agent_log_group_name"]):
        e.append(
            "cloudwatch_agent_log_group_name must be the environment's log group (provision.yml makes it: "
            "aws_monitoring_log_group_name), 1-512 letters, digits or _-./# "
            f"(got '{v['cloudwatch_agent_log_group_name']}')"
        )
    apps = v["cloudwatch_agent_apps"]
    if not isinstance(apps, list) or not all(matches(SYSLOG_TAG_RE, a) for a in apps) or len(set(apps)) != len(apps):
        e.append(
            "cloudwatch_agent_apps must be a list of distinct app names (their journal's SYSLOG_IDENTIFIER, the "
            f"supervisor's app name), each 1-64 letters, digits or _.@- (got {to_json(apps)})"
        )
    if not matches(NAMESPACE_RE, v["cloudwatch_agent_metrics_namespace"]):
        e.append(
            "cloudwatch_agent_metrics_namespace must be 1-255 letters, digits, spaces or _-./#: and not start with "
            f"AWS/ (got '{v['cloudwatch_agent_metrics_namespace']}')"
        )
    whole = ("cloudwatch_agent_metrics_interval", "cloudwatch_agent_flush_interval", "cloudwatch_agent_log_keep_days")
    for name in whole:
        value = v[name]
        if not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 86400):
            e.append(f"{name} must be a whole number of 1-86400 (got {to_json(value)})")
    paths = v["cloudwatch_agent_disk_paths"]
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p.startswith("/") for p in paths):
        e.append(f"cloudwatch_agent_disk_paths must list mount points like / (got {to_json(paths)})")
    log_dir = v["cloudwatch_agent_log_dir"]
    if not (isinstance(log_dir, str) and re.fullmatch(r"/var/log(/[A-Za-z0-9_.-]+)+", log_dir)):
        e.append(f"cloudwatch_agent_log_dir must be a folder under /var/log, like /var/log/ec2-fleet (got '{log_dir}')")
    if as_bool(v["cloudwatch_agent_install"]):
        package = v["cloudwatch_agent_package_file"]
        if package and not str(package).endswith(".deb"):
            e.append(f"cloudwatch_agent_package_file must be a .deb on the control node or empty (got '{package}')")
        url = v["cloudwatch_agent_package_url"]
        if not package and not str(url).startswith("https://"):
            e.append(f"cloudwatch_agent_package_url must be an https:// URL of the agent's .deb (got '{url}')")
    return e


class FilterModule:
    """Filters: cloudwatch_agent_config, cloudwatch_agent_config_errors, cloudwatch_agent_input_errors."""

    def filters(self) -> dict:
        return {
            "cloudwatch_agent_config": cloudwatch_agent_config,
            "cloudwatch_agent_config_errors": cloudwatch_agent_config_errors,
            "cloudwatch_agent_input_errors": cloudwatch_agent_input_errors,
        }
