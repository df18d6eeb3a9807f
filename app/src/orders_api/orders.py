"""Validation of order payloads (create and update) and their JSON representation."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

STATUSES = ("new", "paid", "shipped", "cancelled")
_MAX_ITEMS = 100
_MAX_QTY = 10_000
_MAX_PRICE_CENTS = 100_000_000
_CURRENCY_LEN = 3


class ValidationFailed(Exception):
    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(problems)
        self.problems = problems


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_items(items: Any, problems: list[dict[str, str]]) -> list[dict[str, Any]]:
    if not isinstance(items, list) or not 1 <= len(items) <= _MAX_ITEMS:
        problems.append({"field": "items", "message": f"must be a list of 1 to {_MAX_ITEMS} items"})
        return []
    clean = []
    for i, item in enumerate(items):
        where = f"items[{i}]"
        if not isinstance(item, dict):
            problems.append({"field": where, "message": "must be an object"})
            continue
        sku, qty, price = item.get("sku"), item.get("qty"), item.get("unit_price_cents")
        if not isinstance(sku, str) or not 1 <= len(sku.strip()) <= 64:
            problems.append({"field": f"{where}.sku", "message": "must be a string of 1 to 64 characters"})
        if not _is_int(qty) or not 1 <= qty <= _MAX_QTY:
            problems.append({"field": f"{where}.qty", "message": f"must be an integer from 1 to {_MAX_QTY}"})
        if not _is_int(price) or not 0 <= price <= _MAX_PRICE_CENTS:
            message = f"must be an integer from 0 to {_MAX_PRICE_CENTS}"
            problems.append({"field": f"{where}.unit_price_cents", "message": message})
        unknown = set(item) - {"sku", "qty", "unit_price_cents"}
        if unknown:
            problems.append({"field": where, "message": f"unknown fields: {', '.join(sorted(unknown))}"})
        sku = sku.strip() if isinstance(sku, str) else sku
        clean.append({"sku": sku, "qty": qty, "unit_price_cents": price})
    return clean


def _amount(items: list[dict[str, Any]]) -> int:
    return sum(item["qty"] * item["unit_price_cents"] for item in items)


def _check_customer(value: Any, problems: list[dict[str, str]]) -> str:
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= 200:
        problems.append({"field": "customer", "message": "must be a string of 1 to 200 characters"})
        return ""
    return value.strip()


def _check_status(value: Any, problems: list[dict[str, str]]) -> str:
    if value not in STATUSES:
        problems.append({"field": "status", "message": f"must be one of {', '.join(STATUSES)}"})
    return str(value)


def validate_new(body: Any) -> dict[str, Any]:
    """A new order: customer and items required, currency and status optional."""
    if not isinstance(body, dict):
        raise ValidationFailed([{"field": "", "message": "body must be a JSON object"}])
    problems: list[dict[str, str]] = []
    unknown = set(body) - {"customer", "items", "currency", "status"}
    if unknown:
        problems.append({"field": "", "message": f"unknown fields: {', '.join(sorted(unknown))}"})
    order = {
        "customer": _check_customer(body.get("customer"), problems),
        "items": _check_items(body.get("items"), problems),
        "currency": body.get("currency", "USD"),
        "status": _check_status(body.get("status", "new"), problems),
    }
    if not isinstance(order["currency"], str) or len(order["currency"]) != _CURRENCY_LEN \
            or not order["currency"].isalpha():
        problems.append({"field": "currency", "message": "must be a 3-letter ISO 4217 code"})
    if problems:
        raise ValidationFailed(problems)
    order["currency"] = order["currency"].upper()
    order["amount_cents"] = _amount(order["items"])
    return order


def validate_changes(body: Any) -> dict[str, Any]:
    """An update: any of customer, items, status (at least one). Changing items recomputes the amount."""
    if not isinstance(body, dict) or not body:
        raise ValidationFailed([{"field": "", "message": "body must be a non-empty JSON object"}])
    problems: list[dict[str, str]] = []
    unknown = set(body) - {"customer", "items", "status"}
    if unknown:
        listed = ", ".join(sorted(unknown))
        problems.append({"field": "", "message": f"unknown or read-only fields: {listed}"})
    changes: dict[str, Any] = {}
    if "customer" in body:
        changes["customer"] = _check_customer(body["customer"], problems)
    if "items" in body:
        changes["items"] = _check_items(body["items"], problems)
    if "status" in body:
        changes["status"] = _check_status(body["status"], problems)
    if problems:
        raise ValidationFailed(problems)
    if "items" in changes:
        changes["amount_cents"] = _amount(changes["items"])
    return changes


def to_json(row: dict[str, Any]) -> bytes:
    """The API representation of an order row (also what the cache stores)."""
    out = {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in row.items()
    }
    return json.dumps(out, separators=(",", ":")).encode()
