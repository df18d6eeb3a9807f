"""provision.yml run twice on the same account: the second run changes nothing.

One provisioned environment for every test_provision_* file (the session's `lab` fixture, tests/aws/conftest.py);
the files run in the order tests/aws/conftest.py gives them: provision twice, inspect, alb_target, teardown.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("lab")


def test_second_run_changes_nothing(lab: dict) -> None:
    second = lab["second"]
    assert second.rc == 0, second.tail()
    recap = second.recap()["localhost"]
    assert recap["changed"] == 0, second.tail(8000)
    assert recap["failed"] == 0
