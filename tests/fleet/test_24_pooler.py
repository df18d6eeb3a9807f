"""The fleet through the database's pooler, as Supabase serves it (issue 17, part 3).

The lab's pooler stands in for Supavisor in transaction mode (lab/README.md): PgBouncer 1.18 at
pooler.lab.internal:6543, TLS verified against the lab CA, the database's user and password, 10 server
connections per database and user. `site.yml --tags app` with the pooler's URL (the SSM SecureString
the lab publishes) moves the whole fleet onto it; then, under load through the load balancer: orders
created and read back on every host's own port, PgBouncer's SHOW POOLS / SHOW STATS show the traffic
went through it on far fewer server connections than client ones, and no prepared-statement error is
in the app's journal; then the database behind the pooler stopped for 20 s: cached reads answer,
writes get a quick 503, no order is lost, writes are accepted again once it is back. The module's
finalizer moves the fleet back onto the database's own URL and checks it serves as before.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
from test_20_faults import (
    APP_PORT,
    ENV_FILE,
    RATE,
    Write,
    _db_timeout,
    _orders_in_db,
    _writer,
    assert_lab_as_found,
    cached,
    figure,
    lab_hosts,
    lab_status,
    loaded_failures,
    new_order,
    sudo,
    wait_for,
)

from ec2_fleet_dev.lbhttp import http
from ec2_fleet_dev.loadgen import LoadGen, delivery

pytestmark = pytest.mark.fleet

POOLER = "pooler.lab.internal:6543"
DIRECT = "db.lab.internal:5432"
POOL_SIZE = 10  # LabConfig.pooler_pool_size
STOPPED_SECONDS = 20


def pooler_show(fleet, what: str) -> list[dict[str, str]]:
    """SHOW POOLS / STATS ... from PgBouncer's admin console, as the app's user (its stats_users)."""
    container = f"{fleet.env['EC2_FLEET_LAB_NAME']}-pooler"
    password = (fleet.state_dir / "db" / "password").read_text().strip()
    result = subprocess.run(
        ["podman", "exec", "-e", f"PGPASSWORD={password}", container, "psql",
         "host=127.0.0.1 port=6543 dbname=pgbouncer user=app sslmode=require", "-A", "-F", "\t", "-P", "footer=off",
         "-c", f"SHOW {what}"],
        capture_output=True, text=True, timeout=60, env=fleet.env, check=False,
    )
    assert result.returncode == 0, result.stderr
    # Only the newlines: the last row may end in empty fields, whose tabs a strip() would take (CI, 2026-12-06).
    header, *rows = result.stdout.rstrip("\n").splitlines()
    names = header.split("\t")
    return [dict(zip(names, row.split("\t"), strict=True)) for row in rows]


def pooler_connections(fleet) -> tuple[int, int]:
    """(client connections, server connections) of the pooler's `orders` database."""
    clients = [c for c in pooler_show(fleet, "CLIENTS") if c["database"] == "orders"]
    servers = [s for s in pooler_show(fleet, "SERVERS") if s["database"] == "orders"]
    return len(clients), len(servers)


def transactions(fleet) -> int:
    return int(next((s["total_xact_count"] for s in pooler_show(fleet, "STATS") if s["database"] == "orders"), 0))


def database_hosts(fleet) -> set[str]:
    """Where each host's env file points the app (the host:port of DATABASE_URL; never the password)."""
    seen = set()
    for host in lab_hosts(fleet):
        out = sudo(fleet, host, f"grep -E '^DATABASE_URL=' {ENV_FILE} | grep -oE '@[a-z.]+:[0-9]+/' | head -n1")
        seen.add(out.strip().strip("@/"))
    return seen


