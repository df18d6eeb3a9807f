"""The weighted canary's settings in plugins/filter/rolling.py (rolling_canary_errors, rolling_canary_count):
refused before anything changes, each message naming the variable and what is allowed."""

from __future__ import annotations

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.filter.rolling import (
    rolling_canary_count,
    rolling_canary_errors,
    rolling_input_errors,
)
from test_rolling_checks import GOOD

CANARY = {
    **GOOD,
    "rolling_strategy": "canary",
    "rolling_canary_weights": [5, 25, 100],
    "rolling_canary_hosts": 1,
    "rolling_canary_step_seconds": 60,
    "rolling_canary_alarms": ["ec2-fleet-lab-canary-target-5xx-share", "ec2-fleet-lab-canary-target-response-time-p99"],
    "rolling_load_balancer_name": "ec2-fleet-lab",
    "rolling_canary_target_group_name": "ec2-fleet-lab-canary",
}


def test_good_canary_settings_have_no_error() -> None:
    assert rolling_input_errors(CANARY) == []
    # As -e passes them: strings; a percentage of the fleet; no bake; a single step straight to 100.
    assert rolling_input_errors({**CANARY, "rolling_canary_weights": ["10", "100"], "rolling_canary_hosts": "10%",
                                 "rolling_canary_step_seconds": "0", "rolling_canary_alarms": []}) == []  # fmt: skip
    assert rolling_input_errors({**CANARY, "rolling_canary_weights": [100]}) == []
    # The plain strategy needs no load balancer; the defaults (no canary keys at all) are fine.
    assert rolling_input_errors({**CANARY, "rolling_strategy": "rolling", "rolling_load_balancer_name": ""}) == []
    assert rolling_input_errors(GOOD) == []


WEIGHTS = "rolling_canary_weights must be a list of percentages of the requests sent to the canary, each 1-100, "
HOSTS = "rolling_canary_hosts must be a count of hosts (1 or more) or a percentage of the fleet (1%-99%, rounded up)"


@pytest.mark.parametrize(
    ("changes", "phrase"),
    [
        ({"rolling_strategy": "blue-green"}, "rolling_strategy must be rolling or canary (got blue-green)"),
        ({"rolling_canary_weights": [25, 5, 100]}, WEIGHTS + "strictly increasing, the last one 100, such as "
         "[5, 25, 100] (got [25, 5, 100])"),
        ({"rolling_canary_weights": [5, 5, 100]}, "(got [5, 5, 100])"),
        ({"rolling_canary_weights": [5, 25, 50]}, "the last one 100"),
        ({"rolling_canary_weights": [0, 50, 100]}, "(got [0, 50, 100])"),
        ({"rolling_canary_weights": [5, 150]}, "(got [5, 150])"),
        ({"rolling_canary_weights": [-5, 100]}, "(got [-5, 100])"),
        ({"rolling_canary_weights": []}, "(got [])"),
        ({"rolling_canary_weights": "5,25,100"}, "(got '5,25,100')"),
        ({"rolling_canary_weights": [5, "half", 100]}, "(got [5, 'half', 100])"),
        ({"rolling_canary_weights": [True, 100]}, "(got [True, 100])"),
        ({"rolling_canary_hosts": 0}, HOSTS + ", fewer than the fleet (got 0)"),
        ({"rolling_canary_hosts": "100%"}, HOSTS),
        ({"rolling_canary_hosts": "0%"}, HOSTS),
        ({"rolling_canary_hosts": "some"}, "(got 'some')"),
        ({"rolling_canary_step_seconds": -1}, "rolling_canary_step_seconds must be a number of seconds, 0 or more "
         "(got -1)"),
        ({"rolling_canary_step_seconds": "soon"}, "rolling_canary_step_seconds must be a number of seconds"),
        ({"rolling_canary_alarms": "ec2-fleet-lab-canary-target-5xx-share"}, "rolling_canary_alarms must be a list "
         "of CloudWatch alarm names, [] for none"),
        ({"rolling_canary_alarms": [""]}, "rolling_canary_alarms must be a list of CloudWatch alarm names (strings"),
        ({"rolling_load_balancer_name": ""}, "rolling_strategy canary needs a load balancer listener to weight, and "
         "rolling_load_balancer_name is empty (this environment has no load balancer): give the load balancer's "
         "name, or use rolling_strategy rolling"),
        ({"rolling_canary_target_group_name": ""}, "rolling_strategy canary needs rolling_canary_target_group_name"),
        ({"rolling_canary_target_group_name": "ec2-fleet-lab-tg"}, "not the main one rolling_target_group_name "
         "(got 'ec2-fleet-lab-tg')"),
    ],
)
def test_bad_canary_settings_are_named_with_what_is_allowed(changes: dict, phrase: str) -> None:
    errors = rolling_input_errors({**CANARY, **changes})
    assert len(errors) == 1 and phrase in errors[0], errors


def test_bad_shapes_are_refused_even_with_the_rolling_strategy() -> None:
    errors = rolling_input_errors({**CANARY, "rolling_strategy": "rolling", "rolling_canary_weights": [50, 5]})
    assert len(errors) == 1 and errors[0].startswith(WEIGHTS)


@pytest.mark.parametrize(("spec", "total", "count"), [(1, 10, 1), ("2", 10, 2), ("10%", 10, 1), ("10%", 11, 2),
                                                       ("34%", 3, 2), ("1%", 200, 2)])  # fmt: skip
def test_canary_count_rounds_a_percentage_up(spec: object, total: int, count: int) -> None:
    assert rolling_canary_count(spec, total) == count


def test_a_canary_as_large_as_the_fleet_is_refused_once_the_fleet_is_known() -> None:
    assert rolling_canary_errors(CANARY, fleet_size=3) == []
    assert rolling_canary_errors({**CANARY, "rolling_canary_hosts": "50%"}, fleet_size=3) == []
    errors = rolling_canary_errors({**CANARY, "rolling_canary_hosts": 3}, fleet_size=3)
    assert errors == ["rolling_canary_hosts must pick fewer hosts than the fleet: 3 is 3 of 3 hosts; the canary "
                      "needs hosts left in the main target group"]  # fmt: skip
    assert "'60%' is 1 of 1 hosts" in rolling_canary_errors({**CANARY, "rolling_canary_hosts": "60%"}, fleet_size=1)[0]
