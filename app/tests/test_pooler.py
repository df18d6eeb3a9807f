"""The db layer and the service through a real PgBouncer in transaction mode (as Supabase's pooler on port
6543): no server-side prepared statement, no session state, a timed-out statement cancelled in the server,
TLS to the pooler, and the database behind it stopped and started again.

PgBouncer (Debian's package, /usr/sbin/pgbouncer) runs on 127.0.0.1 on a free port, in front of the
session's PostgreSQL or of a private one; everything started here is stopped at the end of the module.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from orders_api.db import Database, DatabaseUnavailable

from .conftest import PG_PASSWORD, AppProcess, PostgresServer, app_env, free_port, new_order, wait_until

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
pytestmark = pytest.mark.skipif(not os.path.exists(PGBOUNCER), reason="pgbouncer is not installed (make host-deps)")


class PgBouncer:
    """PgBouncer in transaction mode in front of one PostgreSQL: database `orders` (pool of 2 server
    connections) and `orders_one` (a pool of 1: whatever a client leaves on it, the next one gets)."""

    def __init__(self, base: Path, postgres: PostgresServer, tls: dict[str, str]) -> None:
        self.dir = base
        self.postgres = postgres
        self.tls = tls
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PgBouncer:
        self.dir.mkdir(parents=True, exist_ok=True)
        # Auth as Supabase's pooler: a user and its password (SCRAM), checked by the pooler itself.
        (self.dir / "userlist.txt").write_text(f'"postgres" "{PG_PASSWORD}"\n')
        backend = f"host=127.0.0.1 port={self.postgres.port} dbname=orders"
        (self.dir / "pgbouncer.ini").write_text(
            f"""[databases]
orders = {backend}
orders_one = {backend} pool_size=1

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
logfile = {self.dir}/pgbouncer.log
auth_type = scram-sha-256
auth_file = {self.dir}/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = 2
max_client_conn = 200
server_login_retry = 1
server_connect_timeout = 2
client_tls_sslmode = require
client_tls_key_file = {self.tls['key']}
client_tls_cert_file = {self.tls['cert']}
"""
        )
        cmd = [PGBOUNCER, str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:  # pgbouncer refuses to run as root
            pg = pwd.getpwnam("postgres")
            for p in (self.dir, *self.dir.iterdir()):
                os.chown(p, pg.pw_uid, pg.pw_gid)
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._accepts, 10, what=f"pgbouncer on {self.port}")
        return self

    def _accepts(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"pgbouncer exited with {self.proc.returncode}: {self.log()[-2000:]}")
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

    def log(self) -> str:
        path = self.dir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def url(self, db: str = "orders", tls: str = "verify-full") -> str:
        query = f"sslmode={tls}" + (f"&sslrootcert={self.tls['ca']}" if tls == "verify-full" else "")
        return f"postgresql://postgres:{quote(PG_PASSWORD, safe='')}@localhost:{self.port}/{db}?{query}"

    def show(self, what: str) -> list[dict[str, Any]]:
        """SHOW POOLS / STATS / CLIENTS ... from the admin console (simple query protocol)."""
        with psycopg.connect(self.url("pgbouncer"), autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
            return conn.execute(f"SHOW {what}").fetchall()  # type: ignore[no-any-return]

    def stats(self, db: str = "orders") -> dict[str, Any]:
        """A database's row (none before its first client: zeros)."""
        return next((row for row in self.show("STATS") if row["database"] == db), {"total_xact_count": 0})


@pytest.fixture(scope="module")
def tls(tmp_base: Path) -> dict[str, str]:
    d = tmp_base / "pooler-tls"  # readable by pgbouncer running as postgres (pytest's tmp dirs are not)
    d.mkdir(mode=0o755, exist_ok=True)
    ca_key, ca, key, csr, cert = (str(d / n) for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True, timeout=30)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "1",
        "-subj", "/CN=pooler test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "1",
        "-extfile", str(d / "ext.cnf"))
    os.chmod(key, 0o644)  # read by pgbouncer running as postgres
    return {"ca": ca, "cert": cert, "key": key}


