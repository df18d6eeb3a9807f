"""The Node.js fixture service: 2-fd socket activation, PORT fallback, broken-release switch, SIGTERM."""

from __future__ import annotations

import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from .conftest import APP_DIR, NODE, SD_LAUNCH, AppProcess, Reply, free_port, request

SERVER_JS = APP_DIR / "node" / "server.js"
pytestmark = pytest.mark.skipif(not Path(NODE).exists(), reason="node is not installed")


def activated(launch, tmp_path: Path, **env: str) -> tuple[AppProcess, str, str]:
    tcp = f"127.0.0.1:{free_port()}"
    probe = str(tmp_path / "probe.sock")
    app = launch(
        {"APP_VERSION": "7.0.0-node", **env},
        cmd=[sys.executable, str(SD_LAUNCH), "--tcp", tcp, "--unix", probe, "--", NODE, str(SERVER_JS)],
        target=tcp,
    )
    return app, tcp, f"unix:{probe}"


def test_serves_on_both_socket_activated_fds(launch, tmp_path: Path) -> None:
    app, tcp, unix = activated(launch, tmp_path, PORT=str(free_port()))
    for target in (tcp, unix):
        assert request(target, "GET", "/health").status == 200
        assert request(target, "GET", "/ready").status == 200
        version = request(target, "GET", "/version").json()
        assert version["version"] == "7.0.0-node"
        assert version["pid"] == app.proc.pid  # LISTEN_PID matched the exec'd process
    assert request(tcp, "GET", "/nope").status == 404


def test_listens_on_port_without_socket_activation(launch) -> None:
    port = free_port()
    launch({"APP_VERSION": "7.0.1", "PORT": str(port)}, cmd=[NODE, str(SERVER_JS)], target=f"127.0.0.1:{port}")
    assert request(f"127.0.0.1:{port}", "GET", "/version").json()["version"] == "7.0.1"


def test_ready_fail_env_marks_a_broken_release(launch, tmp_path: Path) -> None:
    _, tcp, unix = activated(launch, tmp_path, READY_FAIL="1")
    assert request(tcp, "GET", "/health").status == 200
    reply = request(unix, "GET", "/ready")
    assert reply.status == 503 and reply.json()["reason"] == "READY_FAIL=1"


def test_ready_fail_marker_file_marks_a_broken_release(launch, tmp_path: Path) -> None:
    release = tmp_path / "release"
    release.mkdir()
    shutil.copy(SERVER_JS, release / "server.js")
    (release / "READY_FAIL").touch()
    port = free_port()
    launch({"APP_VERSION": "bad", "PORT": str(port)}, cmd=[NODE, str(release / "server.js")],
           target=f"127.0.0.1:{port}")
    assert request(f"127.0.0.1:{port}", "GET", "/ready").status == 503


def test_sigterm_lets_in_flight_requests_finish(launch, tmp_path: Path) -> None:
    app, tcp, unix = activated(launch, tmp_path, APP_DEBUG_ENDPOINTS="1")
    results: dict[str, Reply | Exception] = {}

    def slow(target: str) -> None:
        try:
            results[target] = request(target, "GET", "/debug/sleep?seconds=1.5", timeout=10)
        except Exception as exc:
            results[target] = exc

    threads = [threading.Thread(target=slow, args=(t,)) for t in (tcp, unix)]
    for t in threads:
        t.start()
    time.sleep(0.4)
    started = time.monotonic()
    app.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(OSError):
        request(tcp, "GET", "/health", timeout=1)
    assert app.proc.wait(10) == 0
    assert time.monotonic() - started > 0.8
    for t in threads:
        t.join(10)
    for target in (tcp, unix):
        reply = results[target]
        assert isinstance(reply, Reply), f"{target}: {reply!r}"
        assert reply.status == 200
