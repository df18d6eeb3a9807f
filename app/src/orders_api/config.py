"""Configuration: read once from environment variables and validated before anything starts."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9:_.\-]{0,64}$")
_BIND_RE = re.compile(r"^(unix:/\S+|\[[0-9a-fA-F:]+\]:\d{1,5}|[A-Za-z0-9.\-]+:\d{1,5})$")


class ConfigError(Exception):
    """One or more environment variables are missing or invalid; each problem names its variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    """Every setting of the service (see README.md, "Configuration")."""

    database_url: str
    redis_url: str
    app_version: str
    redis_ca_file: str | None = None
    cache_ttl_seconds: int = 300
    cache_key_prefix: str = "orders-api:"
    db_timeout_seconds: float = 3.0
    db_pool_size: int = 2
    redis_timeout_seconds: float = 0.5
    redis_retry_seconds: float = 2.0
    ready_timeout_seconds: float = 1.0
    metadata_url: str | None = "http://169.254.169.254"
    metadata_timeout_seconds: float = 1.0
    log_level: str = "INFO"
    bind: str = "127.0.0.1:8000"
    web_concurrency: int = 2
    graceful_timeout_seconds: int = 30
    keepalive_seconds: int = 75
    force_unready: bool = False
    debug_endpoints: bool = False
    # Fault settings (a "bad release" for alarm tests): that share of order reads answers 500; each read waits.
    fault_read_error_percent: int = 0
    fault_read_delay_ms: int = 0
    cors_allow_origins: tuple[str, ...] = ()

    @property
    def cache_endpoint(self) -> str:
        """The Redis endpoint without user name or password, safe to show and log."""
        return redact_url(self.redis_url)

    @property
    def database_endpoint(self) -> str:
        return redact_url(self.database_url)


def redact_url(url: str) -> str:
    """Drop the credentials (and query) from a URL: scheme://host:port/path."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # a bad port (often an unquoted '/' or ':' in the password)
        port = None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _Reader:
    """Collects every problem instead of stopping at the first, so one run shows them all."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.env = environ
        self.problems: list[str] = []

    def required(self, name: str) -> str:
        value = self.env.get(name, "").strip()
        if not value:
            self.problems.append(f"{name} is required but not set")
        return value

    def _number(self, name: str, default: T, cast: Callable[[str], T], low: float, high: float) -> T:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = cast(raw)
        except ValueError:
            kind = "an integer" if cast is int else "a number"
            self.problems.append(f"{name} must be {kind}, got {raw!r}")
            return default
        if not low <= value <= high:  # type: ignore[operator]
            self.problems.append(f"{name} must be between {low:g} and {high:g}, got {raw!r}")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        return self._number(name, default, int, low, high)

    def number(self, name: str, default: float, low: float, high: float) -> float:
        return self._number(name, default, float, low, high)

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.env.get(name)
        if raw is None:
            return default
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        self.problems.append(f"{name} must be one of 1/0, true/false, yes/no, on/off, got {raw!r}")
        return default

    def url(self, name: str, schemes: tuple[str, ...]) -> str:
        value = self.required(name)
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.hostname:
            self.problems.append(
                f"{name} must be a URL with scheme {' or '.join(s + '://' for s in schemes)} and a host, "
                f"got {redact_url(value)!r}"
            )
            return value
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            self.problems.append(
                f"{name} has an invalid host:port part (percent-encode '@', ':' and '/' in the password), "
                f"got host {parts.hostname!r}"
            )
        return value


