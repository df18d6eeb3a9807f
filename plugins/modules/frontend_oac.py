#!/usr/bin/python
# Copyright: ec2-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A CloudFront origin access control (OAC) for an S3 origin: amazon.aws and community.aws have no module for it."""

from __future__ import annotations

DOCUMENTATION = r"""
module: frontend_oac
short_description: Create, update or delete a CloudFront origin access control for an S3 origin
description:
  - Keeps one origin access control (OAC) of the given O(name), with origin type C(s3), signing protocol C(sigv4),
    signing behaviour O(signing_behavior). CloudFront signs its requests to the bucket with it; the bucket
    policy then allows the C(cloudfront.amazonaws.com) principal for one distribution only (the legacy
    origin access identity, OAI, is not used).
  - Check mode reports what would change without writing; a second run with the same settings changes nothing.
  - In the collection's action group C(ec2_fleet.fleet.aws).
options:
  name:
    description: The OAC's name (unique in the account, 1-64 characters).
    type: str
    required: true
  description:
    description: Its description.
    type: str
    default: ""
  signing_behavior:
    description: When CloudFront signs requests to the origin.
    type: str
    choices: [always, never, no-override]
    default: always
  state:
    description: V(present) creates or updates the OAC, V(absent) deletes it (it must no longer be in use).
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Create the frontend's origin access control
  ec2_fleet.fleet.frontend_oac:
    name: ec2-fleet-prod-frontend
"""

RETURN = r"""
id:
  description: The OAC's id (empty when absent).
  returned: always
  type: str
"""

from typing import Any  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.ec2_fleet.fleet.plugins.module_utils.fleet_aws import aws_errors  # noqa: E402


def find(client: Any, name: str) -> dict | None:
    marker = ""
    while True:
        page = client.list_origin_access_controls(**({"Marker": marker} if marker else {}))
        listing = page.get("OriginAccessControlList", {})
        for item in listing.get("Items") or []:
            if item.get("Name") == name:
                return item
        marker = listing.get("NextMarker") or ""
        if not listing.get("IsTruncated") or not marker:
            return None


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "description": {"type": "str", "default": ""},
            "signing_behavior": {"type": "str", "choices": ["always", "never", "no-override"], "default": "always"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        supports_check_mode=True,
    )
    p = module.params
    client = module.client("cloudfront")
    wanted = {
        "Name": p["name"],
        "Description": p["description"],
        "SigningProtocol": "sigv4",
        "SigningBehavior": p["signing_behavior"],
        "OriginAccessControlOriginType": "s3",
    }
    try:
        run(module, client, wanted)
    except aws_errors() as e:
        module.fail_json_aws(e, msg=f"origin access control {p['name']}")


def run(module: Any, client: Any, wanted: dict) -> None:
    p = module.params
    current = find(client, p["name"])
    if p["state"] == "absent":
        if current is None:
            module.exit_json(changed=False, id="")
        if not module.check_mode:
            etag = client.get_origin_access_control(Id=current["Id"])["ETag"]
            client.delete_origin_access_control(Id=current["Id"], IfMatch=etag)
        module.exit_json(changed=True, id="", diff={"before": {"id": current["Id"]}, "after": {}})
    if current is None:
        if module.check_mode:
            module.exit_json(changed=True, id="", diff={"before": {}, "after": wanted})
        made = client.create_origin_access_control(OriginAccessControlConfig=wanted)
        module.exit_json(changed=True, id=made["OriginAccessControl"]["Id"], diff={"before": {}, "after": wanted})
    have = {k: current.get(k, "") for k in wanted}
    if have == wanted:
        module.exit_json(changed=False, id=current["Id"])
    if not module.check_mode:
        etag = client.get_origin_access_control(Id=current["Id"])["ETag"]
        client.update_origin_access_control(Id=current["Id"], IfMatch=etag, OriginAccessControlConfig=wanted)
    module.exit_json(changed=True, id=current["Id"], diff={"before": have, "after": wanted})


if __name__ == "__main__":
    main()
