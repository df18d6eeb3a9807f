"""A load run's report: totals, failures by kind, latency, the per-second series, who answered, the balancer.

A request is planned when its slot falls due (open loop: slot k at start + k/rate); it is sent when a
worker was free, else it counts as `unsent`. A load test asserts `sent == planned` beside `failed == 0`:
an unsent request is one the service was never asked, so "0 failed" alone could hide a stall.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ec2_fleet_dev.loadgen.plot import plot

FAILURE_KINDS = ("connect_refused", "connection_reset", "timeout", "http_5xx", "http_4xx", "bad_body", "other")
MAX_FAILURE_DETAILS = 50


@dataclass(slots=True)
class Result:
    """One finished request; times in seconds since the load started."""

    seq: int
    t: float
    latency_s: float
    kind: str | None  # None = ok, else one of FAILURE_KINDS
    status: int | None
    instance: str | None
    release: str | None
    detail: str = ""


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(0, math.ceil(pct / 100 * len(sorted_values)) - 1)
    return sorted_values[rank]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def build_report(
    run: dict[str, Any],
    results: list[Result],
    sent: int,
    unsent: list[float],
    duration: float,
    health: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The report of one run. run: target, rate, started_at, stopped_by, bounds, tls_ca_file, keep_alive,
    stale_connection_retries, expect, command; unsent: the due time of each request not sent; health:
    the target-health keys (target_health, max_targets_out_of_service, ...) when a target group was polled,
    and the alarm keys (alarm_names, alarm_states, alarm_transitions, alarm_errors, ...) when alarms were."""
    results = sorted(results, key=lambda r: r.t)
    ok = [r for r in results if r.kind is None]
    failed = [r for r in results if r.kind is not None]
    latencies = sorted(r.latency_s for r in ok)
    by_kind = dict.fromkeys(FAILURE_KINDS, 0)
    by_kind.update(Counter(r.kind for r in failed if r.kind))
    status_codes = Counter(str(r.status) for r in results if r.status is not None)

    answered_by: dict[str, Counter[str]] = defaultdict(Counter)
    timeline: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in ok:
        if r.instance is None:
            continue
        release = r.release or "unknown"
        answered_by[r.instance][release] += 1
        segments = timeline[r.instance]
        if segments and segments[-1]["release"] == release:
            segments[-1]["last_t"] = round(r.t, 3)
            segments[-1]["count"] += 1
        else:
            segments.append({"release": release, "first_t": round(r.t, 3), "last_t": round(r.t, 3), "count": 1})

    report: dict[str, Any] = {
        "target": run["target"],
        "rate": run["rate"],
        "started_at": run["started_at"],
        "duration_s": round(duration, 3),
        "planned": sent + len(unsent),
        "sent": sent,
        "unsent": len(unsent),
        "requests": len(results),
        "ok": len(ok),
        "failed": len(failed),
        "achieved_rate": round(len(results) / duration, 2) if duration > 0 else 0.0,
        "unfinished": sent - len(results),
        "stopped_by": run["stopped_by"],
        "bounds": run["bounds"],
        "tls_ca_file": run["tls_ca_file"],
        "keep_alive": run["keep_alive"],
        "stale_connection_retries": run["stale_connection_retries"],
        "expect": run["expect"],
        "failures_by_kind": by_kind,
        "status_codes": dict(sorted(status_codes.items())),
        "latency_ms": {
            "p50": _ms(percentile(latencies, 50)),
            "p95": _ms(percentile(latencies, 95)),
            "p99": _ms(percentile(latencies, 99)),
            "max": _ms(latencies[-1] if latencies else None),
        },
        "latency_by_release": _latency_by_release(ok),
        "series": _series(results, unsent, duration),
        "answered_by": {i: dict(sorted(c.items())) for i, c in sorted(answered_by.items())},
        "release_timeline": dict(sorted(timeline.items())),
        "failures": [
            {"t": round(r.t, 3), "kind": r.kind, "detail": r.detail} for r in failed[:MAX_FAILURE_DETAILS]
        ],
    }
    if run.get("command") is not None:
        report["command"] = run["command"]
    if health is not None:
        report.update(health)
    return report


def _latency_by_release(ok: list[Result]) -> dict[str, dict[str, Any]]:
    """release -> {count, p50, p99, max} of its ok answers in ms (a slow release next to the one it replaces)."""
    by_release: dict[str, list[float]] = defaultdict(list)
    for r in ok:
        if r.release:
            by_release[r.release].append(r.latency_s)
    out = {}
    for release, latencies in sorted(by_release.items()):
        latencies.sort()
        out[release] = {"count": len(latencies), "p50": _ms(percentile(latencies, 50)),
                        "p99": _ms(percentile(latencies, 99)), "max": _ms(latencies[-1])}
    return out


