"""The PNG timeline of a load report: requests/s, latency, and one lane per instance (release and balancer state)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

RELEASE_COLOURS = ("#1f77b4", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f", "#aec7e8")
LB_STYLES: dict[str, dict[str, Any]] = {
    "healthy": {"facecolor": "#66bb6a", "hatch": None},
    "initial": {"facecolor": "#90caf9", "hatch": "//"},
    "draining": {"facecolor": "#ffb74d", "hatch": "\\\\"},
    "unhealthy": {"facecolor": "#e57373", "hatch": "xx"},
    "unused": {"facecolor": "#bdbdbd", "hatch": ".."},
    "unavailable": {"facecolor": "#9e9e9e", "hatch": "++"},
    "absent": {"facecolor": "#ffffff", "hatch": "--"},
}


def _lb_segments(report: dict[str, Any]) -> dict[str, list[tuple[float, float, str]]]:
    """(start, width, state) per target, each sample's state lasting until the next sample."""
    samples = report.get("target_health") or []
    end = max(report["duration_s"], samples[-1]["t"] if samples else 0.0)
    segments: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    seen: set[str] = set()
    for index, sample in enumerate(samples):
        until = (
            samples[index + 1]["t"] if index + 1 < len(samples) else min(end, sample["t"] + report["poll_interval_s"])
        )
        states = dict(sample["states"])
        for target in seen - states.keys():
            states[target] = "absent"
        seen |= states.keys()
        for target, state in states.items():
            runs = segments[target]
            if runs and runs[-1][2] == state and abs(runs[-1][0] + runs[-1][1] - sample["t"]) < 1e-6:
                runs[-1] = (runs[-1][0], until - runs[-1][0], state)
            else:
                runs.append((sample["t"], max(until - sample["t"], 0.05), state))
    return segments


