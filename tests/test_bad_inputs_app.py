"""Bad app role inputs are refused before the host changes, with a message naming the variable."""

import subprocess

import pytest

from ec2_fleet_dev.plays import assert_rejected

GOOD = {"app_version": "1.0.0"}
SECRET = "s3cr3t-pw-never-shown"


def with_(**changes):
    return {**GOOD, **changes}


CASES = [
    # (id, variables, phrase the failed task's message must contain)
    ("version-missing", {}, "app_version is required"),
    ("version-bad-format", with_(app_version="1.0/../../etc"), "app_version must match"),
    ("version-too-long", with_(app_version="1" * 65), "app_version must match"),
    ("runtime-kind-unknown", with_(app_runtime_kind="ruby"), "value of app_runtime_kind must be one of: python, node"),
    ("instances-wrong-type", with_(app_instances="many"), "argument 'app_instances' is of type str"),
    ("keep-releases-one", with_(app_keep_releases=1), "app_keep_releases must be at least 2"),
    ("port-out-of-range", with_(app_port=70000), "app_port must be between 1 and 65535"),
    ("root-user", with_(app_user="root"), "app_user must be an unprivileged user"),
    ("ready-path-without-slash", with_(app_ready_path="ready"), "app_ready_path must start with '/'"),
    ("env-sets-reserved-key", with_(app_env={"DATABASE_URL": "postgresql://x@h/d"}),
     "app_env must not set DATABASE_URL"),
    ("env-bad-key", with_(app_release_env={"BAD-KEY": "1"}), "app_release_env key 'BAD-KEY'"),
    ("supervisor-options-override-command", with_(app_supervisor_options={"command": "/bin/true"}),
     "app_supervisor_options must not set command"),
    ("source-dir-missing", with_(app_source_dir="/nonexistent/app"),
     "app_source_dir: /nonexistent/app is not a directory"),
    ("rollback-without-previous", {"app_rollback": True}, "app_rollback: orders-api has no previous release"),
    ("rollback-to-missing", {"app_rollback_to": "9.9.9"},
     "app_rollback_to: release 9.9.9 of orders-api is not installed"),
    ("env-not-a-dict", with_(app_env=["LOG_LEVEL"]), "argument 'app_env' is of type list"),
]


@pytest.mark.parametrize(("variables", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_before_any_change(apply_role, variables, expected):
    assert_rejected(apply_role("app", variables), expected)


@pytest.mark.parametrize("variable", ["app_database_url", "app_redis_url"])
def test_bad_secret_url_is_refused_without_showing_it(apply_role, variable):
    result = apply_role("app", with_(**{variable: f"mysql://orders:{SECRET}@db.internal/orders"}))
    assert_rejected(result, f"{variable} must be a")
    assert SECRET not in result.output


def test_check_mode_on_a_fresh_host_reports_the_deploy_and_changes_nothing(apply_role, podman_host):
    result = apply_role("app", GOOD, check=True)
    assert result.rc == 0, result.output[-3000:]
    assert result.recap()[podman_host]["changed"] > 0
    left = subprocess.run(["podman", "exec", podman_host, "ls", "/srv/orders-api"], capture_output=True, text=True)
    assert left.returncode != 0, f"check mode created /srv/orders-api: {left.stdout}"
