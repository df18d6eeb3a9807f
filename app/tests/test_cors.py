"""CORS_ALLOW_ORIGINS: the frontend's exact origin may call the API from a browser, no other origin may.

Through the real service (gunicorn, PostgreSQL, Redis); the browser's side is tests/frontend.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from orders_api.config import ConfigError, load_settings

from .conftest import ORDERS_API, AppProcess, PostgresServer, RedisServer, app_env, free_port, new_order
from .test_config import GOOD, run_cli

FRONTEND = "https://app.example.com"
DEV = "http://127.0.0.1:5173"
CORS_HEADERS = ("access-control-allow-origin", "access-control-allow-methods", "access-control-allow-headers",
                "access-control-expose-headers", "access-control-max-age", "access-control-allow-credentials")


def preflight(service: AppProcess, origin: str, method: str = "POST", headers: str = "content-type") -> Any:
    return service.send("OPTIONS", "/orders", headers={
        "Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers})


def cors_headers(reply: Any) -> dict[str, str]:
    return {k: v for k, v in reply.headers.items() if k in CORS_HEADERS}


@pytest.fixture(scope="module")
def cors_service(postgres: PostgresServer, redis_server: RedisServer, launch_module: Any) -> AppProcess:
    # Written as an operator might: spaces, an explicit default port, upper-case host.
    return launch_module(app_env(postgres, redis_server.url, CORS_ALLOW_ORIGINS=f" HTTPS://App.Example.com:443 ,{DEV}"))


@pytest.fixture(scope="module")
def launch_module(tmp_base: Path) -> Iterator[Any]:
    """Services kept for the whole module (the `launch` fixture is per test)."""
    started: list[AppProcess] = []

    def _launch(env: dict[str, str]) -> AppProcess:
        full = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "PG", "REDIS", "CORS_"))}
        full.update({"METADATA_URL": "off", "WEB_CONCURRENCY": "1", "BIND": f"127.0.0.1:{free_port()}"}, **env)
        proc = AppProcess([str(ORDERS_API)], full, tmp_base / f"cors-{time.monotonic_ns()}.log", full["BIND"])
        started.append(proc)
        return proc.start()

    yield _launch
    for proc in started:
        proc.terminate(timeout=15)


def test_preflight_from_the_allowed_origin_is_answered_with_that_origin(cors_service: AppProcess) -> None:
    reply = preflight(cors_service, FRONTEND, headers="Content-Type, X-Request-ID")
    assert reply.status == 204, reply.body
    assert reply.headers["access-control-allow-origin"] == FRONTEND
    assert set(reply.headers["access-control-allow-methods"].split(", ")) == {"GET", "POST", "PUT", "PATCH"}
    assert "content-type" in reply.headers["access-control-allow-headers"]
    assert "Origin" in reply.headers["vary"]
    assert "access-control-allow-credentials" not in reply.headers
    # the second listed origin too, exactly as written
    assert preflight(cors_service, DEV).headers["access-control-allow-origin"] == DEV


@pytest.mark.parametrize("origin", [
    "https://evil.example.com",
    "http://app.example.com",          # another scheme is another origin
    "https://app.example.com:8443",    # another port too
    "https://app.example.com.evil.io",  # a suffix is not a match
    "null",
])
def test_other_origins_get_no_cors_headers(cors_service: AppProcess, origin: str) -> None:
    pre = preflight(cors_service, origin)
    assert pre.status == 405  # as without CORS: no route answers OPTIONS
    assert cors_headers(pre) == {}
    created = cors_service.send("POST", "/orders", new_order(), headers={"Origin": origin})
    assert created.status == 201  # the API still works; only the browser withholds the answer from the page
    assert cors_headers(created) == {}
    assert "Origin" in created.headers["vary"]


def test_requests_from_the_allowed_origin_carry_the_origin_and_expose_the_served_by(
        cors_service: AppProcess) -> None:
    created = cors_service.send("POST", "/orders", new_order(customer="cors"), headers={"Origin": FRONTEND})
    assert created.status == 201
    assert created.headers["access-control-allow-origin"] == FRONTEND
    assert created.headers["access-control-allow-origin"] != "*"
    exposed = {h.strip().lower() for h in created.headers["access-control-expose-headers"].split(",")}
    assert {"x-served-by", "x-app-version", "x-request-id", "x-cache"} <= exposed
    read = cors_service.get(f"/orders/{created.json()['id']}", headers={"Origin": FRONTEND})
    assert (read.status, read.json()["customer"]) == (200, "cors")
    assert read.headers["access-control-allow-origin"] == FRONTEND
    # errors the page must be able to read carry the header too
    missing = cors_service.get("/orders/999999999", headers={"Origin": FRONTEND})
    assert (missing.status, missing.headers["access-control-allow-origin"]) == (404, FRONTEND)
    invalid = cors_service.send("POST", "/orders", {"customer": ""}, headers={"Origin": FRONTEND})
    assert (invalid.status, invalid.headers["access-control-allow-origin"]) == (422, FRONTEND)


def test_a_preflight_asking_for_a_header_or_method_not_allowed_is_refused(cors_service: AppProcess) -> None:
    reply = preflight(cors_service, FRONTEND, headers="content-type, authorization")
    assert reply.status == 400
    assert cors_headers(reply) == {}
    assert reply.json()["detail"]["headers_not_allowed"] == ["authorization"]
    assert preflight(cors_service, FRONTEND, method="DELETE").status == 400


def test_without_the_setting_no_cors_headers_at_all(service: AppProcess) -> None:
    pre = preflight(service, FRONTEND)
    assert pre.status == 405 and cors_headers(pre) == {}
    created = service.send("POST", "/orders", new_order(), headers={"Origin": FRONTEND})
    assert created.status == 201
    assert cors_headers(created) == {}
    assert "vary" not in created.headers


def test_origins_are_stored_in_the_form_browsers_send() -> None:
    settings = load_settings({**GOOD, "CORS_ALLOW_ORIGINS": "https://A.example.com:443,http://[::1]:8080, ,"
                                                            "http://x.example:80,https://a.example.com"})
    assert settings.cors_allow_origins == ("https://a.example.com", "http://[::1]:8080", "http://x.example")
    assert load_settings(GOOD).cors_allow_origins == ()


@pytest.mark.parametrize(("value", "why"), [
    ("*", "wildcard"),
    ("https://x/", "no path"),
    ("https://app.example.com/app", "no path"),
    ("https://app.example.com?x=1", "no query"),
    ("app.example.com", "http:// or https://"),
    ("ftp://app.example.com", "http:// or https://"),
    ("https://*.example.com", "wildcards are not allowed"),
    ("https://user:pw@app.example.com", "no user or password"),
    ("https://app.example.com:99999", "port"),
    ("null", "wildcard or 'null'"),
])
def test_bad_origins_are_rejected_naming_the_variable(value: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**GOOD, "CORS_ALLOW_ORIGINS": f"https://ok.example.com,{value}"})
    (problem,) = caught.value.problems
    assert problem.startswith("CORS_ALLOW_ORIGINS must be a comma list of origins"), problem
    assert repr(value) in problem and why in problem, problem


def test_the_command_refuses_a_bad_origin_before_starting() -> None:
    result = run_cli({**GOOD, "CORS_ALLOW_ORIGINS": "https://x/"}, "check-config")
    assert result.returncode == 2
    assert "orders-api: configuration error: CORS_ALLOW_ORIGINS" in result.stderr
    assert "'https://x/'" in result.stderr
    shown = run_cli({**GOOD, "CORS_ALLOW_ORIGINS": FRONTEND}, "check-config")
    assert shown.returncode == 0, shown.stderr
    assert f'"{FRONTEND}"' in shown.stdout
