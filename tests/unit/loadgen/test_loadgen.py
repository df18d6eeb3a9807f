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
        self.client_ports: set[int] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/version"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # writes to connections the client already gave up on (timeouts)


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedServer

    def do_GET(self) -> None:
        with self.server.lock:
            n = self.server.handled
            self.server.handled += 1
            self.server.client_ports.add(self.client_address[1])
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
        elif kind == "garbage":
            self._send(200, b"<html>not json</html>")
        else:
            body = {"service": "orders-api", "version": action[2], "instance_id": action[1]}
            self._send(200, json.dumps(body).encode(), served_by=action[1])

    def _send(self, status: int, body: bytes, served_by: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if served_by:
            self.send_header("X-Served-By", served_by)
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
    # One connection per request: every request came from its own client port.
    assert len(server.client_ports) == report["requests"]
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
        time.sleep(1.0)
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
