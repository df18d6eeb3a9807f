# Copyright: ec2-fleet. GNU General Public License v3.0+
"""Action of ec2_fleet.fleet.fleet_files: render on the control node, stat in one call, send only what differs.

The module's documentation (plugins/modules/fleet_files.py) describes the options. This side:

1. renders every item's template (as ansible.builtin.template does, with the item's own
   vars on top of the task's), reads its role file or takes its content, and computes the SHA-1;
2. runs the module once with the checksums only (and the O(read) requests): it reports what
   differs on the host;
3. unless nothing differs or in check mode, runs the module again with the content of the
   differing items only, which writes them (validated, atomically);
4. returns one result per item, a diff per changed item under --diff, and notifies the
   handlers of the items that changed (and only those).
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template

try:  # The variables ansible.builtin.template gives a template (ansible_managed, template_path...).
    from ansible._internal._templating._template_vars import generate_ansible_template_vars
except ImportError:  # pragma: no cover - older ansible-core
    from ansible.template import generate_ansible_template_vars  # type: ignore[attr-defined,no-redef]

MODULE = "ec2_fleet.fleet.fleet_files"
USER_KEYS = {"path", "state", "template", "src", "content", "vars", "mode", "owner", "group", "validate", "notify",
             "diff", "label", "requires"}
STATES = ("file", "directory", "link", "absent")
RESULT_KEYS = ("path", "state", "changed", "differences", "skipped", "label", "notify")
READ_KEYS = ("packages", "services", "users", "groups", "sysctl", "pid1_nofile_hard", "releases", "warnings")
# What ansible.builtin.template renders with, so a file written by either has the same checksum.
TEMPLATE_OVERRIDES = {"trim_blocks": True, "lstrip_blocks": False, "newline_sequence": "\n"}


def check_item(item: Any, index: int) -> str | None:
    """Why an item of O(files) is wrong, or None."""
    if not isinstance(item, dict):
        return f"files[{index}] must be a dict, got {type(item).__name__}"
    path = item.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        return f"files[{index}].path must be an absolute path, got {path!r}"
    unknown = sorted(set(item) - USER_KEYS)
    if unknown:
        return f"files[{index}] ({path}): unknown keys {unknown}; allowed: {sorted(USER_KEYS)}"
    state = item.get("state", "file")
    if state not in STATES:
        return f"files[{index}] ({path}): state must be one of {', '.join(STATES)}, got {state!r}"
    sources = [key for key in ("template", "src", "content") if item.get(key) is not None]
    if state == "file" and len(sources) != 1:
        return f"files[{index}] ({path}): a file needs exactly one of template, src or content, got {sources or 'none'}"
    if state == "link" and (not item.get("src") or item.get("template") is not None or item.get("content") is not None):
        return f"files[{index}] ({path}): a link needs src (its target) and no template or content"
    if state in ("directory", "absent") and sources:
        return f"files[{index}] ({path}): a {state} takes no {', '.join(sources)}"
    notify = item.get("notify", [])
    if not isinstance(notify, list) or not all(isinstance(n, str) for n in notify):
        return f"files[{index}] ({path}): notify must be a list of handler names"
    return None


def module_item(item: dict, data: bytes | None) -> dict:
    """The item as the host side gets it: no template, vars or content; the SHA-1 of a file's content."""
    out = {key: item[key] for key in ("path", "state", "mode", "owner", "group", "validate", "notify", "diff", "label",
                                      "requires") if item.get(key) is not None}
    out["state"] = item.get("state", "file")
    if out["state"] == "link":
        out["src"] = item["src"]
    if data is not None:
        out["checksum"] = hashlib.sha1(data).hexdigest()
    return out


def item_diff(item: dict, found: dict, after_text: str | None) -> dict:
    """One --diff entry for a changed item: the content when it changed and is text, else the attributes."""
    path = item["path"]
    if "content" in found["differences"] and found.get("before_content") is not None and after_text is not None:
        return {"before_header": path, "after_header": path, "before": found["before_content"], "after": after_text}
    after = {"state": item.get("state", "file")}
    for key in ("mode", "owner", "group"):
        if item.get(key) is not None:
            after[key] = item[key]
    if item.get("state") == "link":
        after["src"] = item["src"]
    # What is there, shown for the keys the item manages.
    before = {key: value for key, value in (found.get("before") or {"state": "absent"}).items() if key in after}
    if "content" in found["differences"]:
        before = {**before, "content": "(not shown)"}
        after["content"] = "(changed)"
    return {"before_header": path, "after_header": path,
            "before": {"path": path, **before}, "after": {"path": path, **after}}


