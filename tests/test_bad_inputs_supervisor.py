"""Bad supervisor inputs are refused before the host changes, naming the variable."""

import pytest

from ec2_fleet_dev.plays import assert_rejected

GOOD = {"name": "web", "command": "/usr/bin/python3 -m http.server", "port": 8080}


def apps(**changes):
    return {"supervisor_apps": [{**GOOD, **changes}]}


CASES = [
    # (id, variables, what the message must name)
    ("instances-wrong-type", apps(instances="many"), "argument 'instances' is of type str"),
    ("negative-instances", apps(instances=-2), "instances must be between 1 and 64"),
    ("state-unknown-choice", apps(state="running"), "value of state must be one of: present, absent"),
    ("missing-command", {"supervisor_apps": [{"name": "web", "port": 8080}]}, "missing required arguments: command"),
    ("port-out-of-range", apps(port=70000), "port must be between 1 and 65535"),
    ("relative-command", apps(command="python3 app.py"), "command must start with an absolute program path"),
    ("root-user", apps(user="root"), "user must be an unprivileged user"),
    ("bad-memory-format", apps(max_memory_restart="300MB"), "max_memory_restart must look like 300M"),
    ("health-path-without-slash", apps(health={"path": "health"}), "health.path must start with '/'"),
    ("cluster-without-socket", apps(instances=3, socket_activation=False), "instances > 1 needs socket_activation"),
    ("unknown-app-key", apps(instnaces=3), "supervisor_apps.instnaces"),
    ("duplicate-names", {"supervisor_apps": [GOOD, GOOD]}, "the name 'web' is used more than once"),
    ("apps-not-a-list", {"supervisor_apps": "web"}, "option 'supervisor_apps' is of type str"),
]


@pytest.mark.parametrize(("variables", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_before_any_change(apply_role, variables, expected):
    assert_rejected(apply_role("supervisor", variables), expected)


def test_every_message_names_the_app(apply_role):
    result = apply_role("supervisor", apps(port=0, health={"path": "/health"}))
    assert_rejected(result, "supervisor_apps[0] (web).port is required with socket_activation: true")
