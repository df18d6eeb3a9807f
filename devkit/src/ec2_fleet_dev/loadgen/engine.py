"""The load engine: open-loop HTTP load on one loopback URL (the dispatcher, the workers, the wrapped command).

The rolling-update proof runs a deploy while this module sends a steady request rate through the
load balancer, then shows what a client saw: every failure by kind, the latency, which instance
answered with which release (the /version body, else the X-App-Version header of any answer), and
(optionally) the target group's health as the balancer published it and CloudWatch alarms' states.

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
`stale_connection_retries`). Requests are served by a bounded pool of worker threads, by
default enough for every request to take its whole timeout twice (connect, then read) at the asked rate.
When every worker is busy the due request is not sent and counts as `unsent`: the service was never
asked, so a load test asserts `sent == planned` as well as `failed == 0`. Only loopback targets are
accepted; every run is bounded by --max-seconds and --max-requests. Standard library only, plus
matplotlib for the PNG and boto3 for target-health and alarm polling (both imported only when used).

The target and alarm pollers (poller.py), the report (report.py) and the PNG (plot.py) are modules of their own.
"""

from __future__ import annotations

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
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from ec2_fleet_dev.loadgen.poller import AlarmPoller, TargetPoller, alarm_report, health_report
from ec2_fleet_dev.loadgen.report import Result, build_report, write_report

