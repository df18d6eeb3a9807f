"""Benchmark 5: the fleet's one shared Redis versus a Redis per host, on the same seeded request stream.

A private lab: provision.yml and site.yml (the shared cache, as deployed), orders created through the
load balancer, then the same seeded stream of GET /orders/{id} through the load balancer to the 3 hosts,
first with the shared Redis, then with a Redis per host (bench/cache_per_host.yml: the project's aws_cache
role makes one replication group per host and site.yml points each host's app at its own one; a benchmark
configuration, never a deployment). Both runs start cold (FLUSHALL on every Redis of the lab).

    .venv/bin/python bench/run.py cache      # about 7 minutes, writes bench/results/latest.{json,md}
"""

from __future__ import annotations

import http.client
import json
import random
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import redis

from ec2_fleet_dev.bench.benchlib import (
    Lab,
    Timed,
    load,
    log,
    machine,
    private_lab,
    project_var,
    recap_changed,
    timed,
    write_results,
)

SEED = 20260705
ORDERS = 500  # orders created before the runs (ids 1..ORDERS in the fresh lab database)
REQUESTS = 3000  # GET /orders/{id} per run, the same seeded sequence in both runs
ZIPF_S = 1.0  # popularity of the order of rank r ~ 1 / r**s
CONCURRENCY = 4  # requests in flight (closed loop, a new connection per request)
STREAM_MAX_S = 240.0  # a run stops sending after this long (reported, not hidden)
STALE_ORDERS = 5  # the most requested orders, updated once per setup for the stale check
APP_PORT = project_var("fleet_app_port", "group_vars/all/main.yml")  # the hosts' app, reached directly
PG_STATS_DELAY_S = 11.0  # PostgreSQL backends flush table statistics at most 10 s after going idle
TIMEOUT_S = 10.0  # one HTTP request
PER_HOST_PLAYBOOK = "bench/cache_per_host.yml"


# -- HTTP ------------------------------------------------------------------------------------------


