#!/usr/bin/python
# Copyright: ec2-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read one SSM Parameter Store parameter, as a module of the collection's action group.

The lookup amazon.aws.ssm_parameter reads the same value, but lookups never see module_defaults: every
call would need the connection passed again. This module gets it from `group/ec2_fleet.fleet.aws`.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: fleet_ssm_parameter_info
short_description: Read one parameter of SSM Parameter Store
description:
  - Reads the value of one parameter (String, StringList or SecureString, decrypted by default) and tells
    whether it exists. Changes nothing; works the same in check mode.
  - In the collection's action group C(ec2_fleet.fleet.aws), which extends C(amazon.aws.aws), so one
    C(module_defaults) entry C(group/ec2_fleet.fleet.aws) gives it the connection, unlike the lookup
    C(amazon.aws.ssm_parameter).
options:
  name:
    description: Name (path) of the parameter, for example V(/ec2-fleet/staging/database_url).
    type: str
    required: true
  decrypt:
    description: Decrypt a SecureString (the caller needs C(kms:Decrypt) through SSM).
    type: bool
    default: true
  on_missing:
    description:
      - V(error) fails when the parameter does not exist.
      - V(skip) returns RV(exists=false) and an empty value instead.
    type: str
    choices: [error, skip]
    default: error
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author: ec2-fleet contributors
"""

EXAMPLES = r"""
- name: Read the AMI id Canonical publishes
  ec2_fleet.fleet.fleet_ssm_parameter_info:
    name: /aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id
  register: ami

- name: Read the database URL (a SecureString)
  ec2_fleet.fleet.fleet_ssm_parameter_info:
    name: /ec2-fleet/staging/database_url
  register: database_url
  no_log: true
"""

RETURN = r"""
exists:
  description: Whether the parameter exists.
  returned: always
  type: bool
value:
  description: The parameter's value (decrypted when O(decrypt)); empty when it does not exist.
  returned: always
  type: str
type:
  description: The parameter's type (V(String), V(StringList), V(SecureString)); empty when it does not exist.
  returned: always
  type: str
version:
  description: The parameter's version; 0 when it does not exist.
  returned: always
  type: int
"""

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.ec2_fleet.fleet.plugins.module_utils.fleet_aws import aws_errors  # noqa: E402


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "decrypt": {"type": "bool", "default": True},
            "on_missing": {"type": "str", "choices": ["error", "skip"], "default": "error"},
        },
        supports_check_mode=True,
    )
    name = module.params["name"]
    client = module.client("ssm")
    try:
        parameter = client.get_parameter(Name=name, WithDecryption=module.params["decrypt"])["Parameter"]
    except is_boto3_error_code("ParameterNotFound"):
        if module.params["on_missing"] == "error":
            module.fail_json(msg=f"SSM parameter {name} does not exist")
        module.exit_json(changed=False, exists=False, value="", type="", version=0)
    except aws_errors() as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Unable to read SSM parameter {name}")
    module.exit_json(
        changed=False,
        exists=True,
        value=parameter["Value"],
        type=parameter["Type"],
        version=parameter["Version"],
    )


if __name__ == "__main__":
    main()