def failure(module_result: dict) -> dict:
    """A failed module run's result without its invocation (the items, maybe with contents)."""
    return {key: value for key, value in module_result.items() if key not in ("invocation", "results")}


def notifications(results: list[dict]) -> list[str]:
    """The handlers of the items that changed, each once, in order."""
    out: list[str] = []
    for result in results:
        if result["changed"]:
            out.extend(name for name in result.get("notify", []) if name not in out)
    return out


class ActionModule(ActionBase):
    """Render, compare and write a role's files with at most two module runs per host."""

    TRANSFERS_FILES = False
    _requires_connection = True

    def _render(self, item: dict, task_vars: dict) -> bytes:
        """A template rendered as ansible.builtin.template would render it, with the item's vars."""
        source = self._find_needle("templates", item["template"])
        searchpath = list(task_vars.get("ansible_search_path", []))
        searchpath.extend([self._loader._basedir, os.path.dirname(source)])
        searchpath = [p for base in searchpath for p in (os.path.join(base, "templates"), base)]
        template_vars = dict(task_vars)
        template_vars.update(generate_ansible_template_vars(
            path=item["template"], fullpath=source, dest_path=item["path"],
            include_ansible_managed="ansible_managed" not in task_vars,
        ))
        template_vars.update(item.get("vars") or {})
        templar = self._templar.copy_with_new_env(searchpath=searchpath, available_variables=template_vars)
        text = templar.template(trust_as_template(self._loader.get_text_file_contents(source)),
                                escape_backslashes=False, overrides=TEMPLATE_OVERRIDES)
        return ("" if text is None else str(text)).encode("utf-8")

    def _content(self, item: dict, task_vars: dict) -> bytes | None:
        if item.get("state", "file") != "file":
            return None
        try:
            if item.get("template") is not None:
                return self._render(item, task_vars)
            if item.get("src") is not None:
                with open(self._find_needle("files", item["src"]), "rb") as handle:
                    return handle.read()
        except AnsibleError as exc:
            raise AnsibleActionFail(f"{item['path']}: {exc}") from exc
        return str(item["content"]).encode("utf-8")

    def run(self, tmp: Any = None, task_vars: dict | None = None) -> dict:
        """Compare every item in one call, write the differing ones in a second call, report per item."""
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        try:
            files = self._task.args.get("files") or []
            read = self._task.args.get("read") or {}
            if not isinstance(files, list) or not isinstance(read, dict):
                raise AnsibleActionFail("files must be a list and read a dict")
            for index, item in enumerate(files):
                problem = check_item(item, index)
                if problem:
                    raise AnsibleActionFail(problem)
            contents = [self._content(item, task_vars) for item in files]
            wanted = [module_item(item, data) for item, data in zip(files, contents, strict=True)]

            found = self._execute_module(MODULE, module_args={"files": wanted, "read": read, "apply": False},
                                         task_vars=task_vars)
            if found.get("failed"):
                return {**result, **failure(found)}
            differing = [i for i, r in enumerate(found["results"]) if r["changed"]]
            if differing and not self._task.check_mode:
                send = [{**wanted[i], "data": base64.b64encode(contents[i]).decode("ascii")} if contents[i] is not None
                        else wanted[i] for i in differing]
                written = self._execute_module(MODULE, module_args={"files": send, "apply": True}, task_vars=task_vars)
                if written.get("failed"):
                    # The arguments held the files' contents (maybe secrets): never returned.
                    return {**result, **failure(written)}

            results = [{key: r.get(key) for key in RESULT_KEYS} for r in found["results"]]
            result.update({key: value for key, value in found.items() if key in READ_KEYS})
            result["results"] = results
            result["changed"] = bool(differing)
            if differing and self._task.diff:
                result["diff"] = [
                    item_diff(files[i], found["results"][i], contents[i].decode("utf-8", "replace")
                              if contents[i] is not None else None)
                    for i in differing if files[i].get("diff", True)
                ]
            handlers = notifications(results)
            if handlers:
                # Read by the strategy like a task's own notify; only set when the task has none.
                result["_ansible_notify"] = handlers
            return result
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