_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_cors_origins(raw: str) -> tuple[tuple[str, ...], list[str]]:
    """CORS_ALLOW_ORIGINS: a comma list of exact origins (scheme://host[:port]), as a browser sends them in
    `Origin`. Returns the origins in that serialized form (lower-case, default port dropped) and the problems."""
    origins: list[str] = []
    problems: list[str] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        why = ""
        parts = urlsplit(item)
        try:
            port = parts.port
        except ValueError:
            port, why = None, "its port is not a number from 1 to 65535"
        if item in ("*", "null"):
            why = "a wildcard or 'null' lets any page call the API; list each origin"
        elif parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
            why = "it needs http:// or https:// and a host"
        elif parts.username is not None or parts.password is not None:
            why = "an origin has no user or password"
        elif parts.path or parts.query or parts.fragment or item.endswith(("?", "#")):
            why = "an origin has no path, not even '/', no query and no fragment"
        elif "*" in parts.netloc:
            why = "wildcards are not allowed; list each origin"
        if why:
            problems.append(
                f"CORS_ALLOW_ORIGINS must be a comma list of origins like https://app.example.com or "
                f"http://127.0.0.1:5173: {item!r} is not one ({why})"
            )
            continue
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        if ":" in host:
            host = f"[{host}]"
        origin = f"{scheme}://{host}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"
        if origin not in origins:
            origins.append(origin)
    return tuple(origins), problems


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment; raise ConfigError naming every bad or missing variable."""
    env = os.environ if environ is None else environ
    r = _Reader(env)
    database_url = r.url("DATABASE_URL", ("postgresql", "postgres"))
    redis_url = r.url("REDIS_URL", ("redis", "rediss"))
    app_version = r.required("APP_VERSION")

    redis_ca_file = env.get("REDIS_CA_FILE", "").strip() or None
    if redis_ca_file:
        if not os.path.isfile(redis_ca_file):
            r.problems.append(f"REDIS_CA_FILE {redis_ca_file!r} does not exist or is not a file")
        elif redis_url and not redis_url.startswith("rediss://"):
            r.problems.append("REDIS_CA_FILE is set but REDIS_URL does not use rediss:// (TLS)")

    prefix = env.get("CACHE_KEY_PREFIX", "orders-api:")
    if not _PREFIX_RE.match(prefix):
        r.problems.append(f"CACHE_KEY_PREFIX must match {_PREFIX_RE.pattern}, got {prefix!r}")

    log_level = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if log_level not in _LOG_LEVELS:
        r.problems.append(f"LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}, got {env.get('LOG_LEVEL')!r}")

    metadata_url: str | None = env.get("METADATA_URL", "http://169.254.169.254").strip().rstrip("/")
    if metadata_url in ("", "off", "none"):
        metadata_url = None
    elif not metadata_url.startswith(("http://", "https://")):
        r.problems.append(f"METADATA_URL must be an http(s) URL or 'off', got {metadata_url!r}")

    bind = env.get("BIND", "127.0.0.1:8000").strip()
    if not _BIND_RE.match(bind):
        r.problems.append(f"BIND must be HOST:PORT, [IPV6]:PORT or unix:/PATH, got {bind!r}")

    cors_allow_origins, cors_problems = parse_cors_origins(env.get("CORS_ALLOW_ORIGINS", ""))
    r.problems.extend(cors_problems)

    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        app_version=app_version,
        redis_ca_file=redis_ca_file,
        cache_ttl_seconds=r.integer("CACHE_TTL_SECONDS", 300, 1, 7 * 86400),
        cache_key_prefix=prefix,
        db_timeout_seconds=r.number("DB_TIMEOUT_SECONDS", 3.0, 0.1, 60),
        db_pool_size=r.integer("DB_POOL_SIZE", 2, 0, 100),
        redis_timeout_seconds=r.number("REDIS_TIMEOUT_SECONDS", 0.5, 0.05, 30),
        redis_retry_seconds=r.number("REDIS_RETRY_SECONDS", 2.0, 0, 30),
        ready_timeout_seconds=r.number("READY_TIMEOUT_SECONDS", 1.0, 0.1, 30),
        metadata_url=metadata_url,
        metadata_timeout_seconds=r.number("METADATA_TIMEOUT_SECONDS", 1.0, 0.05, 10),
        log_level=log_level,
        bind=bind,
        web_concurrency=r.integer("WEB_CONCURRENCY", 2, 1, 64),
        graceful_timeout_seconds=r.integer("GRACEFUL_TIMEOUT_SECONDS", 30, 1, 600),
        keepalive_seconds=r.integer("KEEPALIVE_SECONDS", 75, 1, 3600),
        force_unready=r.boolean("APP_FORCE_UNREADY", False),
        debug_endpoints=r.boolean("APP_DEBUG_ENDPOINTS", False),
        fault_read_error_percent=r.integer("APP_FAULT_READ_ERROR_PERCENT", 0, 0, 100),
        fault_read_delay_ms=r.integer("APP_FAULT_READ_DELAY_MS", 0, 0, 60000),
        cors_allow_origins=cors_allow_origins,
    )
    if r.problems:
        raise ConfigError(r.problems)
    return settings
