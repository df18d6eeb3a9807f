#!/usr/bin/env python3
"""Open-loop HTTP load on one loopback URL, with a JSON report and a PNG timeline (issue 6).

The rolling-update proof runs a deploy while this module sends a steady request rate through the
load balancer, then shows what a client saw: every failure by kind, the latency, which instance
answered with which release, and (optionally) the target group's health as the balancer published it.

    tools/loadgen.py --url http://127.0.0.1:8080/version --rate 40 --report out.json --png out.png \\
        -- ansible-playbook playbooks/rolling_update.yml -e app_version=2.0.0

Python:

    with LoadGen("http://127.0.0.1:8080/version", rate=40, timeout=5) as load:
        ...                      # run something
    load.report                  # the report (dict), built when the block ends
    load.write("out.json", "out.png")

HTTPS: give the CA that signed the server's certificate (`--ca-file`, `ca_file=`; the lab's is
`labctl.py up --json`'s lb_ca_file); the certificate and its host name are verified.

Load model: request k is due at start + k/rate whatever happened to earlier ones (open loop); each
request opens a new connection (so a balancer spreads them), or with keep-alive (`--keep-alive`,
`keep_alive=True`) each worker reuses its connection as a browser does (a balancer spreads the
requests, not the connections); a GET on a kept connection that the server had closed before any byte
of the answer is sent again once on a new connection, as HTTP clients do (counted in
`stale_connection_retries`). Requests are served by a bounded pool of worker threads. When every
worker is busy the due request is not sent and counts as `skipped` (a limit of the load generator,
not a failure of the service). Only loopback targets are accepted; every run is
bounded by --max-seconds and --max-requests. Standard library only, plus matplotlib for the PNG and
boto3 for target-health polling (both imported only when used).
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import math
import os
import queue
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

FAILURE_KINDS = ("connect_refused", "connection_reset", "timeout", "http_5xx", "http_4xx", "bad_body", "other")
EXPECT_MODES = ("auto", "version", "status")
EXIT_BOUND = 3
MAX_RATE = 1000.0
MAX_WORKERS = 512
MAX_FAILURE_DETAILS = 50
MAX_POLL_ERRORS = 50
MAX_BODY_BYTES = 1024 * 1024
COMMAND_GRACE_SECONDS = 10.0
USER_AGENT = "ec2-fleet-loadgen"


class TargetRefused(ValueError):
    """The URL is not an http(s) URL on a loopback address."""


def check_url(url: str) -> SplitResult:
    """The parsed URL, or TargetRefused: only http(s) to 127.0.0.0/8, ::1 or localhost is allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise TargetRefused(f"refusing {url!r}: only http:// or https:// URLs are supported")
    host = parts.hostname
    if not host:
        raise TargetRefused(f"refusing {url!r}: the URL has no host")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise TargetRefused(f"refusing {url!r}: {exc}") from exc
    if host == "localhost":
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
        except socket.gaierror as exc:
            raise TargetRefused(f"refusing {url!r}: localhost does not resolve ({exc})") from exc
        strays = sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback)
        if strays:
            raise TargetRefused(f"refusing {url!r}: localhost resolves to non-loopback {', '.join(strays)}")
        return parts
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise TargetRefused(
            f"refusing {url!r}: load goes only to a loopback address (127.0.0.1, ::1 or localhost), not {host!r}"
        )
    return parts


def classify_exception(exc: BaseException) -> str:
    """The failure kind of an exception raised while connecting, sending or reading."""
    if isinstance(exc, ConnectionRefusedError):
        return "connect_refused"
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since 3.10
        return "timeout"
    # RemoteDisconnected (closed before any response) is a ConnectionResetError; IncompleteRead is a
    # body cut short.
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, http.client.IncompleteRead)):
        return "connection_reset"
    return "other"


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(0, math.ceil(pct / 100 * len(sorted_values)) - 1)
    return sorted_values[rank]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


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


