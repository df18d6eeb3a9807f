"""Real PostgreSQL and Redis on 127.0.0.1 (random free ports, temp dirs) and the service run as users run it.

Everything started here is stopped at the end of the session, also when a test fails.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
NODE = shutil.which("node") or "/usr/bin/node"
TESTS = Path(__file__).resolve().parent
APP_DIR = TESTS.parent
SD_LAUNCH = TESTS / "sd_launch.py"
ORDERS_API = Path(sys.executable).with_name("orders-api")
PG_PASSWORD = "p@ss:w/rd-1"  # URL-special characters on purpose: quoting must work
REDIS_PASSWORD = "redis-s3cret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ProcessDied(Exception):
    pass


def wait_until(check: Any, timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except ProcessDied:
            raise
        except Exception as exc:  # retried until the deadline
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc!r})")


# -- HTTP client (TCP or Unix socket) -----------------------------------------------------------


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    target: str,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Reply:
    """target: 'HOST:PORT' or 'unix:/path'."""
    if target.startswith("unix:"):
        conn: http.client.HTTPConnection = _UnixConnection(target[5:], timeout)
    else:
        host, port = target.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


# -- PostgreSQL ---------------------------------------------------------------------------------


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


class PostgresServer:
    def __init__(self, base: Path) -> None:
        self.dir = base
        self.data = base / "data"
        self.port = free_port()
        self.log = base / "postgres.log"

    def init(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        pwfile = self.dir / "pwfile"
        pwfile.write_text(PG_PASSWORD + "\n", encoding="utf-8")
        if os.geteuid() == 0:
            pg = pwd.getpwnam("postgres")
            for p in (self.dir, pwfile):
                os.chown(p, pg.pw_uid, pg.pw_gid)
        subprocess.run(
            _as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--pwfile", str(pwfile),
                          "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"]),
            check=True, capture_output=True, timeout=60,
        )

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts,
                          "-w", "-t", "30", "start"]),
            check=True, capture_output=True, timeout=40,
        )

    def stop(self) -> None:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]),
            capture_output=True, timeout=30,
        )

    def psql(self, sql: str, db: str = "postgres") -> str:
        out = subprocess.run(
            _as_postgres([str(PG_BIN / "psql"), "-h", str(self.dir), "-p", str(self.port), "-U", "postgres",
                          "-d", db, "-v", "ON_ERROR_STOP=1", "-Atc", sql]),
            check=True, capture_output=True, text=True, timeout=30,
        )
        return out.stdout.strip()

    def url(self, db: str = "orders") -> str:
        from urllib.parse import quote

        return f"postgresql://postgres:{quote(PG_PASSWORD, safe='')}@127.0.0.1:{self.port}/{db}"


@pytest.fixture(scope="session")
def tmp_base() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="orders-api-test-"))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(tmp_base: Path) -> Iterator[PostgresServer]:
    server = PostgresServer(tmp_base / "pg")
    server.init()
    server.start()
    try:
        server.psql("CREATE DATABASE orders")
        yield server
    finally:
        server.stop()


# -- Redis --------------------------------------------------------------------------------------


class RedisServer:
    def __init__(self, base: Path, tls: dict[str, str] | None = None) -> None:
        self.dir = base
        self.port = free_port()
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [REDIS_SERVER, "--bind", "127.0.0.1", "--requirepass", REDIS_PASSWORD, "--save", "",
                "--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no", "--logfile",
                str(self.dir / "redis.log")]
        if self.tls:
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", self.tls["cert"],
                     "--tls-key-file", self.tls["key"], "--tls-ca-cert-file", self.tls["ca"],
                     "--tls-auth-clients", "no"]
        else:
            args += ["--port", str(self.port)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self._accepts(), 10, what=f"redis on {self.port}")

    def _accepts(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
            return True

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://default:{REDIS_PASSWORD}@127.0.0.1:{self.port}/0"

    def client(self) -> Any:
        import redis

        kwargs: dict[str, Any] = {}
        if self.tls:
            kwargs["ssl_ca_certs"] = self.tls["ca"]
        return redis.Redis.from_url(self.url, socket_timeout=5, **kwargs)


@pytest.fixture(scope="session")
def redis_server(tmp_base: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_base / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_redis(tmp_base: Path) -> Iterator[Any]:
    """A private Redis for tests that stop or pause it."""
    started: list[RedisServer] = []

    def make(**kwargs: Any) -> RedisServer:
        server = RedisServer(tmp_base / f"redis-{len(started)}-{time.monotonic_ns()}", **kwargs)
        started.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.stop()


# -- fake EC2 instance metadata service (IMDSv2 only) -------------------------------------------


@dataclass
class FakeImds:
    url: str
    instance_id: str
    token: str = "tok-123"
    calls: list[str] = field(default_factory=list)
    failures_left: int = 0  # the next this many token requests answer 503 (a busy metadata service)


@pytest.fixture(scope="session")
def fake_imds() -> Iterator[FakeImds]:
    imds = FakeImds(url="", instance_id="i-0abc1234def567890")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            imds.calls.append(f"PUT {self.path}")
            if imds.failures_left > 0:
                imds.failures_left -= 1
                self._reply(503, "busy")
            elif self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                self._reply(200, imds.token)
            else:
                self._reply(400, "bad token request")

        def do_GET(self) -> None:
            imds.calls.append(f"GET {self.path}")
            if self.headers.get("X-aws-ec2-metadata-token") != imds.token:
                self._reply(401, "IMDSv2 token required")
            elif self.path == "/latest/meta-data/instance-id":
                self._reply(200, imds.instance_id)
            else:
                self._reply(404, "not found")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    imds.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield imds
    server.shutdown()
    server.server_close()


# -- the service --------------------------------------------------------------------------------


class AppProcess:
    """`orders-api` (or any command) as a subprocess, with its log captured to a file."""

    def __init__(self, cmd: list[str], env: dict[str, str], log_path: Path, target: str,
                 pass_fds: tuple[int, ...] = ()) -> None:
        self.cmd = cmd
        self.pass_fds = pass_fds
        self.env = env
        self.log_path = log_path
        self.target = target
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> AppProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, pass_fds=self.pass_fds)
        if wait:
            wait_until(self._healthy, 20, interval=0.1, what=f"{self.cmd[0]} /health on {self.target}")
        return self

    def _healthy(self) -> bool:
        if self.proc and self.proc.poll() is not None:
            raise ProcessDied(f"process exited with {self.proc.returncode}:\n{self.logs()[-3000:]}")
        return request(self.target, "GET", "/health", timeout=2).status == 200

    def get(self, path: str, **kwargs: Any) -> Reply:
        return request(self.target, "GET", path, **kwargs)

    def send(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return request(self.target, method, path, body, **kwargs)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 30) -> int:
        if not self.proc:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        rc = self.proc.returncode
        # Workers are in the same session: make sure none is left behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return rc


@pytest.fixture
def launch(tmp_base: Path) -> Iterator[Any]:
    """launch(env_overrides, cmd=None, target=None, wait=True, pass_fds=()) -> AppProcess; all stopped at
    test end."""
    started: list[AppProcess] = []

    def _launch(env: dict[str, str], cmd: list[str] | None = None, target: str | None = None,
                wait: bool = True, pass_fds: tuple[int, ...] = ()) -> AppProcess:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "PG", "REDIS"))}
        full_env.update({"LOG_LEVEL": "INFO", "METADATA_URL": "off", "WEB_CONCURRENCY": "1",
                         "GRACEFUL_TIMEOUT_SECONDS": "10"})
        if cmd is None and "BIND" not in env:
            env = {**env, "BIND": f"127.0.0.1:{free_port()}"}
        full_env.update(env)
        target = target or full_env.get("BIND", "")
        log_path = tmp_base / f"app-{len(started)}-{time.monotonic_ns()}.log"
        proc = AppProcess(cmd or [str(ORDERS_API)], full_env, log_path, target, pass_fds)
        started.append(proc)
        return proc.start(wait=wait)

    yield _launch
    for proc in started:
        proc.terminate(timeout=15)


def app_env(postgres: PostgresServer, redis_url: str, **extra: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": postgres.url(),
        "REDIS_URL": redis_url,
        "APP_VERSION": "1.2.3",
        "CACHE_TTL_SECONDS": "60",
        "CACHE_KEY_PREFIX": "test:",
        "DB_TIMEOUT_SECONDS": "1",
        "REDIS_TIMEOUT_SECONDS": "0.3",
        "REDIS_RETRY_SECONDS": "1",
        "READY_TIMEOUT_SECONDS": "0.5",
    }
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def service(postgres: PostgresServer, redis_server: RedisServer, fake_imds: FakeImds,
            tmp_base: Path) -> Iterator[AppProcess]:
    """The shared instance: 2 workers, TTL 3 s, prefix 'test:', fake IMDS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "PG", "REDIS"))}
    # The fake IMDS is a thread of this busy pytest process: give it the longest bound the app
    # accepts, so a slow answer under a loaded CI is not mistaken for "no metadata service".
    env.update(app_env(postgres, redis_server.url, CACHE_TTL_SECONDS="3", METADATA_URL=fake_imds.url,
                       METADATA_TIMEOUT_SECONDS="10", WEB_CONCURRENCY="2", BIND=f"127.0.0.1:{free_port()}"))
    proc = AppProcess([str(ORDERS_API)], env, tmp_base / "service.log", env["BIND"])
    proc.start()
    yield proc
    proc.terminate()


def new_order(**overrides: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "customer": "acme",
        "items": [{"sku": "A-1", "qty": 2, "unit_price_cents": 1250}, {"sku": "B-2", "qty": 1, "unit_price_cents": 99}],
    }
    order.update(overrides)
    return order
