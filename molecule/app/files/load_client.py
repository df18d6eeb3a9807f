#!/usr/bin/env python3
"""Bounded request loop for deploy tests: GET a URL from N threads until a stop file appears.

Bounded in count (--max-requests) and time (--max-seconds); only for 127.0.0.1. Prints a JSON
summary: requests, failures (any non-200 or connection error, with samples), versions seen.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections import Counter


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000/version")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-requests", type=int, default=20000)
    parser.add_argument("--max-seconds", type=float, default=120)
    parser.add_argument("--timeout", type=float, default=10, help="seconds one request may take")
    parser.add_argument("--interval", type=float, default=0.01, help="pause between requests per thread")
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if not args.url.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise SystemExit("load_client: only 127.0.0.1 may be loaded")

    lock = threading.Lock()
    counts = {"requests": 0, "failures": 0}
    slowest = [0.0]
    versions: Counter[str] = Counter()
    samples: list[str] = []
    deadline = time.monotonic() + args.max_seconds

    def worker() -> None:
        while time.monotonic() < deadline and not os.path.exists(args.stop_file):
            with lock:
                if counts["requests"] >= args.max_requests:
                    return
                counts["requests"] += 1
            began = time.monotonic()
            try:
                with urllib.request.urlopen(args.url, timeout=args.timeout) as resp:
                    body = json.loads(resp.read())
                with lock:
                    versions[str(body.get("version"))] += 1
                    slowest[0] = max(slowest[0], time.monotonic() - began)
            except (OSError, urllib.error.URLError, ValueError) as exc:
                with lock:
                    counts["failures"] += 1
                    if len(samples) < 10:
                        samples.append(f"{type(exc).__name__}: {exc}")
            time.sleep(args.interval)

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary = {**counts, "versions": dict(versions), "failure_samples": samples,
               "seconds": round(time.monotonic() - started, 1), "slowest_ok_seconds": round(slowest[0], 3),
               "stopped_by": "stop-file" if os.path.exists(args.stop_file) else "limit"}
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(summary, fh)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
