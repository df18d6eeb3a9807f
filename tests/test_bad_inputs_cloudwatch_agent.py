"""Bad cloudwatch_agent inputs are refused before the host changes, naming the variable."""

import pytest

from ec2_fleet_dev.plays import assert_rejected

GOOD = {"cloudwatch_agent_log_group_name": "/ec2-fleet/test/journal", "cloudwatch_agent_apps": ["orders-api"],
        "cloudwatch_agent_install": False}  # fmt: skip

CASES = [
    # (id, variables, what the message must name)
    ("no-log-group", {**GOOD, "cloudwatch_agent_log_group_name": ""},
     "cloudwatch_agent_log_group_name must be the environment's log group"),
    ("log-group-with-space", {**GOOD, "cloudwatch_agent_log_group_name": "/ec2 fleet/journal"},
     "cloudwatch_agent_log_group_name must be the environment's log group"),
    ("app-name-with-space", {**GOOD, "cloudwatch_agent_apps": ["orders api"]},
     "cloudwatch_agent_apps must be a list of distinct app names"),
    ("aws-namespace", {**GOOD, "cloudwatch_agent_metrics_namespace": "AWS/EC2"},
     "cloudwatch_agent_metrics_namespace must be 1-255"),
    ("interval-zero", {**GOOD, "cloudwatch_agent_metrics_interval": 0},
     "cloudwatch_agent_metrics_interval must be a whole number of 1-86400"),
    ("interval-not-a-number", {**GOOD, "cloudwatch_agent_metrics_interval": "often"},
     "cloudwatch_agent_metrics_interval' is of type str"),
    ("disk-path-relative", {**GOOD, "cloudwatch_agent_disk_paths": ["data"]},
     "cloudwatch_agent_disk_paths must list mount points"),
    ("log-dir-outside-var-log", {**GOOD, "cloudwatch_agent_log_dir": "/srv/logs"},
     "cloudwatch_agent_log_dir must be a folder under /var/log"),
    ("package-not-a-deb", {**GOOD, "cloudwatch_agent_install": True, "cloudwatch_agent_package_file": "/tmp/a.rpm"},
     "cloudwatch_agent_package_file must be a .deb"),
]  # fmt: skip


@pytest.mark.parametrize(("variables", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_before_any_change(apply_role, variables, expected):
    assert_rejected(apply_role("cloudwatch_agent", variables), expected)