def _http(url: str, method: str = "GET", body: dict | None = None) -> tuple[int, dict[str, str], Any]:
    """One request on a new connection (so the balancer spreads them): status, headers, JSON body."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT_S)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Connection": "close", "User-Agent": "ec2-fleet-bench-cache"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, parts.path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload
    finally:
        conn.close()


def _try(url: str, method: str = "GET", body: dict | None = None) -> tuple[int, dict[str, str], Any]:
    try:
        return _http(url, method, body)
    except (OSError, http.client.HTTPException) as exc:
        return 0, {"error": f"{type(exc).__name__}: {exc}"[:200]}, None


# -- the lab's services ----------------------------------------------------------------------------


def _status(lab: Lab) -> dict:
    return json.loads((Path(lab.env["EC2_FLEET_LAB_STATE_DIR"]) / "status.json").read_text())


def _hosts(lab: Lab, net: str) -> dict[str, str]:
    """instance id -> the app's URL on the host's private IP (a container on the lab's own network)."""
    hosts = {i["id"]: i["ip"] for i in _status(lab)["instances"] if i["container"] == "running"}
    for ip in hosts.values():
        if not ip.startswith(f"{net}."):
            raise RuntimeError(f"host address {ip} is outside the lab's network {net}.0.0/16")
    return {iid: f"http://{ip}:{APP_PORT}" for iid, ip in sorted(hosts.items())}


def _redis_servers(lab: Lab, wanted: int, timeout: float = 90.0) -> dict[str, dict]:
    """group id -> the lab's Redis for it (address, TLS, token), once `wanted` of them run."""
    deadline = time.monotonic() + timeout
    while True:
        status = _status(lab)
        groups = {r["group"]: r for r in status["redis"] if r["state"] == "running"}
        if len(groups) >= wanted or time.monotonic() > deadline:
            break
        time.sleep(1)
    if len(groups) < wanted:
        raise RuntimeError(f"{len(groups)} Redis servers run in the lab, {wanted} expected: {sorted(groups)}; "
                           f"lab errors: {json.dumps(status.get('errors', {}))[:2000]}")
    return groups


class RedisServers:
    """The lab's Redis servers, reached from the control node like the hosts reach them (TLS + AUTH)."""

    def __init__(self, lab: Lab, groups: dict[str, dict]) -> None:
        state = Path(lab.env["EC2_FLEET_LAB_STATE_DIR"])
        self.groups = groups
        self.clients: dict[str, redis.Redis] = {}
        for gid, info in groups.items():
            conf = (state / "redis" / gid / "redis.conf").read_text()
            token = re.search(r"^requirepass (\S+)$", conf, flags=re.M)
            self.clients[gid] = redis.Redis(
                host=info["ip"], port=int(info["port"]), password=token.group(1) if token else None,
                ssl=bool(info["tls"]), ssl_ca_certs=str(state / "tls" / "ca.crt") if info["tls"] else None,
                socket_timeout=5, socket_connect_timeout=5)

    def host_of(self, endpoint: str) -> str | None:
        """The group whose primary endpoint the app's cache_endpoint names."""
        name = urlsplit(endpoint).hostname
        for gid, info in self.groups.items():
            if urlsplit(info["endpoint"]).hostname == name:
                return gid
        return None

    def flush_all(self) -> None:
        for client in self.clients.values():
            client.flushall()

    def snapshot(self, gids: list[str]) -> dict[str, dict[str, int]]:
        out = {}
        for gid in gids:
            stats, memory = self.clients[gid].info("stats"), self.clients[gid].info("memory")
            clients = self.clients[gid].info("clients")
            out[gid] = {"hits": int(stats["keyspace_hits"]), "misses": int(stats["keyspace_misses"]),
                        "used_memory": int(memory["used_memory"]),
                        "used_memory_dataset": int(memory["used_memory_dataset"]),
                        "keys": int(self.clients[gid].dbsize()),
                        "clients": int(clients["connected_clients"])}
        return out

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


class Database:
    """The lab's PostgreSQL, read by the control node: its own statistics of the orders table."""

    def __init__(self, lab: Lab) -> None:
        state = Path(lab.env["EC2_FLEET_LAB_STATE_DIR"])
        ip = _status(lab)["db"]["ips"][0]
        self.conn = psycopg.connect(host=ip, port=5432, dbname="orders", user="postgres",
                                    password=(state / "db" / "password").read_text().strip(),
                                    connect_timeout=10, autocommit=True)
        self.last_activity = time.monotonic()

    def reads(self) -> int:
        """Scans of the orders table (seq_scan + idx_scan): one per SELECT or UPDATE of an order by id.
        Waits until the backends have flushed what the last requests did (at most 10 s after idle)."""
        time.sleep(max(0.0, self.last_activity + PG_STATS_DELAY_S - time.monotonic()))
        row = self.conn.execute(
            "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
            "WHERE relname = 'orders'").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.conn.close()


# -- the workload ----------------------------------------------------------------------------------


def stream(order_ids: list[int], requests: int = REQUESTS, seed: int = SEED, s: float = ZIPF_S) -> list[int]:
    """The seeded request sequence: Zipf-like popularity over the orders (rank r ~ 1/r**s), the ranks
    given to the orders in a seeded random order."""
    rng = random.Random(seed)
    ranked = list(order_ids)
    rng.shuffle(ranked)
    weights = [1.0 / (r ** s) for r in range(1, len(ranked) + 1)]
    return rng.choices(ranked, weights=weights, k=requests)


def _seed_orders(lb: str, count: int) -> list[int]:
    def create(i: int) -> int:
        body = {"customer": f"customer-{i:04d}", "status": "new",
                "items": [{"sku": f"SKU-{i % 37:02d}", "qty": 1 + i % 5, "unit_price_cents": 100 + i}]}
        status, _, order = _try(f"{lb}/orders", "POST", body)
        if status != 201:
            raise RuntimeError(f"POST /orders answered {status}: {order}")
        return int(order["id"])

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return sorted(pool.map(create, range(count)))


def _run_stream(lb: str, sequence: list[int]) -> dict:
    """Every request of the sequence through the load balancer, CONCURRENCY at a time, bounded in time."""
    start = time.monotonic()
    deadline = start + STREAM_MAX_S
    lock = threading.Lock()
    cache: Counter = Counter()
    served: Counter = Counter()
    errors: Counter = Counter()
    unsent = 0

    def one(order_id: int) -> None:
        nonlocal unsent
        if time.monotonic() > deadline:
            with lock:
                unsent += 1
            return
        status, headers, _ = _try(f"{lb}/orders/{order_id}")
        with lock:
            if status == 200:
                cache[headers.get("x-cache", "none")] += 1
                served[headers.get("x-served-by", "?")] += 1
            else:
                errors[headers.get("error", f"HTTP {status}")] += 1

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, sequence))
    wall = round(time.monotonic() - start, 2)
    answered = sum(cache.values())
    return {"requests": len(sequence), "answered": answered, "unsent": unsent, "errors": dict(errors),
            "hits": cache.get("hit", 0), "misses": cache.get("miss", 0), "wall_s": wall,
            "rate_per_s": round(answered / wall, 1) if wall else None, "served_by": dict(sorted(served.items()))}


