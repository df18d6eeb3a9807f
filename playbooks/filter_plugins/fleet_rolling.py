"""Filters of the rolling playbooks: the batch plan (rolling_update.yml, rollback.yml) and the run's
summary in SSM (written by tasks/rolling_report.yml, read by rolling_lock.yml and verify.yml)."""

from __future__ import annotations

import json
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


# A Standard-tier SSM parameter holds at most 4 KB. The summary stays below it at any fleet size:
# counts of every status, the first problem hosts that fit, how many there were, and where the
# full audit record is.
SUMMARY_LIMIT = 4096
# Host statuses that need no attention.
_FINE = {"updated", "unchanged", "not updated", "reverted"}


def rolling_summary(run: dict, hosts: list, record: str = "", limit: int = SUMMARY_LIMIT) -> str:
    """The run's summary as JSON of at most `limit` bytes (UTF-8), valid at any fleet size.

    run: run_id, action, version, who, started, result (longer strings are cut, never the JSON).
    hosts: the per-host results ({host, status, ...}). record: where the full audit record is.
    """
    counts: dict[str, int] = {}
    for host in hosts:
        status = str(host.get("status", "unknown"))
        counts[status] = counts.get(status, 0) + 1
    problems = [str(h.get("host", "")) for h in hosts if str(h.get("status", "unknown")) not in _FINE]
    fields = ("run_id", "action", "version", "who", "started", "result")
    summary: dict = {key: str(run.get(key, "") or "")[:200] for key in fields}
    summary.update({
        "hosts": len(hosts),
        "counts": counts,
        "problems": problems,
        "problems_total": len(problems),
        "record": str(record)[:512],
    })

    def encoded() -> str:
        return json.dumps(summary, separators=(",", ":"), ensure_ascii=False)

    # Keep the longest head of the problem list that fits (problems_total keeps the true number).
    text = encoded()
    if len(text.encode()) > limit:
        low, high = 0, len(problems)  # a head of `low` names fits; one of `high` may not
        while low < high:
            middle = (low + high + 1) // 2
            summary["problems"] = problems[:middle]
            if len(encoded().encode()) <= limit:
                low = middle
            else:
                high = middle - 1
        summary["problems"] = problems[:low]
        text = encoded()
    if len(text.encode()) > limit:  # only with absurd statuses: keep the counts' total
        summary["counts"] = {"total": len(hosts)}
        text = encoded()
    return text


def rolling_summary_parse(text) -> dict:
    """A summary read back from SSM as a dict; {} when there is none, with `unreadable` when it is not JSON.

    Records written before the summary was kept valid may have been cut mid-JSON: readers show
    that instead of failing.
    """
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {"unreadable": f"not valid JSON ({len(str(text))} characters)"}
    return value if isinstance(value, dict) else {"unreadable": "not a JSON object"}


class FilterModule:
    def filters(self):
        return {
            "rolling_batches": rolling_batches,
            "rolling_summary": rolling_summary,
            "rolling_summary_parse": rolling_summary_parse,
        }
