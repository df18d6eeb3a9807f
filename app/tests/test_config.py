"""Configuration is validated at start: a clear message naming the variable and a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from orders_api.config import ConfigError, load_settings

from .conftest import ORDERS_API

GOOD = {
    "DATABASE_URL": "postgresql://app:s3cret@db.internal:5432/orders",
    "REDIS_URL": "rediss://default:hunter2@cache.internal:6379/0",
    "APP_VERSION": "2.0.0",
}


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in GOOD and not k.startswith(("CACHE_", "DB_", "REDIS"))}
    return subprocess.run([str(ORDERS_API), *args], env={**base, **env}, capture_output=True, text=True, timeout=30)


def test_defaults_apply_when_only_required_variables_are_set() -> None:
    settings = load_settings(GOOD)
    assert settings.cache_ttl_seconds == 300
    assert settings.cache_key_prefix == "orders-api:"
    assert settings.bind == "127.0.0.1:8000"
    assert settings.cache_endpoint == "rediss://cache.internal:6379/0"


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"DATABASE_URL": ""}, "DATABASE_URL is required"),
        ({"REDIS_URL": "http://cache:6379"}, "REDIS_URL must be a URL with scheme redis:// or rediss://"),
        ({"DATABASE_URL": "mysql://db/orders"}, "DATABASE_URL must be a URL with scheme"),
        ({"CACHE_TTL_SECONDS": "ten"}, "CACHE_TTL_SECONDS must be an integer, got 'ten'"),
        ({"CACHE_TTL_SECONDS": "0"}, "CACHE_TTL_SECONDS must be between 1"),
        ({"DB_TIMEOUT_SECONDS": "-1"}, "DB_TIMEOUT_SECONDS must be between"),
        ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR"),
        ({"CACHE_KEY_PREFIX": "has space"}, "CACHE_KEY_PREFIX must match"),
        ({"APP_FORCE_UNREADY": "maybe"}, "APP_FORCE_UNREADY must be one of"),
        ({"REDIS_CA_FILE": "/nonexistent/ca.pem"}, "REDIS_CA_FILE '/nonexistent/ca.pem' does not exist"),
        ({"BIND": "8000"}, "BIND must be HOST:PORT"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY must be between 1"),
        ({"APP_FAULT_READ_ERROR_PERCENT": "101"}, "APP_FAULT_READ_ERROR_PERCENT must be between 0 and 100"),
        ({"APP_FAULT_READ_ERROR_PERCENT": "ten"}, "APP_FAULT_READ_ERROR_PERCENT must be an integer"),
        ({"APP_FAULT_READ_DELAY_MS": "-5"}, "APP_FAULT_READ_DELAY_MS must be between 0 and 60000"),
        ({"APP_FAULT_READ_DELAY_MS": "60001"}, "APP_FAULT_READ_DELAY_MS must be between 0 and 60000"),
    ],
)
def test_bad_values_are_rejected_naming_the_variable(overrides: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**GOOD, **overrides})
    assert any(variable in problem for problem in caught.value.problems), caught.value.problems


def test_unquoted_password_is_reported_without_leaking_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**GOOD, "DATABASE_URL": "postgresql://app:pa/ss@db:5432/orders"})
    assert "DATABASE_URL" in str(caught.value)
    assert "pa/ss" not in str(caught.value)


def test_cli_exits_2_listing_every_missing_variable() -> None:
    result = run_cli({})
    assert result.returncode == 2
    for name in ("DATABASE_URL", "REDIS_URL", "APP_VERSION"):
        assert f"orders-api: configuration error: {name} is required" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_rejects_a_bad_value_before_starting_gunicorn() -> None:
    result = run_cli({**GOOD, "CACHE_TTL_SECONDS": "abc"})
    assert result.returncode == 2
    assert "CACHE_TTL_SECONDS must be an integer, got 'abc'" in result.stderr
    assert "gunicorn" not in result.stderr.lower()


def test_check_config_prints_settings_without_secrets() -> None:
    result = run_cli({**GOOD, "CACHE_TTL_SECONDS": "42"}, "check-config")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["cache_ttl_seconds"] == 42
    assert shown["redis_url"] == "rediss://cache.internal:6379/0"
    assert "s3cret" not in result.stdout and "hunter2" not in result.stdout