EXPECT_MODES = ("auto", "version", "status")
EXIT_BOUND = 3
MAX_RATE = 1000.0
MAX_WORKERS = 512
MAX_BODY_BYTES = 1024 * 1024
COMMAND_GRACE_SECONDS = 10.0
# The dispatcher this far behind has stalled: the slots it missed are unsent. A shorter lag is caught up, the due
# requests sent at once (still asked, a little late): a generator starved on a shared machine lags that way (a
# rehearsal of 976dcf4, three test streams on two cores: one lag of 1.2 s, 36 slots, 0 failed; it was 1.0 s).
STALL_SECONDS = 3.0
USER_AGENT = "ec2-fleet-loadgen"
MAX_ALARMS = 10  # the plot's alarm panel stays readable; CodeDeploy also stops on at most ten
MAX_ALARM_NAME = 255


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
        workers: int | None = None,
        expect: str = "auto",
        ca_file: str | Path | None = None,
        keep_alive: bool = False,
        alarm_names: list[str] | tuple[str, ...] | None = None,
        canary_target_group_arn: str | None = None,
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
        if workers is None:
            # Enough that every request may take its timeout twice (connect, read) at the rate.
            workers = min(MAX_WORKERS, math.ceil(rate * (2 * timeout + 1)))
        if not 1 <= workers <= MAX_WORKERS:
            raise ValueError(f"workers must be between 1 and {MAX_WORKERS}, not {workers}")
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be > 0 seconds, not {poll_interval}")
        if expect not in EXPECT_MODES:
            raise ValueError(f"expect must be one of {', '.join(EXPECT_MODES)}, not {expect!r}")
        alarm_names = list(alarm_names or [])
        bad_names = [n for n in alarm_names if not isinstance(n, str) or not 1 <= len(n) <= MAX_ALARM_NAME]
        if bad_names:
            raise ValueError(f"alarm_names must be CloudWatch alarm names (1-{MAX_ALARM_NAME} characters), "
                             f"not {bad_names!r}")
        if len(set(alarm_names)) != len(alarm_names):
            raise ValueError(f"alarm_names must not repeat a name: {alarm_names!r}")
        if len(alarm_names) > MAX_ALARMS:
            raise ValueError(f"alarm_names: at most {MAX_ALARMS} alarms, not {len(alarm_names)}")
        if ca_file is not None and not Path(ca_file).is_file():
            raise ValueError(f"ca_file must be a readable PEM file, not {ca_file}")
        self.url = url
        self.rate = float(rate)
        self.timeout = float(timeout)
        self.target_group_arn = target_group_arn
        # A weighted canary's second target group: polled beside the first, drawn as each instance's canary
        # state and as the canary group's share of the answers.
        self.canary_target_group_arn = canary_target_group_arn
        self.alarm_names = alarm_names
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
        self._unsent: list[float] = []  # the due time of each request not sent
        self._dispatched = 0
        self._free = threading.Semaphore(self.workers)
        self._queue: queue.SimpleQueue[tuple[int, float] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._dispatcher: threading.Thread | None = None
        self._poller: TargetPoller | None = None
        self._alarm_poller: AlarmPoller | None = None
        self._canary_poller: TargetPoller | None = None

    # -- life cycle ----------------------------------------------------------------------------

    def __enter__(self) -> LoadGen:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop("block ended")

    def start(self) -> None:
        if self._dispatcher is not None:
            raise RuntimeError("this LoadGen has already been started")
        # The workers first (hundreds of threads take a while on a busy machine): the load starts once
        # they wait for requests, so its first slots are not late.
        for index in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"loadgen-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._t0 = time.monotonic()
        self._started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        if self.target_group_arn:
            self._poller = TargetPoller(self.target_group_arn, self.aws_url, self.region, self.poll_interval,
                                        self._t0, self._stop)
            self._poller.start()
        if self.canary_target_group_arn:
            self._canary_poller = TargetPoller(self.canary_target_group_arn, self.aws_url, self.region,
                                               self.poll_interval, self._t0, self._stop)
            self._canary_poller.start()
        if self.alarm_names:
            self._alarm_poller = AlarmPoller(self.alarm_names, self.aws_url, self.region, self.poll_interval,
                                             self._t0, self._stop)
            self._alarm_poller.start()
        self._dispatcher = threading.Thread(target=self._dispatch, name="loadgen-dispatch", daemon=True)
        self._dispatcher.start()

    def now(self) -> float:
        """Seconds since the load started."""
        return time.monotonic() - self._t0

    def health_samples(self) -> list[dict[str, Any]]:
        """The target-health samples taken so far (empty without a target group)."""
        return self._poller.samples() if self._poller is not None else []

    def health_error_count(self) -> int:
        """How many target-health polls have failed so far (0 without a target group)."""
        return self._poller.error_count if self._poller is not None else 0

    def alarm_samples(self) -> list[dict[str, Any]]:
        """The alarm-state samples taken so far (empty without alarm_names)."""
        return self._alarm_poller.samples() if self._alarm_poller is not None else []

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

    def answering(self) -> set[str]:
        """The instances that have answered a request so far (a test waits on a new one)."""
        with self._lock:
            return {r.instance for r in self._results if r.kind is None and r.instance}

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
        if self._alarm_poller is not None:
            self._alarm_poller.join(timeout=max(1.0, deadline - time.monotonic()))
        if self._canary_poller is not None:
            self._canary_poller.join(timeout=max(1.0, deadline - time.monotonic()))
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
        try:
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
                if now - due > STALL_SECONDS:
                    # The process stalled (suspended, starved): the missed slots are unsent, not burst.
                    missed = int((now - due) / interval)
                    self._not_sent([due - self._t0 + k * interval for k in range(missed)])
                    due += missed * interval
                if self._free.acquire(blocking=False):
                    self._queue.put((self._dispatched, now - self._t0))
                    self._dispatched += 1
                else:
                    self._not_sent([due - self._t0])
                due += interval
        finally:
            # As in the loop: a lag under STALL_SECONDS would have been caught up (the due requests sent at
            # once); a longer one at the stop is a stall, and the slots it missed were planned, not sent.
            stop_at = self._t0 + (self._stop_t if self._stop_t is not None else self.now())
            behind = int((stop_at - due) / interval) if stop_at - due > STALL_SECONDS else 0
            self._not_sent([due - self._t0 + k * interval for k in range(behind)])

    def _not_sent(self, due_ts: list[float]) -> None:
        with self._lock:
            self._unsent.extend(due_ts)

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
                app_version = response.getheader("X-App-Version")
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
        return self._judge(seq, t, latency, status, body, served_by, app_version)

    def _judge(self, seq: int, t: float, latency: float, status: int, body: bytes, served_by: str | None,
               app_version: str | None = None) -> Result:
        """Ok or a failure kind; who answered (the body's instance_id, else X-Served-By) and with which
        release (the /version body's version, else the X-App-Version header: the body wins)."""
        instance, release = served_by, (app_version.strip() or None) if app_version else None
        if status >= 400:
            kind = "http_5xx" if status >= 500 else "http_4xx"
            detail = f"HTTP {status}" + (f" from {served_by}" if served_by else "")
            snippet = body[:120].decode("utf-8", "replace").strip()
            if snippet:
                detail += f": {snippet}"
            return Result(seq, t, latency, kind, status, instance, release, detail)
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
            results = list(self._results)
            unsent = list(self._unsent)
        run = {
            "target": self.url,
            "rate": self.rate,
            "started_at": self._started_at,
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
            "command": self.command,
        }
        health: dict[str, Any] | None = None
        if self._poller is not None:
            samples, worst = health_report(self._poller.samples())
            health = {
                "target_group_arn": self.target_group_arn,
                "poll_interval_s": self.poll_interval,
                "target_health": samples,
                "max_targets_out_of_service": worst,
                "target_health_errors": self._poller.errors(),
                "target_health_error_count": self._poller.error_count,
            }
        if self._canary_poller is not None:
            health = dict(health or {})
            health.update({
                "canary_target_group_arn": self.canary_target_group_arn,
                "canary_target_health": self._canary_poller.samples(),
                "canary_target_health_error_count": self._canary_poller.error_count,
            })
            health.setdefault("poll_interval_s", self.poll_interval)
        if self._alarm_poller is not None:
            alarm_states, transitions = alarm_report(self._alarm_poller.samples(), self.alarm_names)
            health = dict(health or {})
            health.update({
                "alarm_names": list(self.alarm_names),
                "alarm_states": alarm_states,
                "alarm_transitions": transitions,
                "alarm_errors": self._alarm_poller.errors(),
                "alarm_error_count": self._alarm_poller.error_count,
            })
            health.setdefault("poll_interval_s", self.poll_interval)
        duration = self._stop_t if self._stop_t is not None else self.now()
        return build_report(run, results, self._dispatched, unsent, duration, health)

    def write(self, json_path: str | Path, png_path: str | Path | None = None) -> None:
        """Write the report as JSON (and the PNG timeline when png_path is given)."""
        if self.report is None:
            raise RuntimeError("no report yet: stop the load (or leave the with-block) first")
        write_report(self.report, json_path, png_path)
