"""`orders-api`: validate the configuration, then exec gunicorn in this same process.

os.execv keeps the PID, so LISTEN_PID set by systemd (socket activation) still matches and
gunicorn adopts the passed sockets. `orders-api check-config` only validates and prints.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict

from .config import ConfigError, load_settings

EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        settings = load_settings()
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"orders-api: configuration error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if args[:1] == ["check-config"]:
        shown = asdict(settings) | {
            "database_url": settings.database_endpoint,
            "redis_url": settings.cache_endpoint,
        }
        print(json.dumps(shown, indent=2))
        return 0
    if args:
        print(f"usage: orders-api [check-config] (got {' '.join(args)!r})", file=sys.stderr)
        return EXIT_CONFIG
    argv_exec = [sys.executable, "-m", "gunicorn", "--config", "python:orders_api.gunicorn_conf"]
    os.execv(sys.executable, argv_exec)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