@pytest.fixture(scope="module")
def pooler(postgres: PostgresServer, tmp_base: Path, tls: dict[str, str]) -> Iterator[PgBouncer]:
    bouncer = PgBouncer(tmp_base / f"pgbouncer-{time.monotonic_ns()}", postgres, tls).start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _worker(db: Database, n: int, tag: str) -> list[int]:
    """What one service process does: create orders, read and change each, read again."""
    ids = []
    for i in range(n):
        order = await db.create_order({"customer": f"{tag}-{i}", "items": [{"sku": "P-1", "qty": 1}],
                                       "amount_cents": 100 + i, "currency": "USD", "status": "new"})
        ids.append(order["id"])
        assert (await db.get_order(order["id"]))["customer"] == f"{tag}-{i}"
        assert (await db.update_order(order["id"], {"status": "paid"}))["status"] == "paid"
        assert (await db.get_order(order["id"]))["status"] == "paid"
    return ids


def test_many_processes_share_two_server_connections_with_no_prepared_statement_error(
    pooler: PgBouncer, postgres: PostgresServer
) -> None:
    """6 processes x 4 connections each through a pool of 2 server connections; the same statements
    run 20+ times on every connection (psycopg would prepare them after 5 with its default)."""
    before = pooler.stats()

    async def main() -> tuple[list[list[int]], list[Database]]:
        dbs = [Database(pooler.url(), timeout=5, pool_size=4) for _ in range(6)]
        try:
            per_db = await asyncio.gather(*(
                asyncio.gather(*(_worker(db, 6, f"pool-{d}-{t}") for t in range(4))) for d, db in enumerate(dbs)
            ))
            return [ids for group in per_db for ids in group], dbs
        finally:
            for db in dbs:
                await db.close()

    results, dbs = run(main())
    ids = [i for ids in results for i in ids]
    assert len(ids) == len(set(ids)) == 6 * 4 * 6
    assert sum(db.stats.errors for db in dbs) == 0
    assert sum(db.stats.connections_opened for db in dbs) > 2  # many clients ...
    pool = next(row for row in pooler.show("POOLS") if row["database"] == "orders")
    assert pool["sv_active"] + pool["sv_idle"] + pool["sv_used"] + pool["sv_tested"] + pool["sv_login"] <= 2
    after = pooler.stats()
    assert after["total_xact_count"] - before["total_xact_count"] >= len(ids) * 4  # ... all through the pooler
    in_db = postgres.psql(f"SELECT count(*) FROM orders WHERE id IN ({','.join(map(str, ids))}) "
                          "AND status = 'paid'", db="orders")
    assert int(in_db) == len(ids)
    assert "prepared statement" not in pooler.log()


def test_the_db_layer_leaves_no_session_state_for_the_next_client_of_the_pooler(pooler: PgBouncer) -> None:
    """orders_one has one server connection: what the app leaves on it, another client gets (a report,
    a migration): a statement of 1.5 s must run there, with the server's own settings."""

    async def use_the_app() -> None:
        db = Database(pooler.url("orders_one"), timeout=1, pool_size=2)
        try:
            await _worker(db, 3, "session-state")
        finally:
            await db.close()

    run(use_the_app())
    with psycopg.connect(pooler.url("orders_one"), autocommit=True, prepare_threshold=None) as other:
        assert other.execute("SHOW statement_timeout").fetchone() == ("0",)
        other.execute("SELECT pg_sleep(1.5)")  # cancelled after 1 s if the app's SET had stayed behind


def test_schema_created_once_by_processes_starting_together_through_the_pooler(
    pooler: PgBouncer, postgres: PostgresServer
) -> None:
    postgres.psql("CREATE TABLE IF NOT EXISTS keep_orders AS SELECT * FROM orders", db="orders")
    postgres.psql("DROP TABLE orders", db="orders")

    async def main() -> list[bool]:
        dbs = [Database(pooler.url(), timeout=5, pool_size=1) for _ in range(8)]
        try:
            return list(await asyncio.gather(*(db.prepare() for db in dbs)))
        finally:
            for db in dbs:
                await db.close()

    try:
        assert run(main()) == [True] * 8
        # no advisory lock left held on a server connection of the pooler
        assert postgres.psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'", db="orders") == "0"
    finally:
        postgres.psql("CREATE TABLE IF NOT EXISTS orders AS SELECT * FROM keep_orders WHERE false", db="orders")
        postgres.psql("DROP TABLE keep_orders", db="orders")