def _endpoints(hosts: dict[str, str], asks: int = 6) -> dict[str, list[str]]:
    """The cache endpoint each host's app uses (GET /version on the host, several times: every process)."""
    out = {}
    for iid, url in hosts.items():
        seen = set()
        for _ in range(asks):
            status, _, body = _try(f"{url}/version")
            if status == 200:
                seen.add(body["cache_endpoint"])
        out[iid] = sorted(seen)
    return out


def _wait_ready(hosts: dict[str, str], timeout: float = 60.0) -> None:
    """Every host's /ready says ready (database and cache up) before a run."""
    deadline = time.monotonic() + timeout
    pending = dict(hosts)
    while pending and time.monotonic() < deadline:
        for iid, url in list(pending.items()):
            status, _, body = _try(f"{url}/ready")
            if status == 200 and isinstance(body, dict) and body.get("status") == "ready":
                del pending[iid]
        if pending:
            time.sleep(1)
    if pending:
        raise RuntimeError(f"hosts not ready (cache or database) after {timeout:.0f} s: {sorted(pending)}")


def _stale_check(lb: str, hosts: dict[str, str], order_ids: list[int], label: str) -> dict:
    """For orders every host has cached: PUT through the load balancer, then read it on EACH host
    directly; a host that answers the old customer serves stale data."""
    per_order = []
    for oid in order_ids:
        cached, old = {}, None
        for iid, url in hosts.items():  # at most 2 reads: a miss caches it (in that host's Redis)
            for _ in range(2):
                status, headers, body = _try(f"{url}/orders/{oid}")
                if status == 200 and headers.get("x-cache") == "hit":
                    break
            cached[iid] = status == 200 and headers.get("x-cache") == "hit"
            old = body["customer"] if status == 200 else old
        new = f"bench-{label}-{oid}"
        status, put_headers, body = _try(f"{lb}/orders/{oid}", "PUT", {"customer": new})
        if status != 200 or body.get("customer") != new:
            raise RuntimeError(f"PUT /orders/{oid} answered {status}: {body}")
        stale, reads = [], {}
        for iid, url in hosts.items():
            status, headers, body = _try(f"{url}/orders/{oid}")
            customer = body.get("customer") if status == 200 and isinstance(body, dict) else None
            reads[iid] = {"status": status, "x_cache": headers.get("x-cache"), "customer": customer}
            if customer == old:
                stale.append(iid)
        per_order.append({"order": oid, "cached_on_every_host": all(cached.values()), "old": old, "new": new,
                          "put_served_by": put_headers.get("x-served-by"), "stale_hosts": stale, "reads": reads})
    return {"orders": per_order, "stale_host_reads": sum(len(o["stale_hosts"]) for o in per_order),
            "host_reads": len(per_order) * len(hosts),
            "cached_everywhere": sum(o["cached_on_every_host"] for o in per_order)}