class LoadGen:
    """Open-loop load on one loopback URL; a context manager whose report is ready after the block."""

    def __init__(
        self,
        url: str,
        rate: float = 40.0,
        timeout: float = 5.0,
        target_group_arn: str | None = None,
        aws_url: str | None = None,
        *,
        region: str | None = None,
        poll_interval: float = 1.0,
        max_seconds: float = 900.0,
        max_requests: int = 100_000,
        workers: int = 64,
        expect: str = "auto",
        ca_file: str | Path | None = None,
        keep_alive: bool = False,
    ) -> None:
        self._parts = check_url(url)
        if not 0 < rate <= MAX_RATE:
            raise ValueError(f"rate must be > 0 and <= {MAX_RATE:g} requests/s, not {rate}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, not {timeout}")
        if not max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0, not {max_seconds}")
        if max_requests < 1:
            raise ValueError(f"max_requests must be >= 1, not {max_requests}")
        if not 1 <= workers <= MAX_WORKERS:
            raise ValueError(f"workers must be between 1 and {MAX_WORKERS}, not {workers}")
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be > 0 seconds, not {poll_interval}")
        if expect not in EXPECT_MODES:
            raise ValueError(f"expect must be one of {', '.join(EXPECT_MODES)}, not {expect!r}")
        if ca_file is not None and not Path(ca_file).is_file():
            raise ValueError(f"ca_file must be a readable PEM file, not {ca_file}")
        self.url = url
        self.rate = float(rate)
        self.timeout = float(timeout)
        self.target_group_arn = target_group_arn
        self.aws_url = aws_url or os.environ.get("AWS_URL") or os.environ.get("AWS_ENDPOINT_URL") or None
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.poll_interval = float(poll_interval)
        self.max_seconds = float(max_seconds)
        self.max_requests = int(max_requests)
        self.workers = int(workers)
        if expect == "auto":
            expect = "version" if self._parts.path.rstrip("/").endswith("/version") else "status"
        self.expect = expect
        self.report: dict[str, Any] | None = None
        self.command: dict[str, Any] | None = None
        self.ca_file = str(ca_file) if ca_file is not None else None
        self.keep_alive = bool(keep_alive)
        self._tls = ssl.create_default_context(cafile=self.ca_file) if self._parts.scheme == "https" else None
        self._kept = threading.local()  # keep-alive: each worker's connection
        self._stale_retries = 0

        self._path = (self._parts.path or "/") + (f"?{self._parts.query}" if self._parts.query else "")
        self._run_id = uuid.uuid4().hex[:8]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stop_reason: str | None = None
        self._stop_t: float | None = None
        self._signal: int | None = None
        self._t0 = 0.0
        self._started_at = ""
        self._results: list[Result] = []
        self._skipped: list[float] = []
        self._dispatched = 0
        self._free = threading.Semaphore(self.workers)
        self._queue: queue.SimpleQueue[tuple[int, float] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._dispatcher: threading.Thread | None = None
        self._poller: threading.Thread | None = None
        self._samples: list[dict[str, Any]] = []
        self._poll_errors: list[dict[str, Any]] = []
        self._poll_error_count = 0

    # -- life cycle ----------------------------------------------------------------------------

    def __enter__(self) -> LoadGen:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop("block ended")

    def start(self) -> None:
        if self._dispatcher is not None:
            raise RuntimeError("this LoadGen has already been started")
        self._t0 = time.monotonic()
        self._started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        for index in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"loadgen-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._dispatcher = threading.Thread(target=self._dispatch, name="loadgen-dispatch", daemon=True)
        self._dispatcher.start()
        if self.target_group_arn:
            self._poller = threading.Thread(target=self._poll, name="loadgen-poll", daemon=True)
            self._poller.start()

    def now(self) -> float:
        """Seconds since the load started."""
        return time.monotonic() - self._t0

    @property
    def stopped(self) -> threading.Event:
        """Set once the load stops sending (a bound was reached, stop() or a signal)."""
        return self._stop

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    def wait(self, seconds: float) -> bool:
        """Sleep while the load runs; False when it stopped before the time was up."""
        return not self._stop.wait(max(0.0, seconds))

    def interrupt(self, signum: int) -> None:
        """Stop because of a signal (the CLI's SIGINT/SIGTERM handler); safe to call from a handler."""
        self._signal = signum
        self._request_stop(f"signal {signal.Signals(signum).name}")

    def stop(self, reason: str = "stopped") -> dict[str, Any]:
        """Stop sending, let in-flight requests finish (bounded), build and return the report."""
        if self.report is not None:
            return self.report
        if self._dispatcher is None:
            raise RuntimeError("this LoadGen was never started")
        self._request_stop(reason)
        self._dispatcher.join(timeout=5)
        # A request can take `timeout` to connect and again to read the answer.
        deadline = time.monotonic() + 2 * self.timeout + 2
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._poller is not None:
            self._poller.join(timeout=max(1.0, deadline - time.monotonic()))
        self.report = self._build_report()
        return self.report

    def _request_stop(self, reason: str) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            self._stop_reason = reason
            self._stop_t = self.now()
            self._stop.set()

    # -- sending -------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        interval = 1.0 / self.rate
        due = self._t0
        while not self._stop.is_set():
            now = time.monotonic()
            if now - self._t0 >= self.max_seconds:
                self._request_stop("max_seconds")
                return
            if self._dispatched >= self.max_requests:
                # Hold until the next slot is due, so that duration_s covers the requests at the rate.
                if due > now and self._stop.wait(min(due - now, self._t0 + self.max_seconds - now)):
                    return
                self._request_stop("max_requests")
                return
            if due > now:
                self._stop.wait(min(due - now, self._t0 + self.max_seconds - now))
                continue
            if now - due > 1.0:
                # The process stalled (suspended, starved): count the missed slots, do not burst them.
                missed = int((now - due) / interval)
                with self._lock:
                    self._skipped.extend([now - self._t0] * missed)
                due += missed * interval
            if self._free.acquire(blocking=False):
                self._queue.put((self._dispatched, now - self._t0))
                self._dispatched += 1
            else:
                with self._lock:
                    self._skipped.append(now - self._t0)
            due += interval

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                result = self._request(*item)
            except Exception as exc:  # a defect here must not lose the request from the counts
                result = Result(item[0], item[1], 0.0, "other", None, None, None, f"loadgen: {exc!r}")
            finally:
                self._free.release()
            with self._lock:
                self._results.append(result)

    def _connection(self) -> http.client.HTTPConnection:
        host, port = self._parts.hostname or "127.0.0.1", self._parts.port
        if self._tls is not None:
            return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self._tls)
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def _request(self, seq: int, _due_t: float) -> Result:
        sent = time.monotonic()
        t = sent - self._t0
        headers = {"User-Agent": USER_AGENT, "X-Request-ID": f"loadgen-{self._run_id}-{seq}"}
        if not self.keep_alive:
            headers["Connection"] = "close"
        kept: http.client.HTTPConnection | None = getattr(self._kept, "conn", None) if self.keep_alive else None
        self._kept.conn = None
        for attempt in (1, 2):
            conn = kept if kept is not None and attempt == 1 else self._connection()
            try:
                conn.request("GET", self._path, headers=headers)
                response = conn.getresponse()
                body = response.read(MAX_BODY_BYTES)
                status = response.status
                served_by = response.getheader("X-Served-By")
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                if conn is kept and attempt == 1:  # closed by the server while idle: a new connection, once
                    with self._lock:
                        self._stale_retries += 1
                    continue
                detail = f"{type(exc).__name__}: {exc}"[:300]
                return Result(seq, t, time.monotonic() - sent, classify_exception(exc), None, None, None, detail)
            except Exception as exc:
                conn.close()
                detail = f"{type(exc).__name__}: {exc}"[:300]
                return Result(seq, t, time.monotonic() - sent, classify_exception(exc), None, None, None, detail)
            if self.keep_alive and not response.will_close and len(body) < MAX_BODY_BYTES:
                self._kept.conn = conn
            else:
                conn.close()
            break
        latency = time.monotonic() - sent
        return self._judge(seq, t, latency, status, body, served_by)

    def _judge(self, seq: int, t: float, latency: float, status: int, body: bytes, served_by: str | None) -> Result:
        instance, release = served_by, None
        if status >= 400:
            kind = "http_5xx" if status >= 500 else "http_4xx"
            detail = f"HTTP {status}" + (f" from {served_by}" if served_by else "")
            snippet = body[:120].decode("utf-8", "replace").strip()
            if snippet:
                detail += f": {snippet}"
            return Result(seq, t, latency, kind, status, instance, None, detail)
        if self.expect == "version":
            try:
                answer = json.loads(body)
            except ValueError:
                answer = None
            version = answer.get("version") if isinstance(answer, dict) else None
            if not isinstance(version, str) or not version:
                snippet = body[:120].decode("utf-8", "replace").strip()
                detail = f"HTTP {status} without a JSON 'version': {snippet!r}"
                return Result(seq, t, latency, "bad_body", status, instance, None, detail)
            release = version
            body_instance = answer.get("instance_id")
            if isinstance(body_instance, str) and body_instance:
                instance = body_instance
        return Result(seq, t, latency, None, status, instance, release)

    # -- target health -------------------------------------------------------------------------

    def _elbv2_client(self) -> Any:
        import boto3
        from botocore.config import Config

        kwargs: dict[str, Any] = {
            "endpoint_url": self.aws_url,
            "config": Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
        }
        if self.aws_url and not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
            # A local endpoint (moto, the lab) accepts any key. Asking botocore's credential chain
            # instead would end at the instance metadata service: seconds of waiting, off loopback.
            kwargs.update(aws_access_key_id="testing", aws_secret_access_key="testing")
        return boto3.Session(region_name=self.region).client("elbv2", **kwargs)

    def _poll_error(self, exc: BaseException) -> None:
        with self._lock:
            self._poll_error_count += 1
            if len(self._poll_errors) < MAX_POLL_ERRORS:
                self._poll_errors.append({"t": round(self.now(), 3), "detail": f"{type(exc).__name__}: {exc}"[:300]})

    def _poll(self) -> None:
        try:
            client = self._elbv2_client()
        except Exception as exc:
            self._poll_error(exc)
            return
        polls = 0
        while not self._stop.is_set():
            try:
                answer = client.describe_target_health(TargetGroupArn=self.target_group_arn)
                descriptions = answer.get("TargetHealthDescriptions", [])
                ids = Counter(d["Target"]["Id"] for d in descriptions)
                states: dict[str, str] = {}
                reasons: dict[str, str] = {}
                for item in descriptions:
                    target = item["Target"]
                    key = target["Id"] if ids[target["Id"]] == 1 else f"{target['Id']}:{target.get('Port')}"
                    health = item.get("TargetHealth", {})
                    states[key] = health.get("State", "unknown")
                    if health.get("Reason"):
                        reasons[key] = health["Reason"]
                sample: dict[str, Any] = {"t": round(self.now(), 3), "states": states}
                if reasons:
                    sample["reasons"] = reasons
                with self._lock:
                    self._samples.append(sample)
            except Exception as exc:
                self._poll_error(exc)
            polls += 1
            next_poll = self._t0 + polls * self.poll_interval
            self._stop.wait(max(0.0, next_poll - time.monotonic()))

    # -- wrapped command -----------------------------------------------------------------------

    def run_command(self, argv: list[str], warmup: float = 2.0, cooldown: float = 2.0) -> int:
        """Warm up, run argv under load, cool down, stop. Returns the command's rc, EXIT_BOUND when a
        bound stopped the run first (the command is then terminated), 128+N after signal N."""
        if not self.wait(warmup):
            self.stop(self._stop_reason or "stopped")
            return self._early_rc()
        started_t = self.now()
        self.command = {"argv": list(argv), "rc": None, "started_t": round(started_t, 3), "ended_t": None}
        try:
            proc = subprocess.Popen(argv)
        except OSError as exc:
            self.command.update(rc=127, ended_t=round(self.now(), 3), error=f"{type(exc).__name__}: {exc}")
            self.stop("command could not start")
            return 127
        terminated = False
        while proc.poll() is None:
            if self._stop.wait(0.1) and not terminated:
                terminated = True
                self.command["terminated_because"] = self._stop_reason
                if self._signal is not None:
                    proc.send_signal(self._signal)
                else:
                    proc.terminate()
                try:
                    proc.wait(timeout=COMMAND_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=COMMAND_GRACE_SECONDS)
        self.command.update(rc=proc.returncode, ended_t=round(self.now(), 3))
        if terminated:
            self.stop(self._stop_reason or "stopped")
            return self._early_rc()
        self.wait(cooldown)
        self.stop("command ended")
        return proc.returncode

    def _early_rc(self) -> int:
        return 128 + self._signal if self._signal is not None else EXIT_BOUND

    # -- report --------------------------------------------------------------------------------

    def _build_report(self) -> dict[str, Any]:
        with self._lock:
            results = sorted(self._results, key=lambda r: r.t)
            skipped = list(self._skipped)
            samples = [dict(s) for s in self._samples]
            poll_errors = list(self._poll_errors)
        duration = self._stop_t if self._stop_t is not None else self.now()
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
            "target": self.url,
            "rate": self.rate,
            "started_at": self._started_at,
            "duration_s": round(duration, 3),
            "requests": len(results),
            "ok": len(ok),
            "failed": len(failed),
            "achieved_rate": round(len(results) / duration, 2) if duration > 0 else 0.0,
            "skipped": len(skipped),
            "unfinished": self._dispatched - len(results),
            "stopped_by": self._stop_reason,
            "bounds": {
                "max_seconds": self.max_seconds,
                "max_requests": self.max_requests,
                "timeout_s": self.timeout,
                "workers": self.workers,
            },
            "tls_ca_file": self.ca_file,
            "keep_alive": self.keep_alive,
            "stale_connection_retries": self._stale_retries,
            "expect": self.expect,
            "failures_by_kind": by_kind,
            "status_codes": dict(sorted(status_codes.items())),
            "latency_ms": {
                "p50": _ms(percentile(latencies, 50)),
                "p95": _ms(percentile(latencies, 95)),
                "p99": _ms(percentile(latencies, 99)),
                "max": _ms(latencies[-1] if latencies else None),
            },
            "series": _series(results, skipped, duration),
            "answered_by": {i: dict(sorted(c.items())) for i, c in sorted(answered_by.items())},
            "release_timeline": dict(sorted(timeline.items())),
            "failures": [
                {"t": round(r.t, 3), "kind": r.kind, "detail": r.detail} for r in failed[:MAX_FAILURE_DETAILS]
            ],
        }
        if self.command is not None:
            report["command"] = self.command
        if self.target_group_arn:
            seen: set[str] = set()
            worst = 0
            for sample in samples:
                states = sample["states"]
                out = sum(1 for state in states.values() if state != "healthy") + len(seen - states.keys())
                seen |= states.keys()
                sample["out_of_service"] = out
                worst = max(worst, out)
            report.update(
                target_group_arn=self.target_group_arn,
                poll_interval_s=self.poll_interval,
                target_health=samples,
                max_targets_out_of_service=worst,
                target_health_errors=poll_errors,
                target_health_error_count=self._poll_error_count,
            )
        return report

    def write(self, json_path: str | Path, png_path: str | Path | None = None) -> None:
        """Write the report as JSON (and the PNG timeline when png_path is given)."""
        if self.report is None:
            raise RuntimeError("no report yet: stop the load (or leave the with-block) first")
        write_report(self.report, json_path, png_path)


