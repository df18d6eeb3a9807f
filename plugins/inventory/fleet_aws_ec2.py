# Copyright: ec2-fleet. GNU General Public License v3.0+ (like amazon.aws, which this extends).
"""amazon.aws.aws_ec2 for fleets of hundreds or thousands of instances (see DOCUMENTATION)."""
# Ansible plugins keep DOCUMENTATION before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_aws_ec2
short_description: EC2 inventory source for large fleets (amazon.aws.aws_ec2 with fewer host variables)
description:
  - The C(amazon.aws.aws_ec2) inventory, same options and results, with three changes that keep
    C(ansible-inventory) and every playbook's start fast with a thousand instances
    (C(bench/README.md), inventory at scale).
  - O(hostvars_include) keeps only the named instance attributes as host variables (C(--list)
    prints each host's variables; the full description is about 13 kB per instance). O(compose),
    O(groups) and O(keyed_groups) still see every attribute.
  - A O(compose) or O(keyed_groups) expression that is a plain dotted name (V(tags.Role),
    V(placement.availability_zone)) is read from the instance's attributes without compiling a
    Jinja expression per host; anything else is templated as before.
  - O(keyed_groups) see the instance's attributes and the O(compose) results, not every variable
    the host has collected so far.
  - The file must end with C(aws_ec2.yml) or C(aws_ec2.yaml).
extends_documentation_fragment:
  - inventory_cache
  - constructed
  - amazon.aws.boto3
  - amazon.aws.common.plugins
  - amazon.aws.region.plugins
  - amazon.aws.assume_role.plugins
options:
  hostvars_include:
    description:
      - Instance attributes (snake_case, as C(amazon.aws.aws_ec2) names them, such as V(instance_id),
        V(private_ip_address), V(placement), V(tags)) to keep as host variables. Empty keeps all.
      - Compose results are always kept.
    type: list
    elements: str
    default: []
  # The options of amazon.aws.aws_ec2 (10.x), unchanged; see its documentation.
  regions:
    description: [Regions to describe instances in; empty means all.]
    type: list
    elements: str
    default: []
  hostnames:
    description: [Host name preferences, as in amazon.aws.aws_ec2.]
    type: list
    elements: raw
    default: []
    suboptions:
      name:
        description: [Name of the host.]
        type: str
        required: true
      prefix:
        description: [Prefix to prepend to the name.]
        type: str
        default: ''
        required: false
      separator:
        description: [Separator between prefix and name.]
        type: str
        default: _
        required: false
  allow_duplicated_hosts:
    description: [As in amazon.aws.aws_ec2.]
    type: bool
    default: false
  filters:
    description: [describe-instances filters.]
    type: dict
    default: {}
  include_filters:
    description: [As in amazon.aws.aws_ec2.]
    type: list
    elements: dict
    default: []
  exclude_filters:
    description: [As in amazon.aws.aws_ec2.]
    type: list
    elements: dict
    default: []
  strict_permissions:
    description: [As in amazon.aws.aws_ec2.]
    type: bool
    default: true
  use_contrib_script_compatible_sanitization:
    description: [As in amazon.aws.aws_ec2.]
    type: bool
    default: false
  use_contrib_script_compatible_ec2_tag_keys:
    description: [As in amazon.aws.aws_ec2.]
    type: bool
    default: false
  hostvars_prefix:
    description: [As in amazon.aws.aws_ec2.]
    type: str
  hostvars_suffix:
    description: [As in amazon.aws.aws_ec2.]
    type: str
  use_ssm_inventory:
    description: [As in amazon.aws.aws_ec2.]
    type: bool
    default: false
  route53_enabled:
    description: [As in amazon.aws.aws_ec2.]
    type: bool
    default: false
  route53_hostnames:
    description: [As in amazon.aws.aws_ec2.]
    type: list
    elements: str
    default: []
  route53_excluded_zones:
    description: [As in amazon.aws.aws_ec2.]
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
# inventories/ENV/aws_ec2.yml
plugin: ec2_fleet.fleet.fleet_aws_ec2
regions: [eu-west-1]
filters:
  tag:Environment: production
hostvars_include: [instance_id, private_ip_address, placement, tags]
keyed_groups:
  - key: tags.Role
    prefix: role
"""

import re
from functools import cache
from typing import Any

from ansible.module_utils.common.dict_transformations import _camel_to_snake
from ansible_collections.amazon.aws.plugins.inventory.aws_ec2 import InventoryModule as AwsEc2InventoryModule
from ansible_collections.amazon.aws.plugins.inventory.aws_ec2 import _prepare_host_vars

# A dotted name of identifiers: the only expressions read without Jinja.
_PLAIN_NAME = re.compile(r"^\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*$")
_MISSING = object()
# Attributes amazon.aws.aws_ec2 always reads while preparing a host's variables.
_ALWAYS = frozenset({"placement", "tags"})


@cache
def _snake(name: str) -> str:
    return _camel_to_snake(name)


def _plain_name(expression: Any) -> str | None:
    match = _PLAIN_NAME.match(expression) if isinstance(expression, str) else None
    return match.group(1) if match else None


def _lookup_plain_name(expression: Any, variables: dict) -> Any:
    """The value a plain dotted name points at in nested dicts, or _MISSING (then Jinja decides)."""
    name = _plain_name(expression)
    if name is None:
        return _MISSING
    value: Any = variables
    for part in name.split("."):
        # A name that is also a dict method (items, keys, ...) means the method in Jinja: leave it to Jinja.
        if not isinstance(value, dict) or part not in value or hasattr(dict, part):
            return _MISSING
        value = value[part]
    return value


class InventoryModule(AwsEc2InventoryModule):
    NAME = "ec2_fleet.fleet.fleet_aws_ec2"

    def _needed_attributes(self) -> frozenset[str] | None:
        """Instance attributes (snake_case) the host variables and expressions need; None: all of them."""
        include = self.get_option("hostvars_include") or []
        if not include:
            return None
        expressions = list((self.get_option("compose") or {}).values())
        expressions += [keyed.get("key") for keyed in self.get_option("keyed_groups") or [] if isinstance(keyed, dict)]
        if self.get_option("groups"):
            return None  # conditionals: any attribute may be used
        names = [_plain_name(expression) for expression in expressions]
        if None in names:
            return None  # a real Jinja expression: any attribute may be used
        return frozenset(include) | {name.split(".")[0] for name in names} | _ALWAYS

    def _compose(self, template, variables, disable_lookups=...):
        value = _lookup_plain_name(template, variables)
        if value is not _MISSING:
            return value
        return super()._compose(template, variables)

    def iter_entry(self, hosts, hostnames, allow_duplicated_hosts=False, hostvars_prefix=None,
                   hostvars_suffix=None, use_contrib_script_compatible_ec2_tag_keys=False):
        needed = self._needed_attributes()
        for host in hosts:
            if allow_duplicated_hosts:
                hostname_list = self._get_all_hostnames(host, hostnames)
            else:
                hostname_list = [self._get_preferred_hostname(host, hostnames)]
            if not hostname_list or hostname_list[0] is None:
                continue
            # Convert (CamelCase -> snake_case, the costly part) only what is needed.
            attributes = host if needed is None else {k: v for k, v in host.items() if _snake(k) in needed}
            host_vars = _prepare_host_vars(attributes, hostvars_prefix, hostvars_suffix,
                                           use_contrib_script_compatible_ec2_tag_keys)
            for name in hostname_list:
                yield str(name), host_vars

    def _add_hosts(self, hosts, group, hostnames, allow_duplicated_hosts=False, hostvars_prefix=None,
                   hostvars_suffix=None, use_contrib_script_compatible_ec2_tag_keys=False):
        include = {f"{hostvars_prefix or ''}{name}{hostvars_suffix or ''}"
                   for name in self.get_option("hostvars_include") or []}
        strict = self.get_option("strict")
        compose = self.get_option("compose") or {}
        entries = self.iter_entry(
            hosts,
            hostnames,
            allow_duplicated_hosts=allow_duplicated_hosts,
            hostvars_prefix=hostvars_prefix,
            hostvars_suffix=hostvars_suffix,
            use_contrib_script_compatible_ec2_tag_keys=use_contrib_script_compatible_ec2_tag_keys,
        )
        for name, host_vars in entries:
            self.inventory.add_host(name, group=group)
            for key, value in host_vars.items():
                if not include or key in include or key.startswith("ec2_tag_"):
                    self.inventory.set_variable(name, key, value)
            self._set_composite_vars(compose, host_vars, name, strict=strict)
            # What upstream's fetch_hostvars adds: the compose results (the attributes are in host_vars).
            host = self.inventory.get_host(name)
            variables = {**host_vars, **{key: host.vars[key] for key in compose if key in host.vars}}
            self._add_host_to_composed_groups(self.get_option("groups"), variables, name, strict=strict,
                                              fetch_hostvars=False)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, name, strict=strict,
                                           fetch_hostvars=False)
