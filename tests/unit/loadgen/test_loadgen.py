"""The load generator (ec2_fleet_dev.loadgen; CLI tools/loadgen.py) against small real HTTP servers on 127.0.0.1
(and moto for target health).

Each server follows a script: request number n -> what it does (answer like /version for one of two
instances, 503, 404, a non-JSON body, an abrupt reset, a sleep past the client's timeout), and counts
what it did, so the report's counts can be checked against the server's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from ec2_fleet_dev import loadgen
from ec2_fleet_dev.loadgen.plot import alarm_segments, canary_group_share, release_shares
from ec2_fleet_dev.loadgen.plot import plot as draw
from ec2_fleet_dev.loadgen.poller import alarm_report
from ec2_fleet_dev.loadgen.report import Result, build_report
from ec2_fleet_dev.plays import ROOT, free_port, moto_server

LOADGEN = ROOT / "tools" / "loadgen.py"

Action = tuple[Any, ...]


def two_instances(n: int) -> Action:
    """Alternate between two instances, each on its own release."""
    return ("version", "i-aaaa", "1.0.0") if n % 2 == 0 else ("version", "i-bbbb", "2.0.0")


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: Callable[[int], Action]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = script
        self.lock = threading.Lock()
        self.handled = 0
        self.did: Counter[str] = Counter()
        # Connections accepted. Not client ports: the kernel may give a closed connection's port to the next
        # one at once (the server closed first, so the TIME_WAIT is on its side); CI of 7ee945d saw 116 ports
        # for 121 connections.
        self.connections = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/version"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # writes to connections the client already gave up on (timeouts)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.connections += 1
        super().process_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedServer

    def do_GET(self) -> None:
        with self.server.lock:
            n = self.server.handled
            self.server.handled += 1
        action = self.server.script(n)
        kind = action[0]
        with self.server.lock:
            self.server.did[f"status {action[1]}" if kind == "status" else kind] += 1
        if kind == "reset":
            # RST instead of an answer: SO_LINGER 0 then close.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if kind == "sleep":
            time.sleep(action[1])
            action = ("version", "i-slow", "1.0.0")
        if kind == "status":
            self._send(action[1], b'{"error": "scripted"}', served_by="i-aaaa")
        elif kind == "order":  # an /orders/<id> answer: no version in the body, the release in X-App-Version
            self._send(200, b'{"id": 1, "customer": "acme"}', served_by=action[1], app_version=action[2])
        elif kind == "version_header":  # a /version body and a header naming another release
            body = {"service": "orders-api", "version": action[2], "instance_id": action[1]}
            self._send(200, json.dumps(body).encode(), served_by=action[1], app_version=action[3])
        elif kind == "garbage":
            self._send(200, b"<html>not json</html>")
        else:
            body = {"service": "orders-api", "version": action[2], "instance_id": action[1]}
            self._send(200, json.dumps(body).encode(), served_by=action[1])

    def _send(self, status: int, body: bytes, served_by: str | None = None, app_version: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if served_by:
            self.send_header("X-Served-By", served_by)
        if app_version:
            self.send_header("X-App-Version", app_version)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def scripted_server(script: Callable[[int], Action]) -> Iterator[ScriptedServer]:
    server = ScriptedServer(script)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop_server(server)
        thread.join(timeout=5)


def stop_server(server: ScriptedServer) -> None:
    """Stop accepting and close the listening socket (new connections are then refused).

    Connections that reached the accept queue while serve_forever was winding down are accepted
    here and reset (counted as "reset on stop"): closing the socket would reset them uncounted.
    """
    if server.socket.fileno() == -1:
        return
    server.shutdown()
    server.socket.setblocking(False)
    for _ in range(10_000):
        try:
            conn, _address = server.socket.accept()
        except BlockingIOError:
            break
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        with server.lock:
            server.did["reset on stop"] += 1
    server.server_close()


def assert_series_matches_totals(report: dict[str, Any]) -> None:
    series = report["series"]
    assert [s["t"] for s in series] == list(range(len(series)))
    assert sum(s["sent"] for s in series) == report["requests"]
    assert sum(s["ok"] for s in series) == report["ok"]
    assert sum(s["failed"] for s in series) == report["failed"]
    assert report["ok"] + report["failed"] == report["requests"]
    assert sum(report["failures_by_kind"].values()) == report["failed"]
    by_instance: Counter[str] = Counter()
    for s in series:
        by_instance.update(s["by_instance"])
    assert dict(by_instance) == {i: sum(r.values()) for i, r in report["answered_by"].items()}


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LOADGEN), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# -- refusals and bounds -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5:8080/version",
        "http://192.0.2.10/",
        "http://example.com/version",
        "http://localhost.example.com/",
        "http://0.0.0.0:8080/",
        "ftp://127.0.0.1/",
        "http:///version",
    ],
)
def test_non_loopback_urls_are_refused(url: str) -> None:
    with pytest.raises(loadgen.TargetRefused, match="refusing"):
        loadgen.LoadGen(url)


def test_loopback_urls_are_accepted() -> None:
    for url in ("http://127.0.0.1:8080/version", "http://[::1]:8080/", "http://localhost:8080/health"):
        assert loadgen.check_url(url).hostname in ("127.0.0.1", "::1", "localhost")


def test_cli_refuses_a_remote_url_before_sending_anything(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    result = run_cli("--url", "http://192.0.2.10/version", "--report", str(report), "--max-seconds", "1")
    assert result.returncode == 2
    assert "loopback" in result.stderr and "192.0.2.10" in result.stderr
    assert not report.exists()


def test_steady_rate_on_new_connections_spread_over_two_instances() -> None:
    with scripted_server(two_instances) as server, loadgen.LoadGen(server.url, rate=40, timeout=2) as load:
        time.sleep(3.0)
    report = load.report
    expected = 40 * report["duration_s"]
    assert abs(report["requests"] - expected) <= 0.15 * expected, report["requests"]
    full_seconds = [s for s in report["series"] if s["t"] + 1 <= report["duration_s"]]
    assert len(full_seconds) >= 2
    for second in full_seconds:
        assert 34 <= second["sent"] <= 46, second
    assert report["failed"] == 0 and report["unsent"] == 0 and report["unfinished"] == 0
    assert report["sent"] == report["planned"] == report["requests"], loadgen.delivery(report)
    assert report["ok"] == server.handled
    # One connection per request.
    assert server.connections == report["requests"], (server.connections, report["requests"])
    answered = report["answered_by"]
    assert set(answered) == {"i-aaaa", "i-bbbb"}
    assert set(answered["i-aaaa"]) == {"1.0.0"} and set(answered["i-bbbb"]) == {"2.0.0"}
    assert abs(answered["i-aaaa"]["1.0.0"] - answered["i-bbbb"]["2.0.0"]) <= 1
    assert [seg["release"] for seg in report["release_timeline"]["i-aaaa"]] == ["1.0.0"]
    lat = report["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"] < 2000
    assert_series_matches_totals(report)


def test_http_errors_and_bad_bodies_are_counted_by_kind() -> None:
    def script(n: int) -> Action:
        if 10 <= n < 20:
            return ("status", 503)
        if 20 <= n < 25:
            return ("status", 404)
        if 25 <= n < 28:
            return ("garbage",)
        return two_instances(n)

    with scripted_server(script) as server, loadgen.LoadGen(server.url, rate=80, max_requests=40) as load:
        assert load.stopped.wait(5), "max_requests did not stop the load"
    report = load.report
    assert report["stopped_by"] == "max_requests"
    assert report["requests"] == 40 == server.handled
    assert report["failures_by_kind"] == {
        "connect_refused": 0,
        "connection_reset": 0,
        "timeout": 0,
        "http_5xx": server.did["status 503"],
        "http_4xx": server.did["status 404"],
        "bad_body": server.did["garbage"],
        "other": 0,
    }
    assert (server.did["status 503"], server.did["status 404"], server.did["garbage"]) == (10, 5, 3)
    assert report["ok"] == server.did["version"] == 22
    assert report["status_codes"] == {"200": 25, "404": 5, "503": 10}
    first = report["failures"][0]
    assert first["kind"] == "http_5xx" and "503" in first["detail"] and "i-aaaa" in first["detail"]
    assert_series_matches_totals(report)


def test_resets_and_refused_connections_after_the_server_stops() -> None:
    def script(n: int) -> Action:
        return ("reset",) if 5 <= n < 10 else two_instances(n)

    with scripted_server(script) as server, loadgen.LoadGen(server.url, rate=40, timeout=2) as load:
        time.sleep(1.0)
        stop_server(server)
        time.sleep(1.0)
    report = load.report
    kinds = report["failures_by_kind"]
    assert server.did["reset"] == 5
    assert kinds["connection_reset"] == server.did["reset"] + server.did["reset on stop"]
    assert report["ok"] == server.did["version"]
    assert kinds["connect_refused"] == report["requests"] - server.handled - server.did["reset on stop"]
    assert kinds["connect_refused"] >= 30  # about one second of load after the stop
    assert kinds["timeout"] == kinds["other"] == 0
    refused = [f for f in report["failures"] if f["kind"] == "connect_refused"]
    assert refused and all(f["t"] >= 0.9 for f in refused)
    assert "ConnectionRefusedError" in refused[0]["detail"]
    assert_series_matches_totals(report)


def test_answers_slower_than_the_timeout_are_timeouts() -> None:
    def script(n: int) -> Action:
        return ("sleep", 1.5) if n % 2 else two_instances(n)

    started = time.monotonic()
    with scripted_server(script) as server, loadgen.LoadGen(server.url, rate=20, timeout=0.4, max_requests=10) as load:
        assert load.stopped.wait(5)
    report = load.report
    assert time.monotonic() - started < 3.5, "stop() waited for more than the timeouts"
    assert report["failures_by_kind"]["timeout"] == server.did["sleep"] == 5
    assert report["ok"] == server.did["version"] == 5
    assert report["latency_ms"]["max"] < 400
    assert report["unfinished"] == 0
    assert_series_matches_totals(report)


def test_requests_due_while_every_worker_is_busy_are_unsent_and_counted() -> None:
    def script(n: int) -> Action:
        return ("sleep", 1.0)

    with scripted_server(script) as server, loadgen.LoadGen(server.url, rate=20, timeout=2, workers=2,
                                                             max_seconds=1.5) as load:
        assert load.stopped.wait(5)
    report = load.report
    # Two workers held one second each: about 4 of the 30 planned requests went out, the rest never did.
    assert report["sent"] <= 6 and report["unsent"] >= 20, loadgen.delivery(report)
    assert report["planned"] == report["sent"] + report["unsent"]
    assert abs(report["planned"] - 20 * report["duration_s"]) <= 2
    assert sum(s.get("unsent", 0) for s in report["series"]) == report["unsent"]
    assert report["failed"] == 0  # what was sent was answered: "0 failed" alone would hide the stall
    assert "NOT SENT" in loadgen.summary(report) and "not sent" in loadgen.delivery(report)


def test_default_workers_cover_every_request_taking_its_timeout_twice() -> None:
    assert loadgen.LoadGen("http://127.0.0.1:9/version", rate=30, timeout=5).workers == 330
    assert loadgen.LoadGen("http://127.0.0.1:9/version", rate=1000, timeout=5).workers == 512  # the most
    assert loadgen.LoadGen("http://127.0.0.1:9/version", rate=30, timeout=5, workers=4).workers == 4


def test_max_seconds_stops_the_load() -> None:
    started = time.monotonic()
    with scripted_server(two_instances) as server, loadgen.LoadGen(server.url, rate=20, max_seconds=1.0) as load:
        assert load.stopped.wait(5), "max_seconds did not stop the load"
    report = load.report
    assert time.monotonic() - started < 2.5
    assert report["stopped_by"] == "max_seconds"
    assert 1.0 <= report["duration_s"] <= 1.2
    assert 18 <= report["requests"] <= 21


# -- the command line --------------------------------------------------------------------------


def test_cli_wraps_a_command_returns_its_rc_and_draws_the_timeline(tmp_path: Path) -> None:
    report_path, png_path = tmp_path / "load.json", tmp_path / "load.png"
    command = [sys.executable, "-c", "import sys, time; time.sleep(1.0); sys.exit(7)"]
    with scripted_server(two_instances) as server:
        result = run_cli(
            "--url", server.url, "--rate", "40", "--warmup", "0.5", "--cooldown", "0.5",
            "--report", str(report_path), "--png", str(png_path), "--", *command,
        )  # fmt: skip
    assert result.returncode == 7, result.stderr
    report = json.loads(report_path.read_text())
    cmd = report["command"]
    assert cmd["argv"] == command and cmd["rc"] == 7
    assert 0.45 <= cmd["started_t"] <= 1.0
    assert 1.0 <= cmd["ended_t"] - cmd["started_t"] <= 2.0
    assert report["duration_s"] >= cmd["ended_t"] + 0.45
    assert report["release_timeline"]["i-aaaa"][0]["first_t"] < cmd["started_t"], "no answers during the warmup"
    assert report["release_timeline"]["i-aaaa"][-1]["last_t"] > cmd["ended_t"], "no answers during the cooldown"
    assert report["failed"] == 0
    assert "command rc 7" in result.stdout and f"{report['requests']} requests" in result.stdout
    width, height = png_size(png_path)
    assert width >= 1000 and height >= 600
    assert png_path.stat().st_size > 20_000


def test_cli_terminates_the_command_when_a_bound_is_reached(tmp_path: Path) -> None:
    report_path = tmp_path / "load.json"
    started = time.monotonic()
    with scripted_server(two_instances) as server:
        result = run_cli(
            "--url", server.url, "--rate", "20", "--max-seconds", "1.5", "--warmup", "0.2",
            "--report", str(report_path), "--", "sleep", "30",
        )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert time.monotonic() - started < 8
    report = json.loads(report_path.read_text())
    assert report["stopped_by"] == "max_seconds"
    assert report["command"]["terminated_because"] == "max_seconds"
    assert report["command"]["rc"] == -signal.SIGTERM


def test_cli_fail_on_errors_without_a_command(tmp_path: Path) -> None:
    report_path = tmp_path / "load.json"
    with scripted_server(lambda n: ("status", 503)) as server:
        common = ["--url", server.url, "--rate", "50", "--max-requests", "10", "--report", str(report_path)]
        failing = run_cli(*common, "--fail-on-errors")
        lenient = run_cli(*common)
    assert failing.returncode == 1, failing.stderr
    assert lenient.returncode == 0, lenient.stderr
    report = json.loads(report_path.read_text())
    assert report["failures_by_kind"]["http_5xx"] == 10 == report["failed"]


def test_cli_fail_on_errors_counts_requests_not_sent(tmp_path: Path) -> None:
    report_path = tmp_path / "load.json"
    with scripted_server(lambda n: ("sleep", 1.0)) as server:
        result = run_cli("--url", server.url, "--rate", "20", "--workers", "1", "--timeout", "2",
                         "--max-seconds", "1", "--report", str(report_path), "--fail-on-errors")
    report = json.loads(report_path.read_text())
    assert report["failed"] == 0 and report["unsent"] > 0, report
    assert result.returncode == 1, result.stdout + result.stderr


def test_cli_sigterm_stops_gracefully_and_writes_the_report(tmp_path: Path) -> None:
    report_path = tmp_path / "load.json"
    with scripted_server(two_instances) as server:
        proc = subprocess.Popen(
            [sys.executable, str(LOADGEN), "--url", server.url, "--rate", "40", "--max-seconds", "30",
             "--report", str(report_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            time.sleep(1.5)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
    assert proc.returncode == 0, err
    report = json.loads(report_path.read_text())
    assert report["stopped_by"] == "signal SIGTERM"
    assert 20 <= report["requests"] <= 80 and report["failed"] == 0
    assert "stopped by signal SIGTERM" in out


# -- target health -----------------------------------------------------------------------------


def test_target_health_is_polled_from_elbv2(tmp_path: Path) -> None:
    with moto_server() as aws_url, scripted_server(two_instances) as server:
        creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        ec2 = boto3.client("ec2", endpoint_url=aws_url, region_name="us-east-1", **creds)
        elbv2 = boto3.client("elbv2", endpoint_url=aws_url, region_name="us-east-1", **creds)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        launched = ec2.run_instances(ImageId="ami-12345678", MinCount=2, MaxCount=2, SubnetId=subnet)
        first, second = (i["InstanceId"] for i in launched["Instances"])
        group = elbv2.create_target_group(Name="loadgen", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance")
        arn = group["TargetGroups"][0]["TargetGroupArn"]

        def sampled_after(t: float, states: dict[str, str] | None = None) -> bool:
            """Wait (at most 15 s: the first poll builds a boto3 client, slow when busy) for a sample after t."""
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if any(s["t"] > t and (states is None or s["states"] == states) for s in load.health_samples()):
                    return True
                time.sleep(0.1)
            return False

        both = {first: "healthy", second: "healthy"}
        with loadgen.LoadGen(server.url, rate=20, target_group_arn=arn, aws_url=aws_url, poll_interval=0.25) as load:
            assert sampled_after(0.0)
            elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": first}, {"Id": second}])
            registered_t = load.now()
            assert sampled_after(registered_t, both)
            elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": first}])
            deregistered_t = load.now()
            assert sampled_after(deregistered_t, {second: "healthy"})
            time.sleep(0.5)
    report = load.report
    load.write(tmp_path / "health.json", tmp_path / "health.png")

    samples = report["target_health"]
    assert report["target_health_errors"] == []
    assert len(samples) >= 3  # one in each phase, as waited for above
    assert samples[0]["states"] == {} and samples[0]["t"] < registered_t
    assert any(s["states"] == both for s in samples if registered_t < s["t"] < deregistered_t)
    assert samples[-1]["states"] == {second: "healthy"}
    # The deregistered target is gone from the group: it counts as out of service.
    assert report["max_targets_out_of_service"] == 1 == samples[-1]["out_of_service"]
    assert report["ok"] == report["requests"] > 0
    width, height = png_size(tmp_path / "health.png")
    assert width >= 1000 and height >= 600


def test_polling_errors_are_recorded_and_the_load_goes_on() -> None:
    dead_aws = f"http://127.0.0.1:{free_port()}"
    with (
        scripted_server(two_instances) as server,
        loadgen.LoadGen(server.url, rate=20, target_group_arn="arn:aws:elasticloadbalancing:us-east-1:123456789012:"
                        "targetgroup/none/0123456789abcdef", aws_url=dead_aws, poll_interval=0.3) as load,
    ):  # fmt: skip
        # The first poll builds a botocore client, which takes more than a second on a busy machine: wait for
        # two failed polls (bounded), and check the load went on meanwhile.
        deadline = time.monotonic() + 15
        while (load.health_error_count() < 2 or load.now() < 1.0) and time.monotonic() < deadline:
            time.sleep(0.1)
    report = load.report
    assert report["target_health"] == []
    assert report["target_health_error_count"] >= 2
    assert "Could not connect" in report["target_health_errors"][0]["detail"]
    assert report["failed"] == 0 and report["ok"] >= 15
    assert report["max_targets_out_of_service"] == 0


def test_summary_names_failures_and_who_answered() -> None:
    def script(n: int) -> Action:
        return ("status", 502) if n == 3 else two_instances(n)

    with scripted_server(script) as server, loadgen.LoadGen(server.url, rate=50, max_requests=8) as load:
        assert load.stopped.wait(5)
    text = loadgen.summary(load.report)
    assert "8 requests" in text and "1 failed (http_5xx 1)" in text
    assert "i-aaaa (1.0.0: 4)" in text and "stopped by max_requests" in text
    assert os.linesep not in text.strip()


class _KeepAliveHandler(_Handler):
    """HTTP/1.1: keeps the connection; every server.close_every-th answer then closes it without saying so,
    as a server whose idle timeout ran out between two requests does."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        super().do_GET()
        every = getattr(self.server, "close_every", 0)
        with self.server.lock:
            if every and self.server.handled % every == 0:
                self.close_connection = True


