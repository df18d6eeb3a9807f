"""The PNG timeline of a load report: requests/s, latency, one lane per instance (release and balancer state),
and one band per CloudWatch alarm (its state) when alarms were polled."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

CANARY_COLOUR = "#ffb300"
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
ALARM_COLOURS = {"OK": "#66bb6a", "ALARM": "#d32f2f", "INSUFFICIENT_DATA": "#9e9e9e"}
ALARM_UNKNOWN = "#ffffff"  # no sample yet, the alarm not found, or a state not above
ALARM_LABEL_CHARS = 28


def short_name(name: str, limit: int = ALARM_LABEL_CHARS) -> str:
    """The name, or its start and end around an ellipsis when longer than limit (alarm names share prefixes
    and differ at the end: "ec2-fleet-staging-targets-5xx-share")."""
    if len(name) <= limit:
        return name
    head = (limit - 1) // 2
    return name[:head] + "\u2026" + name[-(limit - 1 - head):]


def alarm_segments(report: dict[str, Any]) -> dict[str, list[tuple[float, float, str | None]]]:
    """(start, width, state) per alarm asked; state None where no sample said (before the first, not found)."""
    names = report.get("alarm_names") or []
    samples = report.get("alarm_states") or []
    end = max(report["duration_s"], samples[-1]["t"] if samples else 0.0)
    interval = report.get("poll_interval_s", 1.0)
    segments: dict[str, list[tuple[float, float, str | None]]] = {name: [] for name in names}
    for name in names:
        runs = segments[name]
        cursor = 0.0
        for index, sample in enumerate(samples):
            until = samples[index + 1]["t"] if index + 1 < len(samples) else min(end, sample["t"] + interval)
            state = sample["states"].get(name)
            if sample["t"] > cursor + 1e-6 and not runs:
                runs.append((cursor, sample["t"] - cursor, None))
            if runs and runs[-1][2] == state:
                runs[-1] = (runs[-1][0], until - runs[-1][0], state)
            else:
                runs.append((sample["t"], max(until - sample["t"], 0.05), state))
            cursor = until
        if cursor < end - 1e-6:
            runs.append((cursor, end - cursor, None))
    return segments


def release_shares(report: dict[str, Any]) -> dict[str, list[float]]:
    """release -> its share (%) of each second's answered requests (ok and failed), releases in the order they
    first answered; {} when fewer than two releases answered (nothing to compare)."""
    releases: list[str] = []
    for spans in report.get("release_timeline", {}).values():
        for span in spans:
            if span["release"] not in releases:
                releases.append(span["release"])
    if len(releases) < 2:
        return {}
    releases.sort(key=lambda rel: min(span["first_t"] for spans in report["release_timeline"].values()
                                      for span in spans if span["release"] == rel))
    shares: dict[str, list[float]] = {rel: [] for rel in releases}
    for second in report["series"]:
        answered = second["ok"] + second["failed"]
        for rel in releases:
            shares[rel].append(100.0 * second["by_release"].get(rel, 0) / answered if answered else math.nan)
    return shares


def _state_at(samples: list[dict[str, Any]], t: float) -> dict[str, str]:
    """The target states of the last sample at or before t ({} before the first)."""
    states: dict[str, str] = {}
    for sample in samples:
        if sample["t"] > t:
            break
        states = sample["states"]
    return states


def canary_group_share(report: dict[str, Any]) -> list[float] | None:
    """Per second, the share (%) of the answered requests that came from the canary target group: answers of
    instances `healthy` or `draining` in it at that second and not `healthy` in the main group (an instance in
    both, while it moves, counts for the main one). None when the canary group was not polled."""
    canary = report.get("canary_target_health")
    if canary is None:
        return None
    main = report.get("target_health") or []
    shares = []
    for second in report["series"]:
        answered = second["ok"] + second["failed"]
        in_canary = _state_at(canary, second["t"] + 0.5)
        in_main = _state_at(main, second["t"] + 0.5)
        ours = sum(n for instance, n in second["by_instance"].items()
                   if in_canary.get(instance) in ("healthy", "draining") and in_main.get(instance) != "healthy")
        shares.append(100.0 * ours / answered if answered else math.nan)
    return shares


def _lb_segments(report: dict[str, Any], key: str = "target_health") -> dict[str, list[tuple[float, float, str]]]:
    """(start, width, state) per target, each sample's state lasting until the next sample."""
    samples = report.get(key) or []
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


