"""The fleet on an external Redis, as Upstash and Redis Cloud serve one (issue 17, part 2).

The lab's internet Redis stands in for the provider (lab/README.md): TLS only on port 16380 with a
certificate for ext-redis.lab.example, the ACL user `default` with a password, on a network outside the
VPC that the hosts reach through the podman host as through a NAT gateway. `site.yml --tags app` with
aws_cache_external_url moves the whole fleet onto it; then, through the load balancer and the hosts'
own ports: an order cached by one host is a hit on the others, the key is in the external Redis and not
in the lab's ElastiCache, no ElastiCache resource was touched, and the provider stopped for 20 s under
load costs no request. The module's finalizer moves the fleet back onto the lab's ElastiCache and checks
it serves from there, so the files after this one find the fleet as it was.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import boto3
import pytest
import redis
from test_20_faults import (
    APP_PORT,
    RATE,
    assert_lab_as_found,
    cached,
    figure,
    lab_hosts,
    lab_status,
    loaded_failures,
    new_order,
    wait_for,
)

from ec2_fleet_dev.lbhttp import http
from ec2_fleet_dev.loadgen import LoadGen, delivery
from ec2_fleet_dev.plays import PlayResult

pytestmark = pytest.mark.fleet

# inventories/lab/group_vars/all/env.yml: the lab ElastiCache's AUTH token.
LAB_CACHE_TOKEN = "lab-cache-auth-token-0123456789"
STOPPED_SECONDS = 20


@dataclass
class OnExternal:
    fleet: object
    run: PlayResult
    groups_before: list[dict]


def replication_groups(fleet) -> list[dict]:
    """moto's replication groups as the API describes them (id, status, endpoints)."""
    client = boto3.client("elasticache", endpoint_url=fleet.env["AWS_URL"], region_name="us-east-1",
                          aws_access_key_id="pytest-checks", aws_secret_access_key="testing")
    return [{k: g.get(k) for k in ("ReplicationGroupId", "Status", "NodeGroups", "AuthTokenEnabled")}
            for g in client.describe_replication_groups()["ReplicationGroups"]]


def external_redis(fleet) -> redis.Redis:
    """The internet Redis from the control node, over TLS (its certificate also names its address)."""
    url = urlsplit(fleet.endpoints["external_redis_url"])
    return redis.Redis(host=fleet.endpoints["external_redis_ip"], port=url.port, username=url.username,
                       password=url.password, ssl=True, ssl_ca_certs=fleet.endpoints["external_redis_ca_file"],
                       socket_timeout=5, socket_connect_timeout=5)


def elasticache_redis(fleet) -> redis.Redis:
    """The lab's ElastiCache Redis from the control node (TLS from the lab CA, the lab's AUTH token)."""
    group = lab_status(fleet)["redis"][0]
    return redis.Redis(host=group["ip"], port=group["port"], password=LAB_CACHE_TOKEN, ssl=group["tls"],
                       ssl_ca_certs=fleet.endpoints["redis_ca_file"], socket_timeout=5, socket_connect_timeout=5)


def order_keys(client: redis.Redis, order_id: int) -> list[bytes]:
    return sorted(client.scan_iter(match=f"*order:{order_id}", count=1000))


def read_each_host(fleet, order_id: int) -> list[tuple[str, str | None, str | None]]:
    """GET the order from every host's own port, in order: (host, X-Served-By, X-Cache)."""
    seen = []
    for host in lab_hosts(fleet):
        status, headers, _ = http(f"http://{host.ip}:{APP_PORT}/orders/{order_id}", timeout=5)
        assert status == 200, (host, status)
        seen.append((host.id, headers.get("x-served-by"), headers.get("x-cache")))
    return seen