def diagnose(fleet, order_id: int) -> str:
    """What the hosts and the pooler show, for a failure's message."""
    lines = []
    for host in lab_hosts(fleet):
        for path in ("/health", "/ready", f"/orders/{order_id}"):
            out = sudo(fleet, host, f"curl -sS -m 8 -o /dev/null -w '%{{http_code}} %{{time_total}}s' "
                                    f"http://127.0.0.1:{APP_PORT}{path} 2>&1 || true", check=False)
            lines.append(f"{host.id} {path}: {out.strip()}")
        lines.append(sudo(fleet, host, "journalctl --no-pager -q -n 25 -u 'orders-api*' 2>&1 | cut -c1-300",
                          check=False))
    lines.append(str(lab_status(fleet).get("instances")))
    for what in ("POOLS", "CLIENTS", "SERVERS"):
        try:
            lines.append(f"{what}: {pooler_show(fleet, what)}"[:3000])
        except AssertionError as exc:
            lines.append(f"{what}: {exc}")
    logs = subprocess.run(["podman", "logs", "--tail", "30", f"{fleet.env['EC2_FLEET_LAB_NAME']}-pooler"],
                          capture_output=True, text=True, timeout=30, env=fleet.env, check=False)
    lines.append(logs.stdout + logs.stderr)
    return "\n".join(lines)


@pytest.fixture(scope="module")
def on_pooler(converged) -> Iterator[object]:
    """The fleet moved onto the pooler (site.yml --tags app); moved back afterwards, whatever happened."""
    fleet = converged
    assert_lab_as_found(fleet)
    assert database_hosts(fleet) == {DIRECT}
    started = time.monotonic()
    run = fleet.play("site", "--tags", "app",
                     extra={"fleet_database_url_ssm_parameter": fleet.endpoints["db_pooler_url_ssm_parameter"]})
    figure(f"site.yml --tags app onto the pooler: {time.monotonic() - started:.0f} s")
    try:
        assert run.rc == 0, f"site.yml on the pooler failed:\n{run.output[-4000:]}"
        password = (fleet.state_dir / "db" / "password").read_text().strip()
        assert password not in run.output, "the pooler URL's password is in the play's output"
        assert_lab_as_found(fleet)  # 3 hosts healthy behind the balancer, on one release
        yield fleet
    finally:
        start = fleet.labctl("fault", "db-start")
        back = fleet.play("site", "--tags", "app")
        assert start.returncode == 0, start.stdout + start.stderr
        assert back.rc == 0, f"site.yml back on the database's own URL failed:\n{back.output[-4000:]}"
        assert database_hosts(fleet) == {DIRECT}
        assert_lab_as_found(fleet)
        order = new_order(fleet.endpoints["lb_url"], customer="back-on-direct")
        assert http(f"{fleet.endpoints['lb_url']}/orders/{order['id']}")[0] == 200