def plot(report: dict[str, Any], path: str | Path) -> dict[str, list[str]]:
    """Panels over time: requests/s (failed in red), latency p50/p99, one lane per instance with the
    release it answered with (lower bar) and its load-balancer state (upper bar), and when alarms were
    polled one band per alarm (OK green, ALARM red, INSUFFICIENT_DATA grey, no sample white).

    Returns what was drawn: {"panels": [each panel's y label], "alarm_bands": [each band's label]}."""
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
    alarms = alarm_segments(report)
    shares = release_shares(report)
    canary_share = canary_group_share(report)
    canary_lb = _lb_segments(report, "canary_target_health") if canary_share is not None else {}
    lanes = sorted(set(lanes) | set(canary_lb))
    with_shares = bool(shares) or canary_share is not None

    ratios = [3, 2] + ([1.6] if with_shares else []) + [max(1.6, 0.75 * max(len(lanes), 1))]
    if alarms:
        ratios.append(max(1.0, 0.45 * len(alarms)))
    fig, axes = plt.subplots(
        len(ratios),
        1,
        sharex=True,
        figsize=(14, 7.5 + 0.55 * max(len(lanes), 1) + (0.8 + 0.35 * len(alarms) if alarms else 0)
                 + (1.6 if with_shares else 0)),
        gridspec_kw={"height_ratios": ratios},
    )
    ax_rate, ax_lat = axes[:2]
    ax_share = axes[2] if with_shares else None
    ax_lanes = axes[3] if with_shares else axes[2]
    ax_alarms = axes[-1] if alarms else None
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

    # Share of the answers: by release (stacked), and the canary target group's when it was polled.
    if ax_share is not None:
        share_colour = {rel: RELEASE_COLOURS[i % len(RELEASE_COLOURS)] for i, rel in enumerate(shares)}
        if shares:
            ax_share.stackplot(mids, *[[0.0 if math.isnan(v) else v for v in shares[rel]] for rel in shares],
                               colors=[share_colour[rel] for rel in shares], alpha=0.55, step="mid",
                               labels=[f"release {rel}" for rel in shares])
        if canary_share is not None:
            ax_share.plot(mids, canary_share, color="#212121", linestyle="--", linewidth=1.2,
                          label="canary target group")
        ax_share.set_ylim(0, 100)
        ax_share.set_ylabel("share of answers (%)")
        ax_share.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
        ax_share.grid(axis="y", alpha=0.3)

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
        # In the canary target group: a thin strip over the main group's state.
        for start, width, state in canary_lb.get(instance, []):
            if state in ("absent", "unused"):
                continue
            ax_lanes.broken_barh([(start, width)], (lane + 0.92, 0.07), facecolors=CANARY_COLOUR,
                                 hatch=None if state == "healthy" else "///", edgecolor="#616161", linewidth=0.3)
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
    if canary_lb:
        handles.append(Patch(facecolor=CANARY_COLOUR, edgecolor="#616161", label="in canary group (thin strip)"))
    if handles:
        ax_lanes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    ax_lanes.set_xlim(0, end)

    band_labels: list[str] = []
    if ax_alarms is not None:
        for band, (name, runs) in enumerate(alarms.items()):
            for start, width, state in runs:
                ax_alarms.broken_barh([(start, width)], (band + 0.15, 0.7),
                                      facecolors=ALARM_COLOURS.get(state or "", ALARM_UNKNOWN),
                                      edgecolor="#616161", linewidth=0.4)
            band_labels.append(short_name(name))
        for name, moves in (report.get("alarm_transitions") or {}).items():
            if name not in alarms:
                continue
            band = list(alarms).index(name)
            for move in moves:
                if move["to"] == "ALARM":  # when the alarm fired, over the requests it judged
                    ax_rate.axvline(move["t"], color="#b71c1c", linestyle=":", linewidth=1.2)
                ax_alarms.text(move["t"], band + 0.5, f" {move['to']}", va="center", ha="left", fontsize=8,
                               color="white" if move["to"] in ("ALARM", "INSUFFICIENT_DATA") else "#1b5e20")
        ax_alarms.set_ylim(-0.05, len(alarms) + 0.05)
        ax_alarms.set_yticks([band + 0.5 for band in range(len(alarms))], band_labels, fontsize=9)
        ax_alarms.invert_yaxis()  # the first alarm asked on top
        errors = report.get("alarm_error_count") or 0
        ax_alarms.set_title("CloudWatch alarms: state as polled" + (f" ({errors} polling errors)" if errors else ""),
                            fontsize=9, loc="left")
        ax_alarms.set_ylabel("alarms")
        alarm_handles = [Patch(facecolor=c, edgecolor="#616161", label=s) for s, c in ALARM_COLOURS.items()]
        alarm_handles.append(Patch(facecolor=ALARM_UNKNOWN, edgecolor="#616161", label="no sample / not found"))
        ax_alarms.legend(handles=alarm_handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8,
                         frameon=False)
    bottom = ax_alarms if ax_alarms is not None else ax_lanes
    bottom.set_xlabel("seconds since start")

    command = report.get("command")
    if command and command.get("started_t") is not None:
        marks = [(command["started_t"], "command start")]
        if command.get("ended_t") is not None:
            marks.append((command["ended_t"], f"command end (rc {command['rc']})"))
        for t, label in marks:
            for ax in axes:
                ax.axvline(t, color="#283593", linestyle="--", linewidth=1.3)
            ax_rate.text(t, ax_rate.get_ylim()[1], f" {label}", color="#283593", fontsize=9, va="top", ha="left")

    fig.tight_layout(rect=(0, 0, 0.9, 0.935))
    fig.savefig(path, dpi=100)
    drawn = {"panels": [ax.get_ylabel() or ax.get_title(loc="left") for ax in axes], "alarm_bands": band_labels}
    plt.close(fig)
    return drawn