def assert_cached_across_hosts(fleet, store: redis.Redis, other: redis.Redis) -> int:
    """An order read first on one host (a miss, which caches it) is a hit on every other host; its key is
    in `store` and not in `other`. Returns the order id."""
    order = new_order(fleet.endpoints["lb_url"], customer="external-cache")
    # X-Served-By carries the instance id once the worker learnt it (IMDS): wait for the first host's.
    seen = read_each_host(fleet, order["id"])
    assert [s[2] for s in seen] == ["miss"] + ["hit"] * (len(seen) - 1), seen
    assert all(served in (host, None) for host, served, _ in seen), seen
    assert order_keys(store, order["id"]), f"order {order['id']} is not in the Redis the fleet should use"
    assert not order_keys(other, order["id"]), f"order {order['id']} is in the Redis the fleet should not use"
    return order["id"]


@pytest.fixture(scope="module")
def on_external(converged) -> Iterator[OnExternal]:
    """The fleet moved onto the internet Redis (site.yml --tags app); moved back afterwards, whatever happened."""
    fleet = converged
    assert_lab_as_found(fleet)
    groups_before = replication_groups(fleet)
    started = time.monotonic()
    run = fleet.play("site", "--tags", "app", extra={"aws_cache_external_url": fleet.endpoints["external_redis_url"]})
    figure(f"site.yml --tags app onto the external Redis: {time.monotonic() - started:.0f} s")
    try:
        assert run.rc == 0, f"site.yml on the external Redis failed:\n{run.output[-4000:]}"
        yield OnExternal(fleet, run, groups_before)
    finally:
        start = fleet.labctl("fault", "ext-redis-start")
        back = fleet.play("site", "--tags", "app")
        assert start.returncode == 0, start.stdout + start.stderr
        assert back.rc == 0, f"site.yml back on the lab's ElastiCache failed:\n{back.output[-4000:]}"
        assert_lab_as_found(fleet)
        # Serving from the lab's ElastiCache again, and no longer from the internet Redis.
        wait_for("hits across hosts on the lab's ElastiCache", lambda: _cached_on(fleet, elasticache_redis,
                                                                                  external_redis), 60, interval=2)


def _cached_on(fleet, store, other) -> bool:
    try:
        assert_cached_across_hosts(fleet, store(fleet), other(fleet))
        return True
    except AssertionError:
        return False


def cached_across_hosts_within(fleet, store, other, timeout: float) -> tuple[int, float]:
    """assert_cached_across_hosts, tried again for at most `timeout` s (the workers restarted by site.yml
    connect to the new Redis on their first request: on a busy machine the first TLS handshakes may pass the
    app's 0.5 s Redis timeout, and its breaker then skips Redis for 2 s); (order id, seconds it took)."""
    started = time.monotonic()
    while True:
        try:
            return assert_cached_across_hosts(fleet, store(fleet), other(fleet)), time.monotonic() - started
        except AssertionError:
            if time.monotonic() - started > timeout:
                raise
            time.sleep(2)


def test_the_fleet_caches_on_the_external_redis_across_hosts_without_elasticache(on_external: OnExternal):
    fleet, run = on_external.fleet, on_external.run
    password = urlsplit(fleet.endpoints["external_redis_url"]).password
    assert password and password not in run.output, "the external Redis URL's password is in the play's output"
    # The role took the external path: the URL's endpoint published, no replication group asked for.
    assert "Publish the endpoint of the external Redis" in run.output
    assert "Manage replication group" not in run.output and "Publish the replication group" not in run.output
    assert replication_groups(fleet) == on_external.groups_before, "the ElastiCache resources changed"

    order_id, warmup = cached_across_hosts_within(fleet, external_redis, elasticache_redis, 30)
    lb = fleet.endpoints["lb_url"]
    with LoadGen(f"{lb}/orders/{order_id}", rate=RATE, timeout=5, max_seconds=60,
                 ca_file=fleet.endpoints["lb_ca_file"]) as load:
        load.wait(5)
        # 12 reads in a row, all hits, within 20 s (one Redis call past the app's 0.5 s timeout on a busy
        # machine opens the worker's breaker for 2 s: misses then, as in test_20_faults).
        _, settled = wait_for("12 hits in a row under load", lambda: cached(lb, order_id), 20, interval=0.5)
        load.wait(2)
    report = load.report
    assert report["sent"] == report["planned"], delivery(report)
    assert report["failed"] == 0, loaded_failures(report)
    info = external_redis(fleet).info("clients")
    figure(f"external Redis under {RATE} req/s: {report['requests']} requests, 0 failed, p99 "
           f"{report['latency_ms']['p99']} ms; {info['connected_clients']} client connections from the hosts; "
           f"hits across hosts {warmup:.1f} s after site.yml; 12 hits in a row under load after {settled:.1f} s")