def _series(results: list[Result], skipped: list[float], duration: float) -> list[dict[str, Any]]:
    """One entry per second since the start; every request counts in the second it was sent."""
    last = max([int(r.t) for r in results] + [int(t) for t in skipped] + [math.ceil(duration) - 1, 0])
    buckets: list[list[Result]] = [[] for _ in range(last + 1)]
    for r in results:
        buckets[int(r.t)].append(r)
    skipped_per_second = Counter(int(t) for t in skipped)
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
        if skipped_per_second[second]:
            entry["skipped"] = skipped_per_second[second]
        series.append(entry)
    return series


def write_report(report: dict[str, Any], json_path: str | Path, png_path: str | Path | None = None) -> None:
    Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
    if png_path is not None:
        plot(report, png_path)


def summary(report: dict[str, Any]) -> str:
    """One paragraph for a person: totals, failures, latency, who answered, the balancer, the command."""
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
    command = report.get("command")
    if command:
        text += (
            f"command rc {command['rc']} (ran {command['started_t']:.1f}-{command['ended_t']:.1f} s"
            + (f", terminated: {command['terminated_because']}" if command.get("terminated_because") else "")
            + "); "
        )
    if report["skipped"]:
        text += f"{report['skipped']} requests skipped (all workers busy); "
    if report["unfinished"]:
        text += f"{report['unfinished']} requests still unfinished at the end; "
    return text + f"stopped by {report['stopped_by']}."