def test_a_statement_that_times_out_is_cancelled_in_the_server_through_the_pooler(
    pooler: PgBouncer, postgres: PostgresServer
) -> None:
    """An update blocked by another session's row lock: the caller gets DatabaseUnavailable within the
    timeout, and the statement does not keep waiting in the server (nor holding the pooler's connection)."""

    async def main() -> tuple[float, float]:
        db = Database(pooler.url(), timeout=1, pool_size=2)
        try:
            order = await db.create_order({"customer": "locked", "items": [], "amount_cents": 1,
                                           "currency": "USD", "status": "new"})
            with psycopg.connect(postgres.url(), autocommit=False) as holder:
                holder.execute("SELECT id FROM orders WHERE id = %s FOR UPDATE", (order["id"],))
                started = time.monotonic()
                with pytest.raises(DatabaseUnavailable):
                    await db.update_order(order["id"], {"status": "paid"})
                took = time.monotonic() - started

                def waiting() -> int:
                    return int(postgres.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                             "AND query LIKE 'UPDATE orders%'", db="orders"))

                gone_at = time.monotonic()
                wait_until(lambda: waiting() == 0, 3, what="the blocked UPDATE cancelled in the server")
                holder.rollback()
            # the pooler's connection is usable again at once
            assert (await db.get_order(order["id"]))["status"] == "new"
            return took, time.monotonic() - gone_at
        finally:
            await db.close()

    took, _ = run(main())
    assert took < 2.0, f"the timed-out update answered after {took:.2f} s (timeout 1 s)"


def test_the_service_through_the_pooler_with_tls_verified_against_its_ca(
    launch: Any, pooler: PgBouncer, postgres: PostgresServer, redis_server: Any
) -> None:
    env = app_env(postgres, redis_server.url, WEB_CONCURRENCY="2", DATABASE_URL=pooler.url())
    app: AppProcess = launch(env)
    assert app.get("/ready").json()["database"]["state"] == "up"
    ids = []
    for n in range(20):
        reply = app.send("POST", "/orders", new_order(customer=f"svc-{n}"))
        assert reply.status == 201, reply.body
        ids.append(reply.json()["id"])
    for order_id in ids:
        assert app.get(f"/orders/{order_id}").status == 200
    assert app.send("PATCH", f"/orders/{ids[0]}", {"status": "paid"}).json()["status"] == "paid"
    clients = [c for c in pooler.show("CLIENTS") if c["database"] == "orders" and c["application_name"] == "orders-api"]
    assert clients and all(c["tls"] for c in clients), clients
    assert "prepared statement" not in app.logs() and "database_unavailable" not in app.logs()


def test_the_pooler_refuses_a_client_without_tls(pooler: PgBouncer) -> None:
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pooler.url(tls="disable"), connect_timeout=3).close()


def test_database_stopped_behind_the_pooler_answers_quickly_then_recovers(
    tmp_base: Path, tls: dict[str, str]
) -> None:
    """The lab's db-stop through the pooler: writes fail within the timeout (no wait for a server
    connection), and succeed again once PostgreSQL is back, with no restart of the client."""
    private = PostgresServer(tmp_base / f"pg-pooled-{time.monotonic_ns()}")
    private.init()
    private.start()
    bouncer: PgBouncer | None = None
    try:
        private.psql("CREATE DATABASE orders")
        bouncer = PgBouncer(tmp_base / f"pgbouncer-down-{time.monotonic_ns()}", private, tls).start()

        async def main() -> tuple[list[float], float]:
            db = Database(bouncer.url(), timeout=1, pool_size=2)
            order = {"customer": "down", "items": [], "amount_cents": 1, "currency": "USD", "status": "new"}
            try:
                await db.create_order(order)
                private.stop()
                failures = []
                for _ in range(5):
                    started = time.monotonic()
                    with pytest.raises(DatabaseUnavailable):
                        await db.create_order(order)
                    failures.append(time.monotonic() - started)
                    await asyncio.sleep(0.3)
                private.start()
                back = time.monotonic()
                for _ in range(100):  # bounded: 100 x (at most 1 s + 0.1 s)
                    with contextlib.suppress(DatabaseUnavailable):
                        await db.create_order(order)
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError(f"no write accepted after PostgreSQL came back: {bouncer.log()[-2000:]}")
                return failures, time.monotonic() - back
            finally:
                await db.close()

        failures, recovery = run(main())
        assert max(failures) < 2.0, f"writes with the database down took {failures} s (timeout 1 s)"
        assert recovery < 10, f"writes accepted again {recovery:.1f} s after PostgreSQL answered"
    finally:
        if bouncer is not None:
            bouncer.stop()
        private.stop()


