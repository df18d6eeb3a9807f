#!/usr/bin/python
# Copyright: ec2-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a set of settings as SecureString parameters directly under one SSM path, in one module run: the app's
env file of an Auto Scaling group's instances, which their ec2-fleet-boot reads at boot (roles/boot)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: fleet_ssm_settings
short_description: Keep a set of settings as SecureStrings directly under one SSM Parameter Store path
description:
  - Each key of O(settings) is the parameter C(PATH/KEY), a SecureString. A parameter whose value differs is
    overwritten, a missing one made (with O(tags)), and a parameter directly under O(path) that is no longer a key
    is deleted. One module run reads the path once (decrypted) and writes only what differs.
  - The values are never returned or logged (the option is C(no_log)); the result and C(--diff) name the keys only.
  - Check mode says what would change and changes nothing.
  - In the collection's action group C(ec2_fleet.fleet.aws).
options:
  path:
    description: The path, for example V(/ec2-fleet/staging/app-env) (no trailing slash).
    type: str
    required: true
  settings:
    description:
      - Key to value. Keys are environment variable names (letters, digits and C(_), not starting with a digit).
      - An empty value is refused (SSM stores no empty parameter); leave the key out instead.
    type: dict
    default: {}
  key_id:
    description: The KMS key of the SecureStrings; empty for the account's C(alias/aws/ssm).
    type: str
    default: ""
  tags:
    description: Tags of the parameters this module makes.
    type: dict
    default: {}
  state:
    description: V(present) keeps the path equal to O(settings); V(absent) deletes every parameter directly under it.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author: ec2-fleet contributors
"""

EXAMPLES = r"""
- name: Write the app's settings for the group's instances
  ec2_fleet.fleet.fleet_ssm_settings:
    path: /ec2-fleet/staging/app-env
    settings:
      DATABASE_URL: "{{ database_url }}"
      REDIS_URL: "{{ redis_url }}"
"""

RETURN = r"""
keys:
  description: The keys under the path afterwards (in check mode, the keys it would hold), sorted.
  returned: always
  type: list
  elements: str
added:
  description: Keys made.
  returned: always
  type: list
  elements: str
updated:
  description: Keys whose value changed.
  returned: always
  type: list
  elements: str
removed:
  description: Keys deleted (no longer in O(settings), or every key with O(state=absent)).
  returned: always
  type: list
  elements: str
"""

import re  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.ec2_fleet.fleet.plugins.module_utils.fleet_aws import aws_errors  # noqa: E402

KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PATH = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")


def plan(current: dict[str, str], settings: dict[str, str], state: str) -> dict[str, list[str]]:
    """What to add, update and remove to bring `current` (key -> value) to `settings`."""
    wanted = settings if state == "present" else {}
    return {
        "added": sorted(k for k in wanted if k not in current),
        "updated": sorted(k for k in wanted if k in current and current[k] != wanted[k]),
        "removed": sorted(k for k in current if k not in wanted),
    }


def input_errors(path: str, settings: dict[str, object]) -> list[str]:
    errors = []
    if not PATH.match(path):
        errors.append(f"path must be like /ec2-fleet/staging/app-env, with no trailing slash (got '{path}')")
    bad = sorted(str(k) for k in settings if not KEY.match(str(k)))
    if bad:
        errors.append(f"settings keys must be environment variable names (letters, digits, _): {', '.join(bad)}")
    empty = sorted(str(k) for k, v in settings.items() if v is None or str(v) == "")
    if empty:
        errors.append(f"settings with an empty value (SSM stores none; leave them out): {', '.join(empty)}")
    return errors


def read(client, path: str) -> dict[str, str]:
    """Key -> decrypted value of each parameter directly under `path`."""
    found: dict[str, str] = {}
    for page in client.get_paginator("get_parameters_by_path").paginate(
        Path=path, Recursive=False, WithDecryption=True
    ):
        for parameter in page["Parameters"]:
            found[parameter["Name"].rsplit("/", 1)[1]] = parameter["Value"]
    return found


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "path": {"type": "str", "required": True},
            "settings": {"type": "dict", "default": {}, "no_log": True},
            "key_id": {"type": "str", "default": "", "no_log": False},
            "tags": {"type": "dict", "default": {}},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        supports_check_mode=True,
    )
    path = module.params["path"]
    settings = module.params["settings"]
    errors = input_errors(path, settings)
    if errors:
        module.fail_json(msg="; ".join(errors))
    settings = {str(k): str(v) for k, v in settings.items()}
    client = module.client("ssm")
    try:
        current = read(client, path)
    except aws_errors() as e:
        module.fail_json_aws(e, msg=f"Unable to read the SSM parameters under {path}")
    changes = plan(current, settings, module.params["state"])
    changed = any(changes.values())
    keys = sorted(settings) if module.params["state"] == "present" else []
    diff = {
        "before": "".join(f"{k}=(set)\n" for k in sorted(current)),
        "after": "".join(f"{k}=(set{', changed' if k in changes['updated'] else ''})\n" for k in keys),
        "before_header": path,
        "after_header": path,
    }
    if changed and not module.check_mode:
        tags = [{"Key": k, "Value": str(v)} for k, v in module.params["tags"].items()]
        extra = {"KeyId": module.params["key_id"]} if module.params["key_id"] else {}
        try:
            for key in changes["added"]:
                client.put_parameter(Name=f"{path}/{key}", Value=settings[key], Type="SecureString",
                                     Tags=tags, **extra)  # fmt: skip
            for key in changes["updated"]:
                client.put_parameter(Name=f"{path}/{key}", Value=settings[key], Type="SecureString",
                                     Overwrite=True, **extra)  # fmt: skip
            removed = [f"{path}/{key}" for key in changes["removed"]]
            for start in range(0, len(removed), 10):  # DeleteParameters takes 10 at most
                client.delete_parameters(Names=removed[start : start + 10])
        except aws_errors() as e:
            module.fail_json_aws(e, msg=f"Unable to write the SSM parameters under {path}")
    module.exit_json(changed=changed, keys=keys, diff=diff, **changes)


if __name__ == "__main__":
    main()