def plot(report: dict[str, Any], path: str | Path) -> None:
    """Three panels over time: requests/s (failed in red), latency p50/p99, one lane per instance with
    the release it answered with (lower bar) and its load-balancer state (upper bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    series = report["series"]
    seconds = [s["t"] for s in series]
    ok = [s["ok"] for s in series]
    failed = [s["failed"] for s in series]
    unsent = [s.get("unsent", 0) for s in series]
    timeline = report.get("release_timeline", {})
    lb = _lb_segments(report)
    lanes = sorted(set(timeline) | set(lb))
    end = max(report["duration_s"], 1.0)

    fig, (ax_rate, ax_lat, ax_lanes) = plt.subplots(
        3,
        1,
        sharex=True,
        figsize=(14, 7.5 + 0.55 * max(len(lanes), 1)),
        gridspec_kw={"height_ratios": [3, 2, max(1.6, 0.75 * max(len(lanes), 1))]},
    )
    lat = report["latency_ms"]
    p99 = f"{lat['p99']} ms" if lat["p99"] is not None else "n/a"
    not_sent = f", {report['unsent']} NOT SENT" if report.get("unsent") else ""
    fig.suptitle(
        f"{report['requests']} requests, {report['failed']} failed{not_sent}, p99 {p99}  -  {report['target']}",
        fontsize=15,
        fontweight="bold",
        color="#b71c1c" if report["failed"] or report.get("unsent") else "#1b5e20",
    )
    kinds = ", ".join(f"{k}: {n}" for k, n in report["failures_by_kind"].items() if n) or "no failures"
    outage = (
        f"  |  max targets out of service: {report['max_targets_out_of_service']}"
        if "max_targets_out_of_service" in report
        else ""
    )
    fig.text(
        0.5,
        0.945,
        f"started {report['started_at']}  |  {report['duration_s']:.1f} s at {report['rate']:g}/s asked "
        f"({report['achieved_rate']:.1f}/s sent)  |  {kinds}{outage}",
        ha="center",
        fontsize=10,
    )

    # Requests per second: ok stacked under failed; seconds with failures shaded red.
    ax_rate.bar(seconds, ok, width=1.0, align="edge", color="#66bb6a", label="ok", zorder=2)
    ax_rate.bar(seconds, failed, bottom=ok, width=1.0, align="edge", color="#d32f2f", label="failed", zorder=2)
    if any(unsent):
        ax_rate.bar(seconds, unsent, bottom=[o + f for o, f in zip(ok, failed, strict=True)], width=1.0,
                    align="edge", color="#9e9e9e", hatch="//", label="not sent (workers busy)", zorder=2)
    ax_rate.axhline(report["rate"], color="#424242", linestyle=":", linewidth=1, label=f"asked {report['rate']:g}/s")
    label_failures = sum(1 for count in failed if count) <= 60  # counts above the bars, unless too many
    for second, count, base in zip(seconds, failed, ok, strict=True):
        if count:
            ax_rate.axvspan(second, second + 1, color="#d32f2f", alpha=0.15, linewidth=0, zorder=0)
            if label_failures:
                ax_rate.text(
                    second + 0.5, base + count, str(count), ha="center", va="bottom", color="#b71c1c", fontsize=8
                )
    ax_rate.set_ylabel("requests / s")
    ax_rate.set_ylim(0, max([report["rate"], *(o + f + u for o, f, u in zip(ok, failed, unsent, strict=True))]) * 1.25)
    ax_rate.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=9, frameon=False)
    ax_rate.grid(axis="y", alpha=0.3)

    # Latency of ok requests, per second.
    mids = [s["t"] + 0.5 for s in series]
    p50s = [s["p50_ms"] if s["p50_ms"] is not None else math.nan for s in series]
    p99s = [s["p99_ms"] if s["p99_ms"] is not None else math.nan for s in series]
    ax_lat.plot(mids, p50s, color="#1565c0", marker=".", linewidth=1.2, label="p50")
    ax_lat.plot(mids, p99s, color="#ef6c00", marker=".", linewidth=1.2, label="p99")
    finite = [v for v in p50s + p99s if not math.isnan(v) and v > 0]
    if finite and max(finite) / min(finite) > 50:
        ax_lat.set_yscale("log")
    else:
        ax_lat.set_ylim(bottom=0)
    ax_lat.set_ylabel("latency of ok (ms)")
    ax_lat.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=9, frameon=False)
    ax_lat.grid(alpha=0.3)

    # One lane per instance: release (lower bar) and load-balancer state (upper bar).
    releases: list[str] = []
    for instance in lanes:
        for segment in timeline.get(instance, []):
            if segment["release"] not in releases:
                releases.append(segment["release"])
    colour = {rel: RELEASE_COLOURS[i % len(RELEASE_COLOURS)] for i, rel in enumerate(releases)}
    states_seen: list[str] = []
    for lane, instance in enumerate(lanes):
        for segment in timeline.get(instance, []):
            start = segment["first_t"]
            width = max(segment["last_t"] - start, 0.25)
            ax_lanes.broken_barh([(start, width)], (lane + 0.06, 0.4), facecolors=colour[segment["release"]])
            if width > end / 25:
                ax_lanes.text(
                    start + width / 2,
                    lane + 0.26,
                    segment["release"],
                    ha="center",
                    va="center",
                    color="white",
                    fontsize=9,
                    fontweight="bold",
                )
        for start, width, state in lb.get(instance, []):
            style = LB_STYLES.get(state, {"facecolor": "#eeeeee", "hatch": "??"})
            ax_lanes.broken_barh(
                [(start, width)],
                (lane + 0.52, 0.4),
                facecolors=style["facecolor"],
                hatch=style["hatch"],
                edgecolor="#616161",
                linewidth=0.4,
            )
            if state not in states_seen:
                states_seen.append(state)
    ax_lanes.set_ylim(-0.05, max(len(lanes), 1) + 0.05)
    ax_lanes.set_yticks([lane + 0.5 for lane in range(len(lanes))], lanes, fontsize=9)
    ax_lanes.set_title(
        "per instance: release answering (lower bar), load-balancer state (upper bar, hatched = not healthy)",
        fontsize=9,
        loc="left",
    )
    if not lanes:
        ax_lanes.text(
            end / 2,
            0.5,
            "no instance identified (no /version answers, no target health)",
            ha="center",
            va="center",
            color="#757575",
        )
    handles = [Patch(facecolor=colour[rel], label=f"release {rel}") for rel in releases]
    handles += [
        Patch(facecolor=LB_STYLES[s]["facecolor"], hatch=LB_STYLES[s]["hatch"], edgecolor="#616161", label=s)
        for s in states_seen
        if s in LB_STYLES
    ]
    if handles:
        ax_lanes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    ax_lanes.set_xlabel("seconds since start")
    ax_lanes.set_xlim(0, end)

    command = report.get("command")
    if command and command.get("started_t") is not None:
        marks = [(command["started_t"], "command start")]
        if command.get("ended_t") is not None:
            marks.append((command["ended_t"], f"command end (rc {command['rc']})"))
        for t, label in marks:
            for ax in (ax_rate, ax_lat, ax_lanes):
                ax.axvline(t, color="#283593", linestyle="--", linewidth=1.3)
            ax_rate.text(t, ax_rate.get_ylim()[1], f" {label}", color="#283593", fontsize=9, va="top", ha="left")

    fig.tight_layout(rect=(0, 0, 0.9, 0.935))
    fig.savefig(path, dpi=100)
    plt.close(fig)
