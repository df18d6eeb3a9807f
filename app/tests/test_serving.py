"""How the service is run: socket activation with 2 fds, graceful SIGTERM, /version via IMDSv2,
TLS to Redis, concurrent schema creation."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from orders_api.db import Database

from .conftest import (
    ORDERS_API,
    SD_LAUNCH,
    AppProcess,
    FakeImds,
    PostgresServer,
    Reply,
    app_env,
    free_port,
    new_order,
    request,
    wait_until,
)


def test_version_reports_release_instance_id_from_imdsv2_and_cache_endpoint(
    service: AppProcess, fake_imds: FakeImds, redis_server
) -> None:
    first = service.get("/version").json()
    assert first["version"] == "1.2.3"
    assert first["instance_id"] == fake_imds.instance_id
    assert first["instance_id_source"] == "imds"
    assert first["cache_endpoint"] == f"redis://127.0.0.1:{redis_server.port}/0"
    assert "redis-s3cret" not in str(first)
    assert "PUT /latest/api/token" in fake_imds.calls  # the IMDSv2 handshake was used
    calls = len(fake_imds.calls)
    for _ in range(4):
        assert service.get("/version").json()["instance_id"] == fake_imds.instance_id
    assert len(fake_imds.calls) <= calls + 2, "the instance id must be cached (one lookup per worker)"


def test_version_falls_back_to_the_hostname_quickly_without_metadata(
    launch, postgres: PostgresServer, redis_server
) -> None:
    dead = free_port()  # nothing listens there
    app: AppProcess = launch(app_env(postgres, redis_server.url, METADATA_URL=f"http://127.0.0.1:{dead}"))
    started = time.monotonic()
    body = app.get("/version").json()
    assert time.monotonic() - started < 1.5
    assert body["instance_id"] == socket.gethostname()
    assert body["instance_id_source"] == "hostname"


def test_the_instance_id_arrives_in_x_served_by_after_the_metadata_service_failed_at_start(
    launch, postgres: PostgresServer, redis_server, fake_imds: FakeImds
) -> None:
    # A busy first boot: the first two lookups fail. The worker keeps asking in the background
    # (after 1 s, then 2 s), and every response names the instance without any /version call.
    fake_imds.failures_left = 2
    try:
        app: AppProcess = launch(app_env(postgres, redis_server.url, METADATA_URL=fake_imds.url,
                                         METADATA_TIMEOUT_SECONDS="5"))
        first = app.get("/health")
        assert first.headers.get("x-served-by") in (None, socket.gethostname()), first.headers
        served_by = wait_until(
            lambda: app.get("/health").headers.get("x-served-by") == fake_imds.instance_id, 15,
            interval=0.2, what="X-Served-By to name the instance")
        assert served_by
        assert fake_imds.failures_left == 0
    finally:
        fake_imds.failures_left = 0
    assert "instance metadata answered: " + fake_imds.instance_id in app.logs()


def test_socket_activation_serves_http_on_both_passed_fds(
    launch, postgres: PostgresServer, redis_server, tmp_path: Path
) -> None:
    tcp = f"127.0.0.1:{free_port()}"
    probe = str(tmp_path / "probe.sock")
    unused_bind = f"127.0.0.1:{free_port()}"
    app: AppProcess = launch(
        app_env(postgres, redis_server.url, BIND=unused_bind, WEB_CONCURRENCY="2"),
        cmd=[sys.executable, str(SD_LAUNCH), "--tcp", tcp, "--unix", probe, "--", str(ORDERS_API)],
        target=tcp,
    )
    over_tcp = request(tcp, "GET", "/health")
    over_unix = request(f"unix:{probe}", "GET", "/health")
    assert over_tcp.status == over_unix.status == 200
    assert request(f"unix:{probe}", "GET", "/ready").json()["status"] == "ready"
    order = request(tcp, "POST", "/orders", new_order()).json()
    assert request(f"unix:{probe}", "GET", f"/orders/{order['id']}").json()["id"] == order["id"]
    # the passed sockets replace BIND
    with pytest.raises(ConnectionRefusedError):
        request(unused_bind, "GET", "/health", timeout=2)
    # the master is the launcher's pid (execv kept it), so systemd's LISTEN_PID matched
    assert app.proc is not None
    assert f"({app.proc.pid})" in app.logs()
    assert f"Listening at: http://{tcp},unix:{probe}" in app.logs()


def test_sigterm_finishes_in_flight_requests_then_exits(
    launch, postgres: PostgresServer, redis_server, tmp_path: Path
) -> None:
    tcp = f"127.0.0.1:{free_port()}"
    probe = str(tmp_path / "probe.sock")
    app: AppProcess = launch(
        app_env(postgres, redis_server.url, APP_DEBUG_ENDPOINTS="1", GRACEFUL_TIMEOUT_SECONDS="10"),
        cmd=[sys.executable, str(SD_LAUNCH), "--tcp", tcp, "--unix", probe, "--", str(ORDERS_API)],
        target=tcp,
    )
    results: dict[str, Reply | Exception] = {}

    def slow(name: str, target: str) -> None:
        try:
            results[name] = request(target, "GET", "/debug/sleep?seconds=2", timeout=15)
        except Exception as exc:
            results[name] = exc

    threads = [threading.Thread(target=slow, args=("tcp", tcp)),
               threading.Thread(target=slow, args=("unix", f"unix:{probe}"))]
    for t in threads:
        t.start()
    time.sleep(0.7)  # both requests are in the worker
    assert app.proc is not None
    sent = time.monotonic()
    app.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(OSError):  # no longer accepting
        request(tcp, "GET", "/health", timeout=1)
    rc = app.proc.wait(15)
    took = time.monotonic() - sent
    for t in threads:
        t.join(15)
    for name in ("tcp", "unix"):
        reply = results[name]
        assert isinstance(reply, Reply), f"{name}: in-flight request failed: {reply!r}"
        assert reply.status == 200 and reply.json()["slept"] == 2.0
    assert rc == 0
    assert 1.0 < took < 5.0, f"shutdown took {took:.2f}s"


def test_debug_endpoint_is_off_by_default(service: AppProcess) -> None:
    assert service.get("/debug/sleep?seconds=0").status == 404


def test_schema_creation_is_safe_when_many_processes_start_at_once(postgres: PostgresServer) -> None:
    postgres.psql("DROP DATABASE IF EXISTS schema_race")
    postgres.psql("CREATE DATABASE schema_race")

    async def race() -> list[bool]:
        dbs = [Database(postgres.url("schema_race"), timeout=10, pool_size=1) for _ in range(8)]
        try:
            return await asyncio.gather(*(db.prepare() for db in dbs))
        finally:
            for db in dbs:
                await db.close()

    assert asyncio.run(race()) == [True] * 8
    assert postgres.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'orders'", db="schema_race") == "1"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("tls")
    ca_key, ca, key, csr, cert = (str(d / n) for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True, timeout=30)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "1",
        "-subj", "/CN=orders-api test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "1",
        "-extfile", str(ext))
    os.chmod(key, 0o644)
    return {"ca": ca, "cert": cert, "key": key}


def test_rediss_with_a_ca_file_uses_the_tls_cache(
    launch, postgres: PostgresServer, make_redis, tls_files: dict[str, str]
) -> None:
    redis = make_redis(tls=tls_files)
    assert redis.url.startswith("rediss://")
    app: AppProcess = launch(app_env(postgres, redis.url, REDIS_CA_FILE=tls_files["ca"]))
    assert app.get("/ready").json()["cache"]["state"] == "up"
    order = app.send("POST", "/orders", new_order()).json()
    app.get(f"/orders/{order['id']}")
    assert app.get(f"/orders/{order['id']}").headers["x-cache"] == "hit"
    assert redis.client().exists(f"test:order:{order['id']}") == 1


def test_rediss_without_the_ca_file_refuses_the_untrusted_certificate(
    launch, postgres: PostgresServer, make_redis, tls_files: dict[str, str]
) -> None:
    redis = make_redis(tls=tls_files)
    app: AppProcess = launch(app_env(postgres, redis.url))
    ready = app.get("/ready")
    assert ready.status == 200 and ready.json()["cache"]["state"] == "degraded"
    assert "certificate" in ready.json()["cache"]["error"].lower()
