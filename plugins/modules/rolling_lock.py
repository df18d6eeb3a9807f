#!/usr/bin/python
# Copyright: ec2-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy lock of the rolling role: one SSM parameter that every ops box sees.

Taking it is PutParameter without Overwrite, which AWS makes atomic: of two runs that try at once,
exactly one gets it. The holder's record (run id, who, since, and what it does) is the value.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: rolling_lock
short_description: Take, release or break the deploy lock of a rolling update (an SSM parameter)
description:
  - A lock that keeps rolling updates and rollbacks of one environment apart, whichever ops box runs them.
    The lock is one SSM Parameter Store parameter; its value is the holder's record as JSON
    (C(run_id), C(who), C(since), and the O(details) such as the action and the version).
  - V(acquired) takes the lock for O(run_id), atomically (PutParameter without Overwrite). It fails, changing
    nothing, while another run holds it, and names that run, who started it and since when. Taking a lock
    the same run already holds changes nothing.
  - V(released) deletes the lock if O(run_id) holds it; a lock held by another run is left alone (and
    returned in RV(lock)), a missing one is fine.
  - V(broken) deletes the lock whoever holds it, for a lock left by a run that died; RV(lock) is the record
    of the run it belonged to.
  - Check mode reads the lock and reports what would change without writing; a lock held by another run
    fails as it would without check mode.
  - In the collection's action group C(ec2_fleet.fleet.aws), so C(module_defaults) C(group/ec2_fleet.fleet.aws)
    gives it the connection.
options:
  name:
    description: Name (path) of the parameter that is the lock, for example V(/ec2-fleet/staging/deploy/lock).
    type: str
    required: true
  state:
    description: V(acquired), V(released) or V(broken).
    type: str
    choices: [acquired, released, broken]
    default: acquired
  run_id:
    description: The run that takes or releases the lock. Required with O(state=acquired) and O(state=released).
    type: str
  holder:
    description: Who takes the lock (for example V(ops@box (arn:aws:iam::123456789012:user/ops))), shown to
      whoever finds it taken. Required with O(state=acquired).
    type: str
  since:
    description: When the holder took it, as the holder wants it shown (for example an ISO 8601 UTC time).
      Required with O(state=acquired).
    type: str
  details:
    description: More of the holder's record, stored with it (for example the action and the version).
    type: dict
    default: {}
  tags:
    description: Tags of the parameter when it is created.
    type: dict
    default: {}
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author: ec2-fleet contributors
"""

EXAMPLES = r"""
- name: Take the deploy lock
  ec2_fleet.fleet.rolling_lock:
    name: /ec2-fleet/staging/deploy/lock
    run_id: 20261130T081500Z-ab12cd
    holder: ops@box
    since: "2026-11-30T08:15:00Z"
    details: {action: deploy, version: 2.0.0}
    tags: {Project: ec2-fleet, Environment: staging}

- name: Release it at the end of the run
  ec2_fleet.fleet.rolling_lock:
    name: /ec2-fleet/staging/deploy/lock
    run_id: 20261130T081500Z-ab12cd
    state: released

- name: Break a lock left by a run that died
  ec2_fleet.fleet.rolling_lock:
    name: /ec2-fleet/staging/deploy/lock
    state: broken
  register: broken
"""

RETURN = r"""
lock:
  description:
    - The holder's record. V(acquired) and V(released) by this run, and V(broken) - the record the lock held
      before (empty when there was no lock). V(acquired) refused or V(released) left alone - the other run's.
  returned: always
  type: dict
  sample: {run_id: 20261130T081500Z-ab12cd, who: ops@box, since: "2026-11-30T08:15:00Z", action: deploy,
           version: 2.0.0}
held_by_other:
  description: Whether another run holds the lock (an V(acquired) that failed, a V(released) left alone).
  returned: always
  type: bool
