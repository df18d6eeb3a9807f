# Copyright: ec2-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin: give the role's elasticache_replication_group module the group/aws module_defaults.

`module_defaults: {group/aws: {...}}` only reaches modules listed in a collection's action group, and a
module in a role's library/ is in none. This plugin asks ansible-core which defaults an amazon.aws (and a
community.aws) module of that group would receive for this very task, keeps only the connection settings
(endpoint_url, region, credentials, profile, CA bundle, ...), and adds those the task does not set itself
before running the module. Precedence stays the one of the amazon.aws modules: task arguments, then
module_defaults (for this module's own name, then group/aws), then the AWS_* environment variables that
the module reads itself.

ansible-core 2.19 exposes the lookup as `_apply_action_arg_defaults` (the same call its own `package`,
`service` and `gather_facts` action plugins make); older cores named it `get_action_args_with_defaults`.
"""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

try:  # ansible-core >= 2.19
    from ansible.executor.module_common import _apply_action_arg_defaults
except ImportError:  # pragma: no cover - ansible-core < 2.19
    _apply_action_arg_defaults = None
    from ansible.executor.module_common import get_action_args_with_defaults

# Modules of the aws action group whose defaults are borrowed; later ones win.
GROUP_MEMBERS = ("amazon.aws.ec2_vpc_net", "community.aws.elasticache_subnet_group")
# Connection options of amazon.aws modules, canonical name -> aliases.
CONNECTION_OPTIONS = {
    "access_key": ("aws_access_key_id", "aws_access_key"),
    "secret_key": ("aws_secret_access_key", "aws_secret_key"),
    "session_token": ("aws_session_token",),
    "profile": ("aws_profile",),
    "endpoint_url": ("aws_endpoint_url",),
    "region": ("aws_region",),
    "validate_certs": (),
    "aws_ca_bundle": (),
    "aws_config": (),
    "debug_botocore_endpoint_logs": (),
}
MODULE = "elasticache_replication_group"


class ActionModule(ActionBase):
    """Run the module with the connection settings of group/aws filled in."""

    _supports_check_mode = True
    _supports_async = False

    def _group_defaults(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for action in GROUP_MEMBERS:
            if _apply_action_arg_defaults is not None:
                found = _apply_action_arg_defaults(action, self._task, {}, self._templar)
            else:  # pragma: no cover
                found = get_action_args_with_defaults(
                    action, {}, self._task.module_defaults, self._templar,
                    action_groups=self._task._parent._play._action_groups,
                )
            merged.update(found)
        return merged

    def run(self, tmp: str | None = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp  # not used since Ansible 2.5
        args = dict(self._task.args)
        defaults = self._group_defaults()
        for option, aliases in CONNECTION_OPTIONS.items():
            if any(name in args for name in (option, *aliases)):
                continue
            for name in (option, *aliases):
                if name in defaults and defaults[name] is not None:
                    args[option] = defaults[name]
                    break
        result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
        return result
