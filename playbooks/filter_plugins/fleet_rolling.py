"""Filters of the rolling playbooks: the batch plan (rolling_update.yml, rollback.yml)."""

from __future__ import annotations

import math
import re

from ansible.errors import AnsibleFilterError

_PERCENT = re.compile(r"^\s*([0-9]{1,3})\s*%\s*$")


def _batch_size(step, total: int) -> int:
    """One step of rolling_batch as a host count: N, "N" or "N%" (of every host, at least 1), as `serial`."""
    if isinstance(step, bool):
        raise AnsibleFilterError(f"rolling_batch: {step!r} is not a count or a percentage")
    if isinstance(step, int):
        if step < 1:
            raise AnsibleFilterError(f"rolling_batch: a count must be 1 or more (got {step})")
        return step
    text = str(step).strip()
    if text.isdigit():
        return _batch_size(int(text), total)
    match = _PERCENT.match(text)
    if not match or not 1 <= int(match.group(1)) <= 100:
        raise AnsibleFilterError(
            f"rolling_batch: {step!r} is not a count (1, 2, ...) or a percentage (1%-100%); "
            'give one of them, or a list for a canary such as [1, "50%", "100%"]'
        )
    return max(1, math.floor(total * int(match.group(1)) / 100))


def rolling_batches(hosts, spec=1, zones=None) -> list[list[str]]:
    """Split hosts into batches the way `serial` does: each step in turn, the last one repeated.

    spec: a count, a percentage ("25%") or a list of them (a canary: [1, "50%", "100%"]).
    zones: optional {host: availability zone}: hosts go zone by zone (sorted, stable within a zone)
    and no batch spans two zones.
    """
    hosts = list(hosts)
    steps = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    if not steps:
        raise AnsibleFilterError("rolling_batch: an empty list; give a count, a percentage or a non-empty list")
    sizes = [_batch_size(step, len(hosts)) for step in steps]
    if zones:
        groups: dict[str, list[str]] = {}
        for host in hosts:
            groups.setdefault(str(zones.get(host, "")), []).append(host)
        groups_in_order = [groups[zone] for zone in sorted(groups)]
    else:
        groups_in_order = [hosts]
    batches: list[list[str]] = []
    step = 0
    for group in groups_in_order:
        start = 0
        while start < len(group):
            size = sizes[min(step, len(sizes) - 1)]
            batches.append(group[start:start + size])
            start += size
            step += 1
    return batches


class FilterModule:
    def filters(self):
        return {"rolling_batches": rolling_batches}
