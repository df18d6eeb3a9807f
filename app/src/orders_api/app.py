"""The ASGI application: routes, request-id/access-log middleware and the lifespan wiring."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__
from .cache import OrderCache
from .config import Settings, load_settings
from .db import Database, DatabaseUnavailable
from .logs import request_id_var
from .metadata import InstanceIdentity
from .orders import ValidationFailed, to_json, validate_changes, validate_new

log = logging.getLogger("orders_api")
access_log = logging.getLogger("orders_api.access")

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_MAX_BODY_BYTES = 64 * 1024
_MAX_DEBUG_SLEEP_SECONDS = 60.0


@dataclass
class Services:
    settings: Settings
    db: Database
    cache: OrderCache
    identity: InstanceIdentity
    requests: int = 0
    fault_credit: int = 0  # APP_FAULT_READ_ERROR_PERCENT's running share, in percent (see _read_fault)


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def error(status: int, code: str, detail: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": code}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status)


def _order_id(request: Request) -> int:
    raw = request.path_params["order_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise HTTPException(404, "no such order")
    return int(raw)


async def _json_body(request: Request) -> Any:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > _MAX_BODY_BYTES:
        raise HTTPException(413, f"body larger than {_MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > _MAX_BODY_BYTES:
            raise HTTPException(413, f"body larger than {_MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"body is not valid JSON: {exc}") from exc


def _order_response(body: bytes, status: int = 200, cache: str | None = None) -> Response:
    headers = {"X-Cache": cache} if cache else None
    return Response(body, status_code=status, media_type="application/json", headers=headers)


# -- orders --------------------------------------------------------------------------------------


async def create_order(request: Request) -> Response:
    svc = _services(request)
    try:
        order = validate_new(await _json_body(request))
    except ValidationFailed as exc:
        return error(422, "validation_failed", exc.problems)
    row = await svc.db.create_order(order)
    return _order_response(to_json(row), status=201)


def _read_fault(svc: Services) -> bool:
    """APP_FAULT_READ_ERROR_PERCENT: True for exactly that share of this worker's order reads, spread evenly
    (each read adds the percent; a read that brings the sum to 100 fails and takes 100 off), so 10 fails
    reads 10, 20, 30, ... and any 200 reads of a worker hold 20 failures."""
    percent = svc.settings.fault_read_error_percent
    if percent <= 0:
        return False
    svc.fault_credit += percent
    if svc.fault_credit >= 100:
        svc.fault_credit -= 100
        return True
    return False


async def get_order(request: Request) -> Response:
    svc = _services(request)
    order_id = _order_id(request)
    if svc.settings.fault_read_delay_ms:
        await asyncio.sleep(svc.settings.fault_read_delay_ms / 1000)
    if _read_fault(svc):
        return error(500, "injected_fault", "APP_FAULT_READ_ERROR_PERCENT is set")
    cached = await svc.cache.get(order_id)
    if cached is not None:
        return _order_response(cached, cache="hit")
    try:
        row = await svc.db.get_order(order_id)
    except DatabaseUnavailable:
        # A copy in Redis that this read skipped (the breaker open after a slow moment of Redis) is better than a
        # 503 while the database cannot answer: Redis is asked once more (OrderCache.get_when_database_down).
        fallback = await svc.cache.get_when_database_down(order_id)
        if fallback is None:
            raise
        return _order_response(fallback, cache="hit")
    if row is None:
        return error(404, "not_found", f"order {order_id} does not exist")
    body = to_json(row)
    await svc.cache.set(order_id, body)
    return _order_response(body, cache="miss")


async def update_order(request: Request) -> Response:
    svc = _services(request)
    order_id = _order_id(request)
    try:
        changes = validate_changes(await _json_body(request))
    except ValidationFailed as exc:
        return error(422, "validation_failed", exc.problems)
    row = await svc.db.update_order(order_id, changes)
    # Invalidate after the commit (also when the order was missing: nothing stale may remain).
    await svc.cache.invalidate(order_id)
    if row is None:
        return error(404, "not_found", f"order {order_id} does not exist")
    return _order_response(to_json(row))


# -- operations ----------------------------------------------------------------------------------


async def health(request: Request) -> Response:
    """Liveness: the process answers. No dependency is called."""
    return JSONResponse({"status": "ok"})


async def _check(name: str, coro: Any, timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    try:
        await asyncio.wait_for(coro, timeout)
        return {"state": "up", "latency_ms": round((time.monotonic() - started) * 1000, 1)}
    except asyncio.TimeoutError:
        return {"state": "down", "error": f"no answer within {timeout:g}s"}
    except Exception as exc:
        return {"state": "down", "error": str(exc) or type(exc).__name__}


async def ready(request: Request) -> Response:
    """Readiness: PostgreSQL decides (503 when down); Redis down only degrades (still 200)."""
    svc = _services(request)
    timeout = svc.settings.ready_timeout_seconds
    database, cache = await asyncio.gather(
        _check("database", svc.db.ping(timeout), timeout),
        _check("cache", svc.cache.ping(timeout), timeout),
    )
    if cache["state"] == "down":
        cache["state"] = "degraded"
    body: dict[str, Any] = {"database": database, "cache": cache, "version": svc.settings.app_version}
    if svc.settings.force_unready:
        body.update(status="unready", reason="APP_FORCE_UNREADY is set")
        return JSONResponse(body, status_code=503)
    if database["state"] != "up":
        body.update(status="unready", reason="database unavailable")
        return JSONResponse(body, status_code=503)
    body["status"] = "ready" if cache["state"] == "up" else "degraded"
    return JSONResponse(body)


async def version(request: Request) -> Response:
    svc = _services(request)
    identity = await svc.identity.get()
    return JSONResponse({
        "service": "orders-api",
        "version": svc.settings.app_version,
        "package_version": __version__,
        "instance_id": identity.instance_id,
        "instance_id_source": identity.source,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "cache_endpoint": svc.settings.cache_endpoint,
    })


async def metrics(request: Request) -> Response:
    """Counters of this worker process (each gunicorn worker keeps its own)."""
    svc = _services(request)
    return JSONResponse({
        "pid": os.getpid(),
        "requests": svc.requests,
        "cache": {**asdict(svc.cache.stats), "breaker_open": svc.cache.breaker.is_open},
        "db": asdict(svc.db.stats),
    })


async def debug_sleep(request: Request) -> Response:
    """Test aid (APP_DEBUG_ENDPOINTS=1 only): answer after ?seconds=N, to exercise graceful shutdown."""
    if not _services(request).settings.debug_endpoints:
        raise HTTPException(404, "not found")
    try:
        seconds = min(float(request.query_params.get("seconds", "1")), _MAX_DEBUG_SLEEP_SECONDS)
    except ValueError as exc:
        raise HTTPException(400, "seconds must be a number") from exc
    await asyncio.sleep(max(seconds, 0.0))
    return JSONResponse({"slept": seconds, "pid": os.getpid()})


# -- errors and middleware -----------------------------------------------------------------------


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
    return error(exc.status_code, codes.get(exc.status_code, "http_error"), exc.detail)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc)
    return error(500, "internal_error")


async def _db_unavailable(request: Request, exc: Exception) -> Response:
    return error(503, "database_unavailable", str(exc))


class RequestContext:
    """Request id (honours a well-formed X-Request-ID, else a new one), echoed back, and the access log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.monotonic()
        status = 500
        cache = None

        async def send_wrapper(message: Message) -> None:
            nonlocal status, cache
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                cache = dict(headers).get(b"x-cache")
                headers.append((b"x-request-id", request_id.encode()))
                # Which instance answered (once /version or a lookup has learnt it): behind a
                # load balancer, operators and the fleet tests see where a request went.
                services = getattr(getattr(scope.get("app"), "state", None), "services", None)
                known = services.identity.known if services is not None else None
                if known is not None:
                    headers.append((b"x-served-by", known.instance_id.encode()))
                # Which release answered, on every response: a load test reading /orders/<id> sees
                # the release behind each answer without a /version body.
                if services is not None:
                    headers.append((b"x-app-version", services.settings.app_version.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            app = scope.get("app")
            services = getattr(getattr(app, "state", None), "services", None)
            if services is not None:
                services.requests += 1
            extra: dict[str, Any] = {
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            }
            if cache:
                extra["cache"] = cache.decode()
            access_log.info("%s %s %s", scope["method"], scope["path"], status, extra=extra)
            request_id_var.reset(token)


class CorsHeaders:
    """CORS for the exact origins of CORS_ALLOW_ORIGINS (the frontend's), nothing for any other origin.

    A preflight (OPTIONS with Origin and Access-Control-Request-Method) from an allowed origin is answered
    here with 204; other requests from it get Access-Control-Allow-Origin = that origin (never `*`, no
    credentials). Every response carries `Vary: Origin`, since it depends on the caller's origin. A request
    from another origin passes through untouched: the browser then refuses to hand the answer to the page.
    """

    methods = "GET, POST, PUT, PATCH"
    allow_headers = ("content-type", "x-request-id")
    expose_headers = "X-Request-ID, X-Served-By, X-App-Version, X-Cache"
    max_age = "600"

    def __init__(self, app: ASGIApp, origins: tuple[str, ...]) -> None:
        self.app = app
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_headers = dict(scope["headers"])
        origin = request_headers.get(b"origin", b"").decode("latin-1")
        allowed = origin in self.origins
        if allowed and scope["method"] == "OPTIONS" and b"access-control-request-method" in request_headers:
            await self._preflight(origin, request_headers)(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"vary"]
                vary = [v.decode("latin-1") for k, v in message.get("headers", []) if k.lower() == b"vary"]
                headers.append((b"vary", ", ".join([*vary, "Origin"]).encode("latin-1")))
                if allowed:
                    headers += [(b"access-control-allow-origin", origin.encode("latin-1")),
                                (b"access-control-expose-headers", self.expose_headers.encode())]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)

    def _preflight(self, origin: str, request_headers: dict[bytes, bytes]) -> Response:
        asked = request_headers.get(b"access-control-request-headers", b"").decode("latin-1")
        wanted = [h.strip().lower() for h in asked.split(",") if h.strip()]
        refused = [h for h in wanted if h not in self.allow_headers]
        method = request_headers[b"access-control-request-method"].decode("latin-1")
        if refused or method not in self.methods.split(", "):
            # Answered without CORS headers: the browser reports the refusal to the page's console.
            response: Response = error(400, "cors_preflight_refused", {
                "method": method, "headers_not_allowed": refused,
                "allowed_methods": self.methods, "allowed_headers": ", ".join(self.allow_headers)})
            response.headers["Vary"] = "Origin"
        else:
            response = Response(status_code=204, headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": self.methods,
                "Access-Control-Allow-Headers": ", ".join(self.allow_headers),
                "Access-Control-Max-Age": self.max_age,
                "Vary": "Origin",
            })
        return response


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the app; settings default to the environment (ConfigError if invalid)."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = Services(
            settings=settings,
            db=Database(settings.database_url, settings.db_timeout_seconds, settings.db_pool_size),
            cache=OrderCache(
                settings.redis_url,
                prefix=settings.cache_key_prefix,
                ttl=settings.cache_ttl_seconds,
                timeout=settings.redis_timeout_seconds,
                retry_seconds=settings.redis_retry_seconds,
                ca_file=settings.redis_ca_file,
            ),
            identity=InstanceIdentity(settings.metadata_url, settings.metadata_timeout_seconds),
        )
        app.state.services = services
        await services.db.prepare()
        # Learn the instance id in the background: X-Served-By carries it once known.
        identity_lookup = asyncio.create_task(services.identity.learn())
        log.info("worker started", extra={
            "version": settings.app_version,
            "database": settings.database_endpoint,
            "cache_endpoint": settings.cache_endpoint,
        })
        try:
            yield
        finally:
            identity_lookup.cancel()
            await services.db.close()
            await services.cache.close()
            log.info("worker stopped")

    routes = [
        Route("/orders", create_order, methods=["POST"]),
        Route("/orders/{order_id}", get_order, methods=["GET"]),
        Route("/orders/{order_id}", update_order, methods=["PUT", "PATCH"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/debug/sleep", debug_sleep, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, DatabaseUnavailable: _db_unavailable,
                            Exception: _internal_error},
    )
    if settings.cors_allow_origins:  # empty: no CORS headers at all
        app.add_middleware(CorsHeaders, origins=settings.cors_allow_origins)
    app.add_middleware(RequestContext)  # added last: outermost, so preflights are logged too
    return app
