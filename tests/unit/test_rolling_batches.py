"""The batch plan of the rolling playbooks (plugins/filter/rolling.py), as `serial` does it."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.ec2_fleet.fleet.plugins.filter.rolling import rolling_batches

HOSTS = ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize(("spec", "batches"), [
    (1, [["a"], ["b"], ["c"], ["d"], ["e"]]),
    ("2", [["a", "b"], ["c", "d"], ["e"]]),
    ("40%", [["a", "b"], ["c", "d"], ["e"]]),
    ("10%", [["a"], ["b"], ["c"], ["d"], ["e"]]),  # never less than one host
    ("100%", [HOSTS]),
    ([1, "50%", "100%"], [["a"], ["b", "c"], ["d", "e"]]),  # a canary, then the rest
    ([1, 2], [["a"], ["b", "c"], ["d", "e"]]),  # the last step repeats
    (10, [HOSTS]),
])
def test_batches_follow_the_steps_like_serial(spec, batches):
    assert rolling_batches(HOSTS, spec) == batches


def test_zone_by_zone_never_mixes_zones_in_a_batch():
    zones = {"a": "us-east-1b", "b": "us-east-1a", "c": "us-east-1b", "d": "us-east-1a", "e": "us-east-1b"}
    assert rolling_batches(HOSTS, 2, zones) == [["b", "d"], ["a", "c"], ["e"]]


@pytest.mark.parametrize(("spec", "phrase"), [
    (0, "a count must be 1 or more"),
    ("0%", "is not a count"),
    ("101%", "is not a count"),
    ("half", "is not a count"),
    (True, "is not a count or a percentage"),
    ([], "an empty list"),
])
def test_bad_steps_name_rolling_batch(spec, phrase):
    with pytest.raises(AnsibleFilterError, match="rolling_batch") as err:
        rolling_batches(HOSTS, spec)
    assert phrase in str(err.value)