# -- the PNG timeline ----------------------------------------------------------------------------

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
    fig.suptitle(
        f"{report['requests']} requests, {report['failed']} failed, p99 {p99}  -  {report['target']}",
        fontsize=15,
        fontweight="bold",
        color="#b71c1c" if report["failed"] else "#1b5e20",
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
    ax_rate.set_ylim(0, max([report["rate"], *(o + f for o, f in zip(ok, failed, strict=True))]) * 1.25)
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


# -- command line --------------------------------------------------------------------------------

EPILOG = """\
with -- COMMAND: start the load, wait --warmup s, run COMMAND, keep the load --cooldown s after it
ended, stop, write the report, print a summary and exit with COMMAND's rc. Without a command the
load runs until --max-seconds, --max-requests, SIGINT or SIGTERM (all write the report).

exit status: COMMAND's rc; 3 when --max-seconds/--max-requests stopped the run before COMMAND
ended (COMMAND is then terminated); 128+N after signal N during COMMAND; 127 when COMMAND cannot
start; 2 for a bad argument (e.g. a non-loopback URL). When no COMMAND rc decides (no command, or
COMMAND exited 0), --fail-on-errors exits 1 if any request failed; otherwise 0.

report (JSON): target, rate, started_at, duration_s, requests, ok, failed, failures_by_kind
(connect_refused, connection_reset, timeout, http_5xx, http_4xx, bad_body, other), latency_ms
{p50,p95,p99,max} of ok requests, series (per second of sending: sent, ok, failed, p50_ms, p99_ms,
by_release, by_instance), answered_by {instance: {release: n}}, release_timeline {instance:
[{release, first_t, last_t, count}]}, the first 50 failures, command {argv, rc, started_t, ended_t},
and with --target-group-arn: target_health [{t, states, out_of_service}], max_targets_out_of_service,
target_health_errors. Times t are seconds since the load started.

A URL ending in /version is read as the orders API's /version: a 2xx answer must be JSON with a
"version" (else bad_body), and its instance_id (or the X-Served-By header) says who answered. Any
other URL counts status codes: < 400 is ok. Only 127.0.0.0/8, ::1 and localhost are accepted.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loadgen.py",
        usage="%(prog)s --url URL --report JSON [options] [-- COMMAND ARGS...]",
        description="Steady open-loop HTTP load on one loopback URL, with a JSON report and a PNG timeline.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load = parser.add_argument_group("load")
    load.add_argument("--url", required=True, help="the URL to GET (host must be 127.0.0.0/8, ::1 or localhost)")
    load.add_argument("--rate", type=float, default=40.0, help="requests per second, open loop (default 40)")
    load.add_argument("--timeout", type=float, default=5.0, help="socket timeout per request, seconds (default 5)")
    load.add_argument("--workers", type=int, default=64, help="worker threads = most requests in flight (default 64)")
    load.add_argument("--ca-file", type=Path, help="https: the CA (PEM) that signed the server's certificate")
    load.add_argument("--keep-alive", action="store_true", help="each worker reuses its connection (default: close)")
    load.add_argument(
        "--expect",
        choices=EXPECT_MODES,
        default="auto",
        help="version: 2xx must be /version JSON; status: count status codes; auto (default): version when the "
        "path ends in /version",
    )
    bounds = parser.add_argument_group("bounds")
    bounds.add_argument("--max-seconds", type=float, default=900.0, help="stop after this long (default 900)")
    bounds.add_argument("--max-requests", type=int, default=100_000, help="stop after this many (default 100000)")
    bounds.add_argument("--warmup", type=float, default=2.0, help="seconds of load before COMMAND (default 2)")
    bounds.add_argument("--cooldown", type=float, default=2.0, help="seconds of load after COMMAND (default 2)")
    output = parser.add_argument_group("output")
    output.add_argument("--report", required=True, type=Path, help="write the JSON report here")
    output.add_argument("--png", type=Path, help="also draw the timeline (PNG, needs matplotlib)")
    output.add_argument("--fail-on-errors", action="store_true", help="exit 1 when any request failed (see below)")
    aws = parser.add_argument_group("target health (optional)")
    aws.add_argument("--target-group-arn", help="poll elbv2 describe_target_health of this target group")
    aws.add_argument("--poll-interval", type=float, default=1.0, help="seconds between polls (default 1)")
    aws.add_argument("--aws-url", help="elbv2 endpoint URL (default: env AWS_URL, then AWS_ENDPOINT_URL)")
    aws.add_argument("--region", help="AWS region (default: env AWS_REGION, then us-east-1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    separator = "--" in argv
    if separator:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    if separator and not command:
        parser.error("nothing after --: give the command to run")
    try:
        load = LoadGen(
            args.url,
            rate=args.rate,
            timeout=args.timeout,
            target_group_arn=args.target_group_arn,
            aws_url=args.aws_url,
            region=args.region,
            poll_interval=args.poll_interval,
            max_seconds=args.max_seconds,
            max_requests=args.max_requests,
            workers=args.workers,
            expect=args.expect,
            ca_file=args.ca_file,
            keep_alive=args.keep_alive,
        )
    except ValueError as exc:
        parser.error(str(exc))
    if args.warmup < 0 or args.cooldown < 0:
        parser.error("--warmup and --cooldown must be >= 0")
    for path in (args.report, args.png):
        if path is not None and not path.resolve().parent.is_dir():
            parser.error(f"no such directory for {path}")

    def on_signal(signum: int, _frame: object) -> None:
        load.interrupt(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        load.start()
        if command:
            rc = load.run_command(command, warmup=args.warmup, cooldown=args.cooldown)
        else:
            while not load.stopped.wait(0.5):
                pass
            rc = 0
        report = load.stop(load.stop_reason or "stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if rc == 0 and args.fail_on_errors and report["failed"]:
        rc = 1
    load.write(args.report, args.png)
    print(summary(report) + f" Report: {args.report}" + (f", timeline: {args.png}" if args.png else "") + f"; rc {rc}.")
    return rc


if __name__ == "__main__":
    sys.exit(main())