@contextmanager
def tls_server(tmp_path: Path, script: Callable[[int], Action], close_every: int = 0) -> Iterator[tuple[str, Path]]:
    """An HTTPS keep-alive server with a certificate for 127.0.0.1 from a CA of its own: (URL, CA file)."""
    import ssl

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=test CA",
            "-addext", "basicConstraints=critical,CA:TRUE")
    openssl("req", "-new", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    (tmp_path / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
            "-extfile", "ext", "-out", "srv.crt")
    server = ScriptedServer(script)
    server.RequestHandlerClass = _KeepAliveHandler
    server.close_every = close_every  # type: ignore[attr-defined]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "srv.crt", tmp_path / "srv.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/version", tmp_path / "ca.crt"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_https_with_a_ca_file_and_keep_alive(tmp_path: Path) -> None:
    with tls_server(tmp_path, two_instances, close_every=7) as (url, ca):
        with loadgen.LoadGen(url, rate=40, timeout=2, ca_file=ca, keep_alive=True, workers=4) as load:
            time.sleep(2.5)
        verified = load.report
        # Without the CA, the server's certificate is refused: every request fails.
        with loadgen.LoadGen(url, rate=20, timeout=2, max_requests=5) as untrusted:
            assert untrusted.stopped.wait(5)
    assert verified["failed"] == 0 and verified["requests"] >= 80, verified["failures"][:3]
    assert verified["keep_alive"] is True and verified["tls_ca_file"] == str(ca)
    assert set(verified["answered_by"]) == {"i-aaaa", "i-bbbb"}
    # Connections the server closed between two requests were reopened, the request sent again, not lost.
    assert verified["stale_connection_retries"] >= 5, verified["stale_connection_retries"]
    refused = untrusted.report
    assert refused["failed"] == refused["requests"] == 5
    assert all("CERTIFICATE_VERIFY_FAILED" in f["detail"] for f in refused["failures"]), refused["failures"]


# -- the release behind every answer -----------------------------------------------------------


def test_release_of_any_path_comes_from_the_x_app_version_header() -> None:
    def script(n: int) -> Action:
        if n == 5:
            return ("status", 500)
        return ("order", "i-aaaa", "1.0.0") if n % 2 == 0 else ("order", "i-bbbb", "2.0.0")

    with scripted_server(script) as server:
        url = server.url.replace("/version", "/orders/1")
        with loadgen.LoadGen(url, rate=50, max_requests=10) as load:
            assert load.stopped.wait(5)
    report = load.report
    assert report["expect"] == "status"
    assert report["requests"] == 10 and report["failed"] == 1
    assert report["answered_by"] == {"i-aaaa": {"1.0.0": 5}, "i-bbbb": {"2.0.0": 4}}
    assert {seg["release"] for segs in report["release_timeline"].values() for seg in segs} == {"1.0.0", "2.0.0"}
    assert sum(s["by_release"].get("2.0.0", 0) for s in report["series"]) == 4


def test_release_without_the_header_stays_unknown_and_the_version_body_wins_over_it() -> None:
    def script(n: int) -> Action:
        return ("version_header", "i-aaaa", "1.0.0", "9.9.9") if n % 2 == 0 else ("status", 200)

    with scripted_server(script) as server:
        with loadgen.LoadGen(server.url, rate=50, max_requests=6, expect="version") as load:
            assert load.stopped.wait(5)
        with loadgen.LoadGen(server.url.replace("/version", "/orders/1"), rate=50, max_requests=6) as plain:
            assert plain.stopped.wait(5)
    # /version: the body's release, not the header's; an answer without a body version is still bad_body
    assert load.report["answered_by"] == {"i-aaaa": {"1.0.0": 3}}
    assert load.report["failures_by_kind"]["bad_body"] == 3
    # another path: the header's release where there is one, "unknown" where an answer has none
    assert plain.report["failed"] == 0
    releases = Counter(seg["release"] for segs in plain.report["release_timeline"].values() for seg in segs)
    assert set(releases) == {"unknown", "9.9.9"}
    assert plain.report["answered_by"]["i-aaaa"] == {"9.9.9": 3, "unknown": 3}


# -- CloudWatch alarms -------------------------------------------------------------------------


def wait_for(check: Callable[[], bool], seconds: float = 15) -> bool:
    """Poll check every 0.1 s for at most seconds (the first poll builds a boto3 client: slow when busy)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_alarm_states_and_transitions_are_polled_from_cloudwatch(tmp_path: Path) -> None:
    alarm = "ec2-fleet-lab-targets-5xx-share-of-requests-over-the-threshold"
    with moto_server() as aws_url, scripted_server(two_instances) as server:
        cloudwatch = boto3.client("cloudwatch", endpoint_url=aws_url, region_name="us-east-1",
                                  aws_access_key_id="testing", aws_secret_access_key="testing")
        cloudwatch.put_metric_alarm(
            AlarmName=alarm, Namespace="AWS/ApplicationELB", MetricName="HTTPCode_Target_5XX_Count",
            Statistic="Sum", Period=10, EvaluationPeriods=1, Threshold=1.0,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
        cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="quiet before the load")
        names = [alarm, "no-such-alarm"]
        with loadgen.LoadGen(server.url, rate=20, aws_url=aws_url, poll_interval=0.25, alarm_names=names) as load:

            def shows(state: str, after: float) -> bool:
                return any(s["t"] > after and s["states"].get(alarm) == state for s in load.alarm_samples())

            assert wait_for(lambda: shows("OK", 0.0))
            cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM",
                                       StateReason="Threshold Crossed: 3 5xx answers in 10 s")
            fired_t = load.now()
            assert wait_for(lambda: shows("ALARM", fired_t))
            cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="x" * 400)
            cleared_t = load.now()
            assert wait_for(lambda: shows("OK", cleared_t))
    report = load.report
    drawn = draw(report, tmp_path / "alarms.png")

    assert report["alarm_errors"] == [] and report["alarm_error_count"] == 0
    assert report["alarm_names"] == names
    assert report["alarm_states"][0]["states"] == {alarm: "OK"}  # the missing alarm is in no sample
    moves = report["alarm_transitions"][alarm]
    assert [(m["from"], m["to"]) for m in moves] == [("OK", "ALARM"), ("ALARM", "OK")]
    assert fired_t < moves[0]["t"] < cleared_t < moves[1]["t"]
    assert moves[0]["reason"] == "Threshold Crossed: 3 5xx answers in 10 s"
    assert moves[1]["reason"] == "x" * 300
    assert report["alarm_transitions"]["no-such-alarm"] == []
    assert report["ok"] == report["requests"] > 0
    text = loadgen.summary(report)
    assert f"{alarm} OK -> ALARM -> OK" in text and "no-such-alarm not found" in text
    assert drawn["panels"][-1] == "alarms"
    assert len(drawn["alarm_bands"]) == 2 and drawn["alarm_bands"][1] == "no-such-alarm"
    assert len(drawn["alarm_bands"][0]) <= 28 and drawn["alarm_bands"][0].startswith("ec2-fleet-lab")
    assert png_size(tmp_path / "alarms.png")[0] >= 1000


def test_cli_alarm_polling_errors_are_recorded_and_the_load_goes_on(tmp_path: Path) -> None:
    dead_aws = f"http://127.0.0.1:{free_port()}"
    report_path = tmp_path / "load.json"
    with scripted_server(two_instances) as server:
        result = run_cli("--url", server.url, "--rate", "20", "--max-seconds", "1.2", "--poll-interval", "0.3",
                         "--alarm", "first", "--alarm", "second", "--aws-url", dead_aws, "--report", str(report_path))
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    assert report["alarm_names"] == ["first", "second"]
    assert report["alarm_states"] == [] and report["alarm_transitions"] == {"first": [], "second": []}
    assert report["alarm_error_count"] >= 2
    assert "Could not connect" in report["alarm_errors"][0]["detail"]
    assert "target_health" not in report  # no target group asked
    assert report["failed"] == 0 and report["ok"] >= 15
    assert "alarm polling errors" in result.stdout


@pytest.mark.parametrize(
    ("names", "problem"),
    [([""], "1-255 characters"), (["a", "a"], "must not repeat"), ([f"a{i}" for i in range(11)], "at most 10")],
)
def test_bad_alarm_names_are_refused_before_any_load(names: list[str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as refused:
        loadgen.LoadGen("http://127.0.0.1:9/version", alarm_names=names)
    assert "alarm_names" in str(refused.value)


def synthetic_report(alarm_names: list[str], duration: float = 20.0) -> dict[str, Any]:
    """A small report as build_report makes it, with alarm samples every second (ALARM from 8 s to 12 s)."""
    results = [Result(i, i * 0.5, 0.01, None, 200, "i-aaaa", "1.0.0") for i in range(40)]
    run = {"target": "http://127.0.0.1:1/orders/1", "rate": 2.0, "started_at": "2026-12-05T00:00:00+00:00",
           "stopped_by": "max_seconds", "bounds": {}, "tls_ca_file": None, "keep_alive": False,
           "stale_connection_retries": 0, "expect": "status", "command": None}
    samples = [{"t": float(t), "states": {n: "ALARM" if 8 <= t < 12 and i == 0 else "OK"
                                          for i, n in enumerate(alarm_names) if i != 1 or t >= 5},
                "reasons": {}} for t in range(2, int(duration))]
    states, transitions = alarm_report(samples, alarm_names)
    extra = {"alarm_names": alarm_names, "alarm_states": states, "alarm_transitions": transitions,
             "alarm_errors": [], "alarm_error_count": 0, "poll_interval_s": 1.0} if alarm_names else None
    return build_report(run, results, 40, [], duration, extra)


def test_plot_without_alarms_has_no_alarm_panel(tmp_path: Path) -> None:
    drawn = draw(synthetic_report([]), tmp_path / "none.png")
    assert drawn["alarm_bands"] == [] and len(drawn["panels"]) == 3
    assert "alarms" not in drawn["panels"]


def test_plot_draws_one_band_per_alarm_with_short_names_and_a_taller_figure(tmp_path: Path) -> None:
    names = ["ec2-fleet-alb-5xx-share", "ec2-fleet-staging-targets-5xx-share-of-requests",
             "ec2-fleet-staging-p99-target-response-time", "ec2-fleet-staging-unhealthy-hosts"]
    report = synthetic_report(names)
    assert [(m["from"], m["to"], m["t"]) for m in report["alarm_transitions"][names[0]]] == [
        ("OK", "ALARM", 8.0), ("ALARM", "OK", 12.0)]
    assert report["alarm_transitions"][names[1]] == []  # first seen at 5 s: not a transition
    drawn = draw(report, tmp_path / "four.png")
    draw(synthetic_report([]), tmp_path / "none.png")
    assert drawn["panels"][-1] == "alarms" and len(drawn["panels"]) == 4
    assert drawn["alarm_bands"][0] == names[0]  # short enough to stay whole
    assert drawn["alarm_bands"][1] != names[1] and "\u2026" in drawn["alarm_bands"][1]
    assert drawn["alarm_bands"][1].endswith("requests") and len(drawn["alarm_bands"][1]) == 28
    four, none = png_size(tmp_path / "four.png"), png_size(tmp_path / "none.png")
    assert four[0] == none[0] and four[1] >= none[1] + 150  # room for four readable bands


def test_alarm_bands_are_white_before_the_first_sample_and_where_an_alarm_is_missing() -> None:
    names = ["fires", "late"]
    segments = alarm_segments(synthetic_report(names))
    fires = segments["fires"]
    assert fires[0] == (0.0, 2.0, None)
    assert [(round(s, 3), round(w, 3), st) for s, w, st in fires[1:]] == [
        (2.0, 6.0, "OK"), (8.0, 4.0, "ALARM"), (12.0, 8.0, "OK")]
    late = segments["late"]
    assert [(st, round(s, 3)) for s, _w, st in late] == [(None, 0.0), ("OK", 5.0)]


def test_latency_by_release_sets_a_slow_release_beside_the_one_it_replaces() -> None:
    results = ([Result(i, i * 0.1, 0.010 + i / 10000, None, 200, "i-aaaa", "1.0.0") for i in range(100)]
               + [Result(100 + i, i * 0.1, 0.120 + i / 1000, None, 200, "i-bbbb", "1.1.0") for i in range(20)]
               + [Result(200, 1.0, 2.0, "http_5xx", 500, "i-bbbb", "1.1.0")])
    run = {"target": "http://127.0.0.1:1/orders/1", "rate": 2.0, "started_at": "2026-12-05T00:00:00+00:00",
           "stopped_by": "max_seconds", "bounds": {}, "tls_ca_file": None, "keep_alive": False,
           "stale_connection_retries": 0, "expect": "status", "command": None}
    by_release = build_report(run, results, 121, [], 10.0)["latency_by_release"]
    # Nearest rank over the ok answers only (the 2 s failure is not a latency of the release).
    assert by_release == {"1.0.0": {"count": 100, "p50": 14.9, "p99": 19.8, "max": 19.9},
                          "1.1.0": {"count": 20, "p50": 129.0, "p99": 139.0, "max": 139.0}}


def canary_report() -> dict[str, Any]:
    """20 s at 10 answers/s: i-main always on 1.0.0 in the main group; i-canary on 2.0.0 in the canary group
    from 5 s (1 answer in 10 from 5 s, 3 in 10 from 10 s), back in the main group from 15 s."""
    results, seq = [], 0
    for second in range(20):
        canary_n = 0 if second < 5 else 1 if second < 10 else 3 if second < 15 else 5
        for k in range(10):
            instance, release = ("i-canary", "2.0.0") if k < canary_n else ("i-main", "1.0.0")
            results.append(Result(seq, second + k / 10, 0.01, None, 200, instance, release))
            seq += 1
    run = {"target": "http://127.0.0.1:1/orders/1", "rate": 10.0, "started_at": "2026-12-05T00:00:00+00:00",
           "stopped_by": "max_seconds", "bounds": {}, "tls_ca_file": None, "keep_alive": False,
           "stale_connection_retries": 0, "expect": "status", "command": None}
    main = [{"t": float(t), "states": {"i-main": "healthy", **({"i-canary": "healthy"} if t >= 15 else {})}}
            for t in range(20)]
    canary = [{"t": float(t), "states": {"i-canary": "healthy"} if 4 <= t < 16 else {}} for t in range(20)]
    extra = {"target_health": main, "max_targets_out_of_service": 0, "poll_interval_s": 1.0,
             "canary_target_health": canary}
    return build_report(run, results, len(results), [], 20.0, extra)


def test_the_canary_groups_share_follows_the_weights_and_stops_when_it_joins_the_main_group() -> None:
    report = canary_report()
    share = canary_group_share(report)
    assert share is not None and share[:5] == [0.0] * 5
    assert share[5:10] == [10.0] * 5 and share[10:15] == [30.0] * 5
    # From 15 s it is healthy in the main group too: its answers count for the main one.
    assert share[15:] == [0.0] * 5
    assert release_shares(report)["2.0.0"][15:] == [50.0] * 5
    assert canary_group_share({**report, "canary_target_health": None}) is None


def test_plot_draws_the_share_panel_with_two_releases_or_a_canary_group(tmp_path: Path) -> None:
    drawn = draw(canary_report(), tmp_path / "canary.png")
    assert "share of answers (%)" in drawn["panels"] and len(drawn["panels"]) == 4
    assert (tmp_path / "canary.png").stat().st_size > 10_000
    assert "share of answers (%)" not in draw(synthetic_report([]), tmp_path / "one.png")["panels"]