def _measure(label: str, lb: str, hosts: dict[str, str], servers: RedisServers, db: Database,
             sequence: list[int], hot: list[int], expect_servers: int) -> dict:
    endpoints = _endpoints(hosts)
    if any(len(e) != 1 for e in endpoints.values()):
        raise RuntimeError(f"{label}: a host's processes use different caches (or none answered): {endpoints}")
    in_use = sorted({servers.host_of(e[0]) for e in endpoints.values()} - {None})
    if len(in_use) != len({e[0] for e in endpoints.values()}) or len(in_use) != expect_servers:
        raise RuntimeError(f"{label}: the hosts use {endpoints}, not {expect_servers} of the lab's Redis servers")
    _wait_ready(hosts)
    servers.flush_all()  # every Redis of the lab, the ones not in use too: both runs start cold
    time.sleep(0.5)
    before_redis, before_db = servers.snapshot(in_use), db.reads()
    log(f"cache: {label}: {len(sequence)} requests through the load balancer, Redis in use: {', '.join(in_use)}")
    start_load = load()
    run = _run_stream(lb, sequence)
    db.last_activity = time.monotonic()
    after_redis = servers.snapshot(in_use)
    db_reads = db.reads() - before_db
    log(f"cache: {label}: {run['answered']}/{run['requests']} answered in {run['wall_s']} s, "
        f"{run['hits']} hits, {run['misses']} misses, {db_reads} database reads")
    redis_hits = sum(after_redis[g]["hits"] - before_redis[g]["hits"] for g in in_use)
    redis_misses = sum(after_redis[g]["misses"] - before_redis[g]["misses"] for g in in_use)
    memory = {g: after_redis[g]["used_memory"] - before_redis[g]["used_memory"] for g in in_use}
    dataset = {g: after_redis[g]["used_memory_dataset"] - before_redis[g]["used_memory_dataset"] for g in in_use}
    stale = _stale_check(lb, hosts, hot, label)
    db.last_activity = time.monotonic()
    log(f"cache: {label}: stale reads after an update: {stale['stale_host_reads']} of {stale['host_reads']}")
    answered = run["hits"] + run["misses"]
    return {
        "load": start_load, "run": run, "endpoints": {h: e[0] for h, e in endpoints.items()},
        "redis_in_use": in_use,
        "hit_rate": round(run["hits"] / answered, 4) if answered else None,
        "redis_hits": redis_hits, "redis_misses": redis_misses,
        "redis_hit_rate": round(redis_hits / (redis_hits + redis_misses), 4) if redis_hits + redis_misses else None,
        "db_reads": db_reads,
        "memory_bytes": sum(memory.values()), "memory_by_server": memory,
        "dataset_bytes": sum(dataset.values()), "dataset_by_server": dataset,
        "baseline_used_memory": {g: before_redis[g]["used_memory"] for g in in_use},
        "keys": sum(after_redis[g]["keys"] for g in in_use),
        "clients_before": sum(before_redis[g]["clients"] for g in in_use),
        "clients_after": sum(after_redis[g]["clients"] for g in in_use),
        "stale": stale,
    }


# -- the benchmark ---------------------------------------------------------------------------------


def _check(name: str, t: Timed) -> None:
    log(f"cache: {name} {t.checked(name).wall} s, changed={recap_changed(t.play())}")


def _ratio(a: float | None, b: float | None, digits: int = 2) -> str:
    return "-" if a is None or not b else f"{a / b:.{digits}f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _per_key(x: dict) -> str:
    if not x["keys"]:
        return "-"
    return f"{x['memory_bytes'] / x['keys']:.0f} B ({x['dataset_bytes'] / x['keys']:.0f} B data)"


def _stale_counts(x: dict) -> str:
    return ", ".join(str(len(o["stale_hosts"])) for o in x["stale"]["orders"])


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


def run(net: str = "10.234") -> dict:
    started = time.monotonic()
    with private_lab(net) as lab:
        lb = f"http://127.0.0.1:{lab.env['EC2_FLEET_LAB_LB_PORT']}"
        _check("provision.yml", lab.playbook("provision"))
        _check("site.yml (shared cache)", lab.playbook("site"))
        hosts = _hosts(lab, net)
        if len(hosts) < 2:
            raise RuntimeError(f"the lab runs {len(hosts)} hosts, the comparison needs several")
        order_ids = _seed_orders(lb, ORDERS)
        log(f"cache: {len(order_ids)} orders created through the load balancer")
        sequence = stream(order_ids)
        hot = [oid for oid, _ in Counter(sequence).most_common(STALE_ORDERS)]

        db = Database(lab)
        try:
            servers = RedisServers(lab, _redis_servers(lab, 1))
            try:
                shared = _measure("shared", lb, hosts, servers, db, sequence, hot, 1)
            finally:
                servers.close()

            cmd = ["ansible-playbook", "-i", "inventories/lab", PER_HOST_PLAYBOOK, "-e", json.dumps(lab.extra)]
            per_host_play = timed(cmd, lab.env)
            _check(PER_HOST_PLAYBOOK, per_host_play)
            servers = RedisServers(lab, _redis_servers(lab, 1 + len(hosts)))
            try:
                per_host = _measure("per-host", lb, hosts, servers, db, sequence, hot, len(hosts))
            finally:
                servers.close()
        finally:
            db.close()
    return _result(net, hosts, order_ids, sequence, shared, per_host, per_host_play, time.monotonic() - started)


