"""The CloudWatch agent's configuration as the role builds it, the check of it, and the role's input rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.cloudwatch_agent import (
    cloudwatch_agent_config,
    cloudwatch_agent_config_errors,
    cloudwatch_agent_input_errors,
)
from validation_support import role_defaults

SETTINGS = {"log_group_name": "/ec2-fleet/staging/journal",
            "app_log_files": {"orders-api": "/var/log/ec2-fleet/orders-api.log"},
            "system_log_file": "/var/log/syslog", "namespace": "CWAgent", "interval": 60, "disk_paths": ["/"],
            "flush_interval": 5}  # fmt: skip


def test_the_config_ships_each_app_and_the_system_log_and_publishes_memory_and_disk() -> None:
    config = cloudwatch_agent_config(SETTINGS)
    assert cloudwatch_agent_config_errors(config) == []
    files = config["logs"]["logs_collected"]["files"]["collect_list"]
    assert [(f["file_path"], f["log_stream_name"]) for f in files] == [
        ("/var/log/ec2-fleet/orders-api.log", "{instance_id}/orders-api"), ("/var/log/syslog", "{instance_id}/system")]
    assert {f["log_group_name"] for f in files} == {"/ec2-fleet/staging/journal"}
    assert all("retention_in_days" not in f for f in files)  # provision.yml owns the retention (no PutRetentionPolicy)
    metrics = config["metrics"]
    assert metrics["namespace"] == "CWAgent"
    assert metrics["metrics_collected"]["mem"] == {"measurement": ["mem_used_percent"]}
    assert metrics["metrics_collected"]["disk"]["resources"] == ["/"]
    assert metrics["append_dimensions"] == {"InstanceId": "${aws:InstanceId}",
                                            "AutoScalingGroupName": "${aws:AutoScalingGroupName}"}  # fmt: skip
    assert metrics["aggregation_dimensions"] == [["AutoScalingGroupName"]]
    no_system = cloudwatch_agent_config({**SETTINGS, "system_log_file": ""})
    assert len(no_system["logs"]["logs_collected"]["files"]["collect_list"]) == 1


def broken(path: str, value: Any) -> dict[str, Any]:
    config = copy.deepcopy(cloudwatch_agent_config(SETTINGS))
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return config


@pytest.mark.parametrize(("path", "value", "message"), [
    ("agent.metrics_collection_interval", 0, "agent.metrics_collection_interval must be a positive integer"),
    ("agent.interval", 60, "agent: unknown key 'interval'"),
    ("metrics.namespace", "AWS/EC2", "metrics.namespace must be 1-255 characters and not start with AWS/"),
    ("metrics.append_dimensions.Environment", "staging", "metrics.append_dimensions.Environment must be one of"),
    ("metrics.append_dimensions.InstanceId", "${aws:ImageId}", "metrics.append_dimensions.InstanceId must be one of"),
    ("metrics.metrics_collected.mem.measurement", ["mem_used_percnt"], "mem.measurement must list some of"),
    ("metrics.metrics_collected.gpu", {"measurement": ["x"]}, "gpu: not a plugin this project collects"),
    ("metrics.metrics_collected.disk.resources", ["root"], "resources: 'root' is not a mount point"),
    ("logs.force_flush_interval", "5", "logs.force_flush_interval must be a positive integer"),
    ("logs.logs_collected.files.collect_list.0.file_path", "var/log/x.log", "file_path must be an absolute path"),
    ("logs.logs_collected.files.collect_list.0.log_group_name", "/ec2 fleet", "log_group_name must be 1-512"),
    ("logs.logs_collected.files.collect_list.0.log_stream_name", "{instance}/app", "log_stream_name must be"),
    ("logs.logs_collected.files.collect_list.0.log_stream_name", "{instance_id}:app", "log_stream_name must be"),
    ("logs.logs_collected.files.collect_list.0.timezone", "CET", "timezone must be UTC or Local"),
    ("logs.logs_collected.files.collect_list.0.retention_in_days", 10, "retention_in_days must be one of"),
    ("logs.logs_collected.files.collect_list.0.path", "/x", "unknown key 'path'"),
    ("logs.logs_collected.files.collect_list.1.file_path", "/var/log/ec2-fleet/orders-api.log", "collected twice"),
    ("traces", {}, "unknown section 'traces'"),
])  # fmt: skip
def test_what_the_agent_would_refuse_is_named(path: str, value: Any, message: str) -> None:
    errors = cloudwatch_agent_config_errors(broken(path, value))
    assert any(message in e for e in errors), errors


def test_empty_sections_and_a_non_object_are_refused() -> None:
    assert cloudwatch_agent_config_errors([]) == ["the configuration must be a JSON object (got [])"]
    assert "metrics.metrics_collected must name at least one plugin" in cloudwatch_agent_config_errors(
        {"metrics": {"namespace": "CWAgent"}})  # fmt: skip
    assert "logs.logs_collected.files.collect_list must name at least one file" in cloudwatch_agent_config_errors(
        {"logs": {"logs_collected": {"files": {"collect_list": []}}}})  # fmt: skip


def inputs(**overrides: Any) -> dict[str, Any]:
    defaults = {k: v for k, v in role_defaults("cloudwatch_agent").items() if k.startswith("cloudwatch_agent_")}
    return {**defaults, "cloudwatch_agent_log_group_name": "/ec2-fleet/staging/journal",
            "cloudwatch_agent_apps": ["orders-api"], **overrides}  # fmt: skip


def test_the_defaults_with_a_log_group_and_an_app_are_accepted() -> None:
    assert cloudwatch_agent_input_errors(inputs()) == []
    assert cloudwatch_agent_input_errors(inputs(cloudwatch_agent_install=False, cloudwatch_agent_package_url="")) == []


@pytest.mark.parametrize(("overrides", "message"), [
    ({"cloudwatch_agent_log_group_name": ""}, "cloudwatch_agent_log_group_name must be the environment's log group"),
    ({"cloudwatch_agent_apps": ["orders api"]}, "cloudwatch_agent_apps must be a list of distinct app names"),
    ({"cloudwatch_agent_apps": ["a", "a"]}, "cloudwatch_agent_apps must be a list of distinct app names"),
    ({"cloudwatch_agent_metrics_namespace": "AWS/EC2"}, "cloudwatch_agent_metrics_namespace must be"),
    ({"cloudwatch_agent_metrics_interval": 0}, "cloudwatch_agent_metrics_interval must be a whole number of 1-86400"),
    ({"cloudwatch_agent_flush_interval": True}, "cloudwatch_agent_flush_interval must be a whole number"),
    ({"cloudwatch_agent_disk_paths": []}, "cloudwatch_agent_disk_paths must list mount points"),
    ({"cloudwatch_agent_disk_paths": ["data"]}, "cloudwatch_agent_disk_paths must list mount points"),
    ({"cloudwatch_agent_log_dir": "/srv/logs"}, "cloudwatch_agent_log_dir must be a folder under /var/log"),
    ({"cloudwatch_agent_log_dir": "/var/log"}, "cloudwatch_agent_log_dir must be a folder under /var/log"),
    ({"cloudwatch_agent_package_file": "/tmp/agent.rpm"}, "cloudwatch_agent_package_file must be a .deb"),
    ({"cloudwatch_agent_package_url": "http://example.com/a.deb"}, "cloudwatch_agent_package_url must be an https://"),
])  # fmt: skip
def test_bad_inputs_are_named(overrides: dict[str, Any], message: str) -> None:
    errors = cloudwatch_agent_input_errors(inputs(**overrides))
    assert any(message in e for e in errors), errors


def test_host_iam_rules_of_the_agent_s_log_group_and_namespace() -> None:
    from ansible_collections.ec2_fleet.fleet.plugins.filter.aws_host_iam_input_errors import aws_host_iam_input_errors

    base = {"aws_host_iam_name": "ec2-fleet-staging-host", "aws_host_iam_create": True,
            "aws_host_iam_ssm_parameter_path": "/ec2-fleet/staging", "aws_host_iam_managed_policies": [],
            "aws_host_iam_tags": {"Project": "ec2-fleet", "Environment": "staging"}}  # fmt: skip
    assert aws_host_iam_input_errors({**base, "aws_host_iam_log_group_name": "/ec2-fleet/staging/journal",
                                      "aws_host_iam_metrics_namespace": "CWAgent"}) == []  # fmt: skip
    errors = aws_host_iam_input_errors({**base, "aws_host_iam_log_group_name": "/a b",
                                        "aws_host_iam_metrics_namespace": "AWS/EC2"})  # fmt: skip
    assert [e.split(" ")[0] for e in errors] == ["aws_host_iam_log_group_name", "aws_host_iam_metrics_namespace"]
