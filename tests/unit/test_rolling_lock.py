"""The deploy lock module (plugins/modules/rolling_lock.py): taken atomically, idempotent for its holder,
refused with the holder's name while another run holds it, released only by its holder, broken on demand,
and never written in check mode."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ansible_collections.ec2_fleet.fleet.plugins.modules.rolling_lock import (
    Lock,
    acquire,
    break_,
    conflict_message,
    release,
)
from botocore.exceptions import ClientError

NAME = "/ec2-fleet/staging/deploy/lock"
OLD = {"run_id": "20200101T000000Z-dead00", "who": "ops@old-box", "since": "2020-01-01T00:00:00Z",
       "action": "deploy", "version": "9.9.9"}


def _error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, operation)


class FakeSSM:
    """SSM Parameter Store with one namespace, as much of it as the lock uses."""

    def __init__(self, parameters: dict[str, str] | None = None, race: dict[str, str] | None = None) -> None:
        self.parameters = dict(parameters or {})
        self.calls: list[str] = []
        # A value another run writes between our read and our write.
        self.race = race

    def get_parameter(self, Name: str) -> dict[str, Any]:
        self.calls.append("get")
        if Name not in self.parameters:
            raise _error("ParameterNotFound", "GetParameter")
        return {"Parameter": {"Name": Name, "Value": self.parameters[Name]}}

    def put_parameter(self, Name: str, Value: str, Type: str, Overwrite: bool, Tags: Any = None) -> None:
        self.calls.append("put")
        if self.race is not None:
            self.parameters[Name] = json.dumps(self.race)
        if Name in self.parameters and not Overwrite:
            raise _error("ParameterAlreadyExists", "PutParameter")
        self.parameters[Name] = Value
        self.tags = Tags

    def delete_parameter(self, Name: str) -> None:
        self.calls.append("delete")
        if Name not in self.parameters:
            raise _error("ParameterNotFound", "DeleteParameter")
        del self.parameters[Name]


class Failed(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("msg"))
        self.result = result


class FakeModule:
    def __init__(self, check_mode: bool = False, **params: Any) -> None:
        self.check_mode = check_mode
        self.params = {"name": NAME, "state": "acquired", "run_id": None, "holder": None, "since": None,
                       "details": {}, "tags": {}, **params}

    def fail_json(self, **result: Any) -> None:
        raise Failed(result)

    def fail_json_aws(self, error: Exception, msg: str) -> None:
        raise Failed({"msg": f"{msg}: {error}"})


def mine(**more: Any) -> dict[str, Any]:
    return {"run_id": "20261130T081500Z-ab12cd", "holder": "ops@box", "since": "2026-11-30T08:15:00Z",
            "details": {"action": "deploy", "version": "2.0.0"}, **more}


def run(action, ssm: FakeSSM, check_mode: bool = False, **params: Any) -> dict[str, Any]:
    module = FakeModule(check_mode=check_mode, **params)
    return action(module, Lock(module, ssm, NAME))


def test_acquire_takes_a_free_lock_with_the_holders_record():
    ssm = FakeSSM()
    result = run(acquire, ssm, **mine(tags={"Project": "ec2-fleet"}))
    assert result["changed"] is True and result["held_by_other"] is False
    stored = json.loads(ssm.parameters[NAME])
    assert stored == {"run_id": "20261130T081500Z-ab12cd", "who": "ops@box", "since": "2026-11-30T08:15:00Z",
                      "action": "deploy", "version": "2.0.0"}
    assert result["lock"] == stored
    assert ssm.tags == [{"Key": "Project", "Value": "ec2-fleet"}]


def test_acquire_again_by_the_same_run_changes_nothing():
    ssm = FakeSSM()
    run(acquire, ssm, **mine())
    before = dict(ssm.parameters)
    again = run(acquire, ssm, **mine())
    assert again["changed"] is False and ssm.parameters == before
    assert "put" not in ssm.calls[2:]


def test_acquire_refuses_while_another_run_holds_it_and_names_that_run():
    ssm = FakeSSM({NAME: json.dumps(OLD)})
    with pytest.raises(Failed) as failed:
        run(acquire, ssm, **mine())
    msg = failed.value.result["msg"]
    assert f"holds the deploy lock {NAME}" in msg
    assert "run 20200101T000000Z-dead00 (deploy 9.9.9) by ops@old-box since 2020-01-01T00:00:00Z" in msg
    assert "Nothing was changed." in msg
    assert failed.value.result["held_by_other"] is True and failed.value.result["lock"] == OLD
    assert json.loads(ssm.parameters[NAME]) == OLD


def test_acquire_loses_a_race_cleanly_to_a_run_that_wrote_first():
    """Free when read, taken when written: PutParameter without Overwrite fails, and the winner is named."""
    ssm = FakeSSM(race=OLD)
    with pytest.raises(Failed) as failed:
        run(acquire, ssm, **mine())
    assert "ops@old-box since 2020-01-01T00:00:00Z" in failed.value.result["msg"]
    assert json.loads(ssm.parameters[NAME]) == OLD


def test_acquire_in_check_mode_reports_the_change_and_writes_nothing():
    ssm = FakeSSM()
    result = run(acquire, ssm, check_mode=True, **mine())
    assert result["changed"] is True and ssm.parameters == {} and "put" not in ssm.calls


def test_acquire_in_check_mode_still_refuses_a_lock_held_by_another_run():
    ssm = FakeSSM({NAME: json.dumps(OLD)})
    with pytest.raises(Failed):
        run(acquire, ssm, check_mode=True, **mine())


def test_release_deletes_only_the_holders_own_lock():
    ssm = FakeSSM()
    run(acquire, ssm, **mine())
    released = run(release, ssm, run_id="20261130T081500Z-ab12cd")
    assert released["changed"] is True and NAME not in ssm.parameters
    # Released twice: nothing left to do.
    assert run(release, ssm, run_id="20261130T081500Z-ab12cd")["changed"] is False


def test_release_leaves_another_runs_lock_alone():
    ssm = FakeSSM({NAME: json.dumps(OLD)})
    result = run(release, ssm, run_id="20261130T081500Z-ab12cd")
    assert result == {"changed": False, "lock": OLD, "held_by_other": True}
    assert json.loads(ssm.parameters[NAME]) == OLD


def test_release_in_check_mode_deletes_nothing():
    ssm = FakeSSM()
    run(acquire, ssm, **mine())
    assert run(release, ssm, check_mode=True, run_id="20261130T081500Z-ab12cd")["changed"] is True
    assert NAME in ssm.parameters


def test_break_deletes_whatever_lock_there_is_and_returns_its_record():
    ssm = FakeSSM({NAME: json.dumps(OLD)})
    result = run(break_, ssm)
    assert result["changed"] is True and result["lock"] == OLD and NAME not in ssm.parameters
    assert run(break_, ssm) == {"changed": False, "lock": {}, "held_by_other": False}


def test_break_in_check_mode_deletes_nothing():
    ssm = FakeSSM({NAME: json.dumps(OLD)})
    assert run(break_, ssm, check_mode=True)["changed"] is True
    assert NAME in ssm.parameters


def test_a_lock_that_is_not_json_is_still_shown_and_refused():
    ssm = FakeSSM({NAME: "held by hand"})
    with pytest.raises(Failed) as failed:
        run(acquire, ssm, **mine())
    assert failed.value.result["lock"] == {"raw": "held by hand"}
    expected = f"Another rolling update or rollback holds the deploy lock {NAME}: run ?"
    assert conflict_message(NAME, {"raw": "x"}).startswith(expected)


def test_an_aws_error_fails_with_what_was_being_done():
    class Denied(FakeSSM):
        def get_parameter(self, Name: str) -> dict[str, Any]:
            raise _error("AccessDeniedException", "GetParameter")

    with pytest.raises(Failed) as failed:
        run(acquire, Denied(), **mine())
    assert failed.value.result["msg"].startswith(f"Unable to read the deploy lock {NAME}")
