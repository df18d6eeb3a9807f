"""Create, read, update through the real service, with the cache observed from Redis itself."""

from __future__ import annotations

import json
import time

from .conftest import AppProcess, RedisServer, new_order


def test_create_returns_201_with_the_order(service: AppProcess) -> None:
    reply = service.send("POST", "/orders", new_order())
    assert reply.status == 201, reply.body
    order = reply.json()
    assert order["id"] > 0
    assert order["customer"] == "acme"
    assert order["amount_cents"] == 2 * 1250 + 99
    assert order["status"] == "new"
    assert order["currency"] == "USD"


def test_create_rejects_invalid_orders_with_the_field_named(service: AppProcess) -> None:
    reply = service.send("POST", "/orders", {"customer": "", "items": [{"sku": "x", "qty": 0}]})
    assert reply.status == 422
    fields = {p["field"] for p in reply.json()["detail"]}
    assert {"customer", "items[0].qty", "items[0].unit_price_cents"} <= fields
    bad_json = service.send("POST", "/orders", b"{not json", headers={"Content-Type": "application/json"})
    assert bad_json.status == 400
    assert bad_json.json()["error"] == "bad_request"


def test_read_is_a_miss_then_a_hit_with_the_same_body(service: AppProcess, redis_server: RedisServer) -> None:
    order = service.send("POST", "/orders", new_order()).json()
    first = service.get(f"/orders/{order['id']}")
    second = service.get(f"/orders/{order['id']}")
    assert (first.status, first.headers["x-cache"]) == (200, "miss")
    assert (second.status, second.headers["x-cache"]) == (200, "hit")
    assert first.json() == second.json() == order
    # the configured prefix is what lands in Redis
    cached = redis_server.client().get(f"test:order:{order['id']}")
    assert cached is not None and json.loads(cached) == order


def test_update_invalidates_the_cache(service: AppProcess, redis_server: RedisServer) -> None:
    order = service.send("POST", "/orders", new_order()).json()
    path = f"/orders/{order['id']}"
    service.get(path)
    assert service.get(path).headers["x-cache"] == "hit"

    patched = service.send("PATCH", path, {"status": "paid", "items": [{"sku": "Z", "qty": 3, "unit_price_cents": 10}]})
    assert patched.status == 200, patched.body
    assert patched.json()["status"] == "paid"
    assert patched.json()["amount_cents"] == 30
    assert redis_server.client().exists(f"test:order:{order['id']}") == 0

    after = service.get(path)
    assert after.headers["x-cache"] == "miss"
    assert after.json()["status"] == "paid"
    assert service.get(path).headers["x-cache"] == "hit"

    put = service.send("PUT", path, {"customer": "globex"})
    assert put.status == 200 and put.json()["customer"] == "globex"
    assert service.get(path).json()["customer"] == "globex"


def test_update_rejects_read_only_fields(service: AppProcess) -> None:
    order = service.send("POST", "/orders", new_order()).json()
    reply = service.send("PATCH", f"/orders/{order['id']}", {"amount_cents": 1})
    assert reply.status == 422
    assert "amount_cents" in reply.json()["detail"][0]["message"]


def test_unknown_orders_are_404_and_not_cached(service: AppProcess, redis_server: RedisServer) -> None:
    assert service.get("/orders/999999999").status == 404
    assert service.get("/orders/not-a-number").status == 404
    assert service.send("PATCH", "/orders/999999999", {"status": "paid"}).status == 404
    assert redis_server.client().exists("test:order:999999999") == 0


def test_cache_entries_expire_after_the_ttl(service: AppProcess, redis_server: RedisServer) -> None:
    order = service.send("POST", "/orders", new_order()).json()
    path = f"/orders/{order['id']}"
    assert service.get(path).headers["x-cache"] == "miss"
    ttl_ms = redis_server.client().pttl(f"test:order:{order['id']}")
    assert 0 < ttl_ms <= 3000  # CACHE_TTL_SECONDS=3 for the shared service
    assert service.get(path).headers["x-cache"] == "hit"
    time.sleep(3.2)
    assert service.get(path).headers["x-cache"] == "miss"


def test_every_answer_names_the_release_that_served_it(service: AppProcess) -> None:
    """X-App-Version on every response (ok, created, not found, refused), equal to /version's version."""
    version = service.get("/version").json()["version"]
    assert version == "1.2.3"  # APP_VERSION of the shared service
    created = service.send("POST", "/orders", new_order())
    replies = [
        created,
        service.get(f"/orders/{created.json()['id']}"),
        service.get("/orders/999999999"),
        service.send("POST", "/orders", {"customer": ""}),
        service.get("/health"),
    ]
    assert [r.status for r in replies] == [201, 200, 404, 422, 200]
    assert [r.headers.get("x-app-version") for r in replies] == [version] * len(replies)


def test_request_id_is_honoured_and_logged(service: AppProcess) -> None:
    reply = service.get("/health", headers={"X-Request-ID": "req-abc-123"})
    assert reply.headers["x-request-id"] == "req-abc-123"
    generated = service.get("/health", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["x-request-id"] != "bad id with spaces"
    assert len(generated.headers["x-request-id"]) == 32

    def logged() -> bool:
        for line in service.logs().splitlines():
            if line.startswith("{") and '"req-abc-123"' in line:
                entry = json.loads(line)
                return entry["request_id"] == "req-abc-123" and entry["path"] == "/health"
        return False

    deadline = time.monotonic() + 3
    while not logged():
        assert time.monotonic() < deadline, service.logs()[-2000:]
        time.sleep(0.05)


def test_metrics_count_cache_hits_and_db_queries(service: AppProcess) -> None:
    order = service.send("POST", "/orders", new_order()).json()
    for _ in range(6):
        service.get(f"/orders/{order['id']}")
    metrics = service.get("/metrics").json()
    assert {"hits", "misses", "errors"} <= set(metrics["cache"])
    assert metrics["db"]["queries"] >= 1
    assert metrics["requests"] >= 1


def test_oversized_bodies_and_unknown_methods_get_json_errors(service: AppProcess) -> None:
    huge = service.send("POST", "/orders", new_order(customer="x" * 70_000))
    assert huge.status == 413 and huge.json()["error"] == "body_too_large"
    assert service.send("DELETE", "/orders/1").status == 405