def test_the_service_under_concurrent_requests_through_the_pooler(
    launch: Any, pooler: PgBouncer, postgres: PostgresServer, redis_server: Any
) -> None:
    """Many requests at once (writes, and reads of new orders: cache misses) through a pool of 2 server
    connections: every one answered, none slower than the database timeout."""
    from concurrent.futures import ThreadPoolExecutor

    env = app_env(postgres, redis_server.url, WEB_CONCURRENCY="2", DB_TIMEOUT_SECONDS="3",
                  DATABASE_URL=pooler.url())
    app: AppProcess = launch(env)

    def one(n: int) -> tuple[int, float]:
        started = time.monotonic()
        reply = app.send("POST", "/orders", new_order(customer=f"burst-{n}"), timeout=15)
        if reply.status != 201:
            return reply.status, time.monotonic() - started
        read = app.get(f"/orders/{reply.json()['id']}", timeout=15)
        return read.status, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(one, range(240)))
    assert [s for s, _ in results if s != 200] == [], results
    assert max(t for _, t in results) < 3.0, sorted(t for _, t in results)[-5:]


def test_a_burst_waits_for_the_workers_connections_instead_of_opening_more(pooler: PgBouncer) -> None:
    """30 statements at once on a worker with DB_POOL_SIZE 2: 2 connections to the pooler, not 30 (each one a
    TLS handshake and a SCRAM login, and one of the pooler's client connections)."""

    async def main() -> tuple[int, int]:
        db = Database(pooler.url(), timeout=5, pool_size=2)
        try:
            order = await db.create_order({"customer": "burst", "items": [], "amount_cents": 1,
                                           "currency": "USD", "status": "new"})
            rows = await asyncio.gather(*(db.get_order(order["id"]) for _ in range(30)))
            assert all(r is not None and r["id"] == order["id"] for r in rows)
            return db.stats.connections_opened, db.stats.errors
        finally:
            await db.close()

    opened, errors = run(main())
    assert (opened, errors) == (2, 0)


def test_a_started_worker_has_its_pool_open_so_the_first_burst_opens_no_connection(pooler: PgBouncer) -> None:
    """prepare() (the worker's startup, before it serves) opens DB_POOL_SIZE connections: the first burst of
    requests after a start or a restart waits for no TLS handshake or login inside a request."""

    async def main() -> tuple[int, int, int]:
        db = Database(pooler.url(), timeout=5, pool_size=3)
        try:
            assert await db.prepare()
            at_start = db.stats.connections_opened
            order = await db.create_order({"customer": "warm", "items": [], "amount_cents": 1,
                                           "currency": "USD", "status": "new"})
            rows = await asyncio.gather(*(db.get_order(order["id"]) for _ in range(12)))
            assert all(r is not None and r["id"] == order["id"] for r in rows)
            return at_start, db.stats.connections_opened - at_start, db.stats.errors
        finally:
            await db.close()

    assert run(main()) == (3, 0, 0)


def test_a_worker_starting_while_the_database_is_down_starts_and_opens_its_pool_on_demand() -> None:
    """Nothing listens: prepare() answers False within the timeout (the worker still starts) and opens nothing."""

    async def main() -> tuple[bool, int, float]:
        db = Database(f"postgresql://postgres:x@127.0.0.1:{free_port()}/orders", timeout=1, pool_size=3)
        started = time.monotonic()
        ready = await db.prepare()
        return ready, len(db._idle), time.monotonic() - started

    ready, idle, seconds = run(main())
    assert (ready, idle) == (False, 0)
    assert seconds < 2.5