"""

import json  # noqa: E402
from typing import Any  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.ec2_fleet.fleet.plugins.module_utils.fleet_aws import aws_errors  # noqa: E402


def parse_record(value: str) -> dict[str, Any]:
    """The holder's record from the parameter's value; a value that is not a JSON object is kept as `raw`."""
    try:
        record = json.loads(value)
    except ValueError:
        return {"raw": value}
    return record if isinstance(record, dict) else {"raw": value}


def conflict_message(name: str, record: dict[str, Any]) -> str:
    """What a run that finds the lock taken is told: who holds it, doing what, since when."""
    doing = " ".join(str(record[key]) for key in ("action", "version") if record.get(key))
    return (
        f"Another rolling update or rollback holds the deploy lock {name}: run {record.get('run_id', '?')}"
        f"{f' ({doing})' if doing else ''} by {record.get('who', '?')} since {record.get('since', '?')}."
        " Nothing was changed."
    )


class Lock:
    """The lock parameter, read and written through one SSM client."""

    def __init__(self, module: Any, client: Any, name: str) -> None:
        self.module = module
        self.client = client
        self.name = name

    def read(self) -> dict[str, Any] | None:
        """The holder's record, or None when nobody holds the lock."""
        try:
            value = self.client.get_parameter(Name=self.name)["Parameter"]["Value"]
        except is_boto3_error_code("ParameterNotFound"):
            return None
        except aws_errors() as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=f"Unable to read the deploy lock {self.name}")
        return parse_record(value)

    def create(self, record: dict[str, Any], tags: dict[str, str]) -> bool:
        """Write the record if no lock exists (atomic); False when another run was faster."""
        request: dict[str, Any] = {"Name": self.name, "Value": json.dumps(record), "Type": "String",
                                   "Overwrite": False}
        if tags:
            request["Tags"] = [{"Key": str(k), "Value": str(v)} for k, v in tags.items()]
        try:
            self.client.put_parameter(**request)
        except is_boto3_error_code("ParameterAlreadyExists"):
            return False
        except aws_errors() as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=f"Unable to take the deploy lock {self.name}")
        return True

    def delete(self) -> None:
        """Delete the lock; one that is already gone is fine."""
        try:
            self.client.delete_parameter(Name=self.name)
        except is_boto3_error_code("ParameterNotFound"):
            pass
        except aws_errors() as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=f"Unable to delete the deploy lock {self.name}")


def acquire(module: Any, lock: Lock) -> dict[str, Any]:
    """Take the lock for run_id, or fail naming the run that holds it."""
    params = module.params
    mine = {**params["details"], "run_id": params["run_id"], "who": params["holder"], "since": params["since"]}
    current = lock.read()
    if current is None and not module.check_mode and not lock.create(mine, params["tags"]):
        current = lock.read() or {}  # taken between our read and our write
    if current is None:
        return {"changed": True, "lock": mine, "held_by_other": False}
    if current.get("run_id") == params["run_id"]:
        return {"changed": False, "lock": current, "held_by_other": False}
    module.fail_json(msg=conflict_message(lock.name, current), lock=current, held_by_other=True, changed=False)
    return {}


def release(module: Any, lock: Lock) -> dict[str, Any]:
    """Delete the lock if this run holds it."""
    current = lock.read()
    if current is None:
        return {"changed": False, "lock": {}, "held_by_other": False}
    if current.get("run_id") != module.params["run_id"]:
        return {"changed": False, "lock": current, "held_by_other": True}
    if not module.check_mode:
        lock.delete()
    return {"changed": True, "lock": current, "held_by_other": False}


def break_(module: Any, lock: Lock) -> dict[str, Any]:
    """Delete the lock whoever holds it."""
    current = lock.read()
    if current is None:
        return {"changed": False, "lock": {}, "held_by_other": False}
    if not module.check_mode:
        lock.delete()
    return {"changed": True, "lock": current, "held_by_other": False}


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["acquired", "released", "broken"], "default": "acquired"},
            "run_id": {"type": "str"},
            "holder": {"type": "str"},
            "since": {"type": "str"},
            "details": {"type": "dict", "default": {}},
            "tags": {"type": "dict", "default": {}},
        },
        required_if=[
            ("state", "acquired", ("run_id", "holder", "since")),
            ("state", "released", ("run_id",)),
        ],
        supports_check_mode=True,
    )
    lock = Lock(module, module.client("ssm"), module.params["name"])
    action = {"acquired": acquire, "released": release, "broken": break_}[module.params["state"]]
    module.exit_json(**action(module, lock))


if __name__ == "__main__":
    main()