def test_orders_go_through_the_pooler_on_few_server_connections_with_no_prepared_statement_error(on_pooler):
    fleet = on_pooler
    lb = fleet.endpoints["lb_url"]
    hosts = lab_hosts(fleet)
    assert database_hosts(fleet) == {POOLER}
    since = sudo(fleet, hosts[0], "date -u '+%Y-%m-%d %H:%M:%S'").strip()
    xact_before = transactions(fleet)
    order = new_order(lb, customer="pooler")
    writes: list[Write] = []
    stop_writing = threading.Event()
    writers = [threading.Thread(target=_writer, args=(lb, stop_writing, writes, time.monotonic() + 60))
               for _ in range(3)]
    with LoadGen(f"{lb}/orders/{order['id']}", rate=RATE, timeout=5, max_seconds=60,
                 ca_file=fleet.endpoints["lb_ca_file"]) as load:
        for writer in writers:
            writer.start()
        try:
            load.wait(10)
            clients, servers = pooler_connections(fleet)  # under load
        finally:
            stop_writing.set()
            for writer in writers:
                writer.join(30)
    report = load.report
    assert report["sent"] == report["planned"], delivery(report)
    assert report["failed"] == 0, loaded_failures(report) + "\n" + diagnose(fleet, order["id"])
    created = [w.body["id"] for w in writes if w.status == 201]
    assert created and len(created) == len(writes), [(w.status, w.body) for w in writes if w.status != 201][:5]
    # Every order read back on every host's own port (from PostgreSQL through the pooler, or the cache).
    for order_id in created[:: max(1, len(created) // 10)]:
        for host in hosts:
            status, _, body = http(f"http://{host.ip}:{APP_PORT}/orders/{order_id}", timeout=5)
            assert (status, body.get("id")) == (200, order_id), (host.id, status, body)
    assert _orders_in_db(fleet, created) == set(created)
    xacts = transactions(fleet) - xact_before
    assert xacts >= len(created), f"{xacts} transactions through the pooler for {len(created)} orders created"
    # The hosts' connections share a few server connections: far fewer than the clients.
    assert 0 < servers <= POOL_SIZE and clients >= 2 * servers, (clients, servers)
    errors = {
        h.id: sudo(fleet, h, f"journalctl --no-pager -q --since '{since}' -u 'orders-api*' | "
                             "grep -ciE 'prepared statement|DuplicatePreparedStatement|InvalidSqlStatementName' "
                             "|| true").strip()
        for h in hosts
    }
    assert set(errors.values()) == {"0"}, f"prepared-statement errors in the app's journal: {errors}"
    figure(f"through the pooler under {RATE} req/s + 3 writers: {report['requests']} reads 0 failed, "
           f"{len(created)} orders created and read on {len(hosts)} hosts; {xacts} transactions through PgBouncer; "
           f"{clients} client connections on {servers} server connections (pool {POOL_SIZE}); "
           "0 prepared-statement errors")


def test_the_database_stopped_behind_the_pooler_cached_reads_answer_writes_get_a_quick_503_no_order_lost(on_pooler):
    fleet = on_pooler
    lb = fleet.endpoints["lb_url"]
    timeout = _db_timeout(fleet, lab_hosts(fleet)[0])
    order = new_order(lb, customer="pooler-down")
    wait_for("the order cached", lambda: cached(lb, order["id"]), 30)
    uncached = new_order(lb, customer="pooler-down")  # never read: in PostgreSQL only
    writes: list[Write] = []
    stop_writing = threading.Event()
    writers = [threading.Thread(target=_writer, args=(lb, stop_writing, writes, time.monotonic() + 180))
               for _ in range(3)]
    with LoadGen(f"{lb}/orders/{order['id']}", rate=RATE, timeout=5, max_seconds=180,
                 ca_file=fleet.endpoints["lb_ca_file"]) as load:
        for writer in writers:
            writer.start()
        try:
            load.wait(3)
            stop = fleet.labctl("fault", "db-stop")
            assert stop.returncode == 0, stop.stdout + stop.stderr
            down_at = time.monotonic()
            assert lab_status(fleet)["pooler"]["state"] == "running"  # the pooler is not what stopped
            load.wait(2)
            read = http(f"{lb}/orders/{uncached['id']}", timeout=15)
            assert read[0] == 503 and read[2]["error"] == "database_unavailable", read
            load.wait(STOPPED_SECONDS - (time.monotonic() - down_at))
            restart_at = time.monotonic()
            start = fleet.labctl("fault", "db-start")
            assert start.returncode == 0, start.stdout + start.stderr
            up_at = time.monotonic()
            _, recovery = wait_for("a write accepted again",
                                   lambda: any(w.sent >= up_at and w.status == 201 for w in writes), 60)
            load.wait(3)
        finally:
            stop_writing.set()
            for writer in writers:
                writer.join(30)
    report = load.report
    during = [w for w in writes if w.sent > down_at + 1 and w.sent + w.seconds < restart_at]
    refused = [w for w in during if w.status == 503 and w.body.get("error") == "database_unavailable"]
    accepted = [w.body["id"] for w in writes if w.status == 201]
    present = _orders_in_db(fleet, accepted)
    slowest = max(w.seconds for w in writes if down_at < w.sent < restart_at)
    figure(f"PostgreSQL behind the pooler stopped {restart_at - down_at:.0f} s: cached reads {report['failed']} "
           f"failed of {report['requests']}; writes during the outage {len(refused)}/{len(during)} answered 503 "
           f"database_unavailable, slowest write answer {slowest:.2f} s (DB_TIMEOUT_SECONDS {timeout:g}); "
           f"writes accepted again {recovery:.1f} s after PostgreSQL answered; {len(accepted)} orders accepted "
           f"(201), {len(set(accepted) - present)} lost")
    assert report["sent"] == report["planned"], delivery(report)
    assert report["failed"] == 0, loaded_failures(report)
    assert during and len(refused) == len(during), [(w.status, w.body) for w in during if w not in refused]
    assert slowest <= timeout + 1.0
    assert set(accepted) == present