def test_the_internet_reaches_nothing_in_the_vpc(on_external: OnExternal):
    """The hosts reach the internet Redis; the internet network opens no connection to a host (as through
    a NAT gateway): the lab's nftables table drops it, so the attempt times out."""
    fleet = on_external.fleet
    container = f"{fleet.env['EC2_FLEET_LAB_NAME']}-ext-redis"
    probe = (
        "import socket, sys\n"
        "try:\n    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n    print('open')\n"
        "except OSError as exc:\n    print(type(exc).__name__)\n"
    )
    host = lab_hosts(fleet)[0]
    result = subprocess.run(["podman", "exec", container, "python3", "-c", probe, host.ip, str(APP_PORT)],
                            capture_output=True, text=True, timeout=30, env=fleet.env, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "TimeoutError", f"the internet Redis reached {host.ip}:{APP_PORT}: {result.stdout}"
    # ... while the host reaches the app's port there (the load balancer's path).
    assert http(f"http://{host.ip}:{APP_PORT}/health", timeout=5)[0] == 200


def test_the_external_redis_stopped_for_20_s_under_load_loses_no_request(on_external: OnExternal):
    fleet = on_external.fleet
    lb = fleet.endpoints["lb_url"]
    order = new_order(lb, customer="external-cache-down")
    wait_for("the order cached", lambda: cached(lb, order["id"]), 30)
    with LoadGen(f"{lb}/orders/{order['id']}", rate=RATE, timeout=5, max_seconds=180,
                 ca_file=fleet.endpoints["lb_ca_file"]) as load:
        load.wait(3)
        stop = fleet.labctl("fault", "ext-redis-stop")
        assert stop.returncode == 0, stop.stdout + stop.stderr
        stopped_at = time.monotonic()
        # Reads answer from PostgreSQL meanwhile; writes too.
        probe_started = time.monotonic()
        status, headers, body = http(f"{lb}/orders/{order['id']}", timeout=15)
        probe = time.monotonic() - probe_started
        assert (status, headers.get("x-cache"), body) == (200, "miss", order)
        assert http(f"{lb}/orders", {"customer": "no-external-cache",
                                     "items": [{"sku": "X-2", "qty": 1, "unit_price_cents": 1}]})[0] == 201
        load.wait(STOPPED_SECONDS - (time.monotonic() - stopped_at))
        start = fleet.labctl("fault", "ext-redis-start")
        assert start.returncode == 0, start.stdout + start.stderr
        back_at = time.monotonic()
        _, recovery = wait_for("cache hits again", lambda: cached(lb, order["id"]), 60, interval=0.1)
        load.wait(3)
    report = load.report
    figure(f"external Redis stopped {back_at - stopped_at:.0f} s under {RATE} req/s: "
           f"{report['failed']} failed of {report['requests']} (p99 {report['latency_ms']['p99']} ms, "
           f"max {report['latency_ms']['max']} ms; first read after the stop {probe * 1000:.0f} ms); "
           f"cache hits again {recovery:.1f} s after it was back")
    assert report["sent"] == report["planned"], delivery(report)
    assert report["failed"] == 0, loaded_failures(report)
    assert recovery < 15
    assert order_keys(external_redis(fleet), order["id"]), "the hits again do not come from the external Redis"
    assert lab_status(fleet)["external_redis"]["state"] == "running"
