"""Where the checkout is: the kit is installed editable, so its sources live in ROOT/devkit/src."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