def _result(net: str, hosts: dict[str, str], order_ids: list[int], sequence: list[int], shared: dict,
            per_host: dict, per_host_play: Timed, total_s: float) -> dict:
    n = len(hosts)
    distinct = len(set(sequence))
    s, p = shared, per_host
    stale_s, stale_p = s["stale"], p["stale"]

    def row(name: str, a: Any, b: Any, ratio: str) -> list:
        return [name, a, b, ratio]

    rows = [
        row("cache hit rate (X-Cache of the answers)", _pct(s["hit_rate"]), _pct(p["hit_rate"]),
            _ratio(s["hit_rate"], p["hit_rate"])),
        row("cache misses (X-Cache: miss)", s["run"]["misses"], p["run"]["misses"],
            _ratio(s["run"]["misses"], p["run"]["misses"])),
        row("Redis keyspace hits / misses (INFO, summed)", f"{s['redis_hits']} / {s['redis_misses']}",
            f"{p['redis_hits']} / {p['redis_misses']}", _ratio(s["redis_hit_rate"], p["redis_hit_rate"])),
        row("database reads (PostgreSQL: scans of orders)", s["db_reads"], p["db_reads"],
            _ratio(s["db_reads"], p["db_reads"])),
        row(f"Redis memory (used_memory minus empty, {len(s['redis_in_use'])} / {len(p['redis_in_use'])} servers)",
            _kib(s["memory_bytes"]), _kib(p["memory_bytes"]), _ratio(s["memory_bytes"], p["memory_bytes"])),
        row("of which the data set (used_memory_dataset minus empty)", _kib(s["dataset_bytes"]),
            _kib(p["dataset_bytes"]), _ratio(s["dataset_bytes"], p["dataset_bytes"])),
        row("keys cached (DBSIZE, summed)", s["keys"], p["keys"], _ratio(s["keys"], p["keys"])),
        row(f"hosts serving the old order after a PUT ({STALE_ORDERS} orders x {n} hosts)",
            f"{stale_s['stale_host_reads']} of {stale_s['host_reads']}",
            f"{stale_p['stale_host_reads']} of {stale_p['host_reads']}",
            _ratio(stale_s["stale_host_reads"], stale_p["stale_host_reads"])),
        row("requests answered / errors / not sent",
            f"{s['run']['answered']} / {sum(s['run']['errors'].values())} / {s['run']['unsent']}",
            f"{p['run']['answered']} / {sum(p['run']['errors'].values())} / {p['run']['unsent']}", "-"),
        row("stream wall time, s (load at start; informational, the machine is shared)",
            f"{s['run']['wall_s']} ({s['load']})", f"{p['run']['wall_s']} ({p['load']})", "-"),
    ]
    complete = all(x["run"]["answered"] == len(sequence) for x in (s, p))
    cached_all = all(x["stale"]["cached_everywhere"] == STALE_ORDERS for x in (s, p))
    hosts_rows = [[iid, s["endpoints"][iid], p["endpoints"][iid],
                   f"{s['run']['served_by'].get(iid, 0)} / {p['run']['served_by'].get(iid, 0)}"] for iid in hosts]
    notes = [
        f"The stream: {len(sequence)} GET /orders/{{id}} over {len(order_ids)} orders, Zipf-like (order of rank r "
        f"requested ~ 1/r^{ZIPF_S}), seed {SEED}: {distinct} distinct orders requested; the most requested one "
        f"{Counter(sequence).most_common(1)[0][1]} times. The same sequence in both runs, {CONCURRENCY} requests in "
        "flight, a new connection per request (HAProxy round robin spreads them over the hosts).",
        "Expected: with one shared Redis an order misses once in the fleet; with a Redis per host once per host that "
        f"serves it (up to {n} times). A perfect shared run misses exactly the {distinct} distinct orders.",
        "Database reads: PostgreSQL's own counter pg_stat_user_tables (seq_scan + idx_scan of the orders table) over "
        "the run, read by the control node after the backends' statistics flush (11 s after the last request): every "
        "GET that misses the cache reads the order once; health checks and pool checks (SELECT 1) do not touch "
        "the table. It should equal the X-Cache misses.",
        "Redis memory: INFO memory used_memory after the run minus the same server's used_memory right after FLUSHALL "
        "before the run (the empty server with the hosts' connections open), summed over the servers in use "
        f"(shared: {', '.join(s['redis_in_use'])}; per host: {', '.join(p['redis_in_use'])}). used_memory_dataset "
        "is used_memory less Redis's own overhead (connections, buffers, the keyspace's hash tables): the stored "
        f"orders. Per key: shared {_per_key(s)}, per host {_per_key(p)}. Connected clients (TLS connections, whose "
        f"buffers count in used_memory) before / after the run: shared {s['clients_before']} / {s['clients_after']}, "
        f"per host {p['clients_before']} / {p['clients_after']} (the benchmark's own connection included).",
        f"Stale check: the {STALE_ORDERS} most requested orders; each is first read on every host directly "
        f"(the hosts' private IPs, port {APP_PORT}) until that host answers X-Cache: hit "
        f"(cached on every host: {s['stale']['cached_everywhere']} / {p['stale']['cached_everywhere']} of "
        f"{STALE_ORDERS}), then changed by PUT through the load balancer (the host that takes it deletes the "
        "entry in its Redis), then read on each host directly: a host answering the old customer serves stale "
        "data (until the entry's TTL, CACHE_TTL_SECONDS, 300 s by default). Stale hosts per updated order: shared "
        f"{_stale_counts(s)}, per host {_stale_counts(p)}.",
        f"Per-host configuration: {PER_HOST_PLAYBOOK} ({per_host_play.wall} s, including site.yml reloading the app "
        "on every host): provision.yml's cache step (aws_network, aws_cache) with a replication group per host, "
        "then site.yml unchanged with each host's __fleet_cache set to its own group's endpoint. A benchmark "
        "configuration only: the deployment is the shared cache.",
    ]
    if not complete:
        notes.append("**A run did not answer every request** (errors or the time bound): the comparison is "
                     "not exact; see requests answered above.")
    if not cached_all:
        notes.append("**Not every updated order was cached on every host before the PUT** (see figures).")
    return {
        "title": "5. Shared cache versus a Redis per host: the same request stream on 3 lab hosts",
        "method": (
            f"A private lab (bench: benchlib.py, VPC {net}.0.0/16): provision.yml, site.yml (the one shared Redis), "
            f"{len(order_ids)} orders created by POST through the load balancer, then the same seeded stream of "
            f"{len(sequence)} GET /orders/{{id}} through the load balancer (HAProxy, round robin) to the {n} hosts: "
            f"first with the shared Redis, then after {PER_HOST_PLAYBOOK} (the aws_cache role makes a replication "
            "group per host, the lab a Redis per group, site.yml points each host's app at its own) with a Redis "
            "per host. Every Redis is emptied (FLUSHALL) before each run. Hit rate from the answers' X-Cache "
            "headers and Redis INFO; database reads from PostgreSQL's statistics; Redis memory from INFO; then a "
            "stale-data check per setup (PUT through the load balancer, read on each host directly)."
        ),
        "machine": machine(),
        "targets": [
            {"target": "shared Redis: no host serves the old order after an update",
             "measured": f"{stale_s['stale_host_reads']} of {stale_s['host_reads']} host reads stale "
                         f"(per host: {stale_p['stale_host_reads']} of {stale_p['host_reads']})",
             "met": stale_s["stale_host_reads"] == 0},
            {"target": "shared / per host database reads below 1 (fewer queries with one cache)",
             "measured": f"{_ratio(s['db_reads'], p['db_reads'])} ({s['db_reads']} / {p['db_reads']})",
             "met": p["db_reads"] > 0 and s["db_reads"] / p["db_reads"] < 1},
            {"target": "shared / per host Redis memory below 1 (each order cached once)",
             "measured": f"{_ratio(s['memory_bytes'], p['memory_bytes'])} "
                         f"({_kib(s['memory_bytes'])} / {_kib(p['memory_bytes'])})",
             "met": p["memory_bytes"] > 0 and s["memory_bytes"] / p["memory_bytes"] < 1},
        ],
        "tables": [
            {"title": "The same seeded stream, shared Redis versus a Redis per host",
             "columns": ["figure", "shared Redis", "Redis per host", "shared / per host"], "rows": rows},
            {"title": "Cache endpoint of each host's app (GET /version on the host) and requests it served",
             "columns": ["host", "shared run", "per-host run", "requests served (shared / per host)"],
             "rows": hosts_rows},
        ],
        "notes": notes,
        "figures": {
            "orders": len(order_ids), "requests": len(sequence), "distinct_orders": distinct, "seed": SEED,
            "zipf_s": ZIPF_S, "concurrency": CONCURRENCY, "shared": shared, "per_host": per_host,
            "per_host_playbook_s": per_host_play.wall, "total_s": round(total_s, 1), "load_at_end": load(),
        },
    }


if __name__ == "__main__":
    write_results("cache", run())