def _series(results: list[Result], unsent: list[float], duration: float) -> list[dict[str, Any]]:
    """One entry per second since the start; every request counts in the second it was due (sent or not)."""
    last = max([int(r.t) for r in results] + [int(t) for t in unsent] + [math.ceil(duration) - 1, 0])
    buckets: list[list[Result]] = [[] for _ in range(last + 1)]
    for r in results:
        buckets[int(r.t)].append(r)
    unsent_per_second = Counter(int(t) for t in unsent)
    series = []
    for second, bucket in enumerate(buckets):
        ok = [r for r in bucket if r.kind is None]
        latencies = sorted(r.latency_s for r in ok)
        entry: dict[str, Any] = {
            "t": second,
            "sent": len(bucket),
            "ok": len(ok),
            "failed": len(bucket) - len(ok),
            "p50_ms": _ms(percentile(latencies, 50)),
            "p99_ms": _ms(percentile(latencies, 99)),
            "by_release": dict(sorted(Counter(r.release for r in ok if r.release).items())),
            "by_instance": dict(sorted(Counter(r.instance for r in ok if r.instance).items())),
        }
        if unsent_per_second[second]:
            entry["unsent"] = unsent_per_second[second]
        series.append(entry)
    return series


def delivery(report: dict[str, Any]) -> str:
    """What was sent against what was planned, for an assertion's message."""
    return (f"{report['sent']} of {report['planned']} planned requests sent ({report['unsent']} not sent: every "
            f"worker busy or the load generator stalled; {report['unfinished']} unfinished at the end)")


def write_report(report: dict[str, Any], json_path: str | Path, png_path: str | Path | None = None) -> None:
    Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
    if png_path is not None:
        plot(report, png_path)


def summary(report: dict[str, Any]) -> str:
    """One paragraph for a person: totals, failures, latency, who answered, the balancer, alarms, the command."""
    lat = report["latency_ms"]
    kinds = ", ".join(f"{k} {n}" for k, n in report["failures_by_kind"].items() if n)
    text = (
        f"loadgen: {report['requests']} requests to {report['target']} in {report['duration_s']:.1f} s "
        f"({report['achieved_rate']:.1f}/s of {report['rate']:g}/s asked): {report['ok']} ok, "
        f"{report['failed']} failed" + (f" ({kinds})" if kinds else "") + "; "
    )
    if lat["p50"] is not None:
        text += f"latency p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms, max {lat['max']} ms; "
    if report["answered_by"]:
        answered = "; ".join(
            f"{instance} ({', '.join(f'{rel}: {n}' for rel, n in releases.items())})"
            for instance, releases in report["answered_by"].items()
        )
        text += f"answered by {answered}; "
    if "max_targets_out_of_service" in report:
        text += (
            f"{len(report['target_health'])} target-health samples, at most "
            f"{report['max_targets_out_of_service']} target(s) out of service"
        )
        if report["target_health_error_count"]:
            text += f", {report['target_health_error_count']} polling errors"
        text += "; "
    if "alarm_states" in report:
        changes = [
            f"{name} {' -> '.join([moves[0]['from'], *(m['to'] for m in moves)])} "
            f"(first at {moves[0]['t']:.1f} s)"
            for name, moves in report["alarm_transitions"].items()
            if moves
        ]
        last = report["alarm_states"][-1]["states"] if report["alarm_states"] else {}
        steady = [f"{name} {last.get(name, 'not found')}" for name, moves in report["alarm_transitions"].items()
                  if not moves]
        text += f"{len(report['alarm_states'])} alarm samples: " + ", ".join(changes + steady)
        if report["alarm_error_count"]:
            text += f", {report['alarm_error_count']} alarm polling errors"
        text += "; "
    command = report.get("command")
    if command:
        text += (
            f"command rc {command['rc']} (ran {command['started_t']:.1f}-{command['ended_t']:.1f} s"
            + (f", terminated: {command['terminated_because']}" if command.get("terminated_because") else "")
            + "); "
        )
    if report["unsent"]:
        text += f"{report['unsent']} of {report['planned']} planned requests NOT SENT (every worker busy); "
    if report["unfinished"]:
        text += f"{report['unfinished']} requests still unfinished at the end; "
    return text + f"stopped by {report['stopped_by']}."
