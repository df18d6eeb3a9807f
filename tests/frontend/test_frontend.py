"""The reference frontend in a real headless Chromium, against the real orders API, without a lab.

The app runs as its own tests run it (app/tests/conftest.py: PostgreSQL 15, redis-server and
`orders-api` on 127.0.0.1, random ports); the build (tools/build-frontend.sh) is served by a static
server on another port: another origin, so the browser really applies CORS. The page must create an
order and show it when the API allows its origin, and show the refusal when it does not.
Figures (the build's cost, the page's time to show an order) are printed on FIGURE lines.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ec2_fleet_dev.browser import Browser
from ec2_fleet_dev.plays import ROOT

BUILD = ROOT / "tools" / "build-frontend.sh"
ARTIFACTS = ROOT / "artifacts" / "frontend"


def _app_testkit() -> Any:
    """The app's own test setup (app/tests/conftest.py), loaded as a plain module."""
    spec = importlib.util.spec_from_file_location("orders_api_testkit", ROOT / "app" / "tests" / "conftest.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


kit = _app_testkit()


def figure(text: str) -> None:
    print(f"FIGURE {text}")


class StaticSite:
    """A plain static server for a build directory on 127.0.0.1 (one port = one origin)."""

    def __init__(self, root: Path, tls: ssl.SSLContext | None = None) -> None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.origin = f"{'https' if tls else 'http'}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Stack:
    api: Any            # kit.AppProcess
    postgres: Any       # kit.PostgresServer
    site: StaticSite    # the origin the API allows
    other: StaticSite   # the same build on another port: an origin the API does not allow
    dist: Path
    build_output: str

    def orders_of(self, customer: str) -> int:
        return int(self.postgres.psql(f"SELECT count(*) FROM orders WHERE customer = '{customer}'", db="orders"))


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    base = Path(tempfile.mkdtemp(prefix="ec2-fleet-frontend-test-"))
    base.chmod(0o755)
    started: list[Any] = []
    try:
        pg = kit.PostgresServer(base / "pg")
        pg.init()
        pg.start()
        started.append(pg.stop)
        pg.psql("CREATE DATABASE orders")
        redis = kit.RedisServer(base / "redis")
        redis.start()
        started.append(redis.stop)

        api_port = kit.free_port()
        dist = base / "dist"
        built = subprocess.run([str(BUILD), f"http://127.0.0.1:{api_port}", str(dist)], capture_output=True,
                               text=True, timeout=300)
        assert built.returncode == 0, built.stderr + built.stdout
        site, other = StaticSite(dist), StaticSite(dist)
        started += [site.close, other.close]

        env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "PG", "REDIS", "CORS_"))}
        env.update(kit.app_env(pg, redis.url, METADATA_URL="off", WEB_CONCURRENCY="1",
                               BIND=f"127.0.0.1:{api_port}", CORS_ALLOW_ORIGINS=site.origin))
        api = kit.AppProcess([str(kit.ORDERS_API)], env, base / "api.log", env["BIND"])
        started.append(lambda: api.terminate(timeout=15))
        api.start()
        yield Stack(api, pg, site, other, dist, built.stdout)
    finally:
        for stop in reversed(started):
            stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser() as b:
        yield b


def test_the_build_has_hashed_assets_an_unhashed_index_and_a_record(stack: Stack) -> None:
    record = json.loads((stack.dist / "build.json").read_text())
    paths = {f["path"] for f in record["files"]}
    assert "index.html" in paths
    assets = sorted(p for p in paths if p.startswith("assets/"))
    assert assets and all(re.fullmatch(r"assets/index-[A-Za-z0-9_-]{8}\.(js|css)", p) for p in assets), assets
    index = (stack.dist / "index.html").read_text()
    assert all(f"/{p}" in index for p in assets), index  # the page loads exactly these
    api_url = f"http://{stack.api.target}"
    assert record["api_base_url"] == api_url
    assert api_url in next((stack.dist / p).read_text() for p in assets if p.endswith(".js"))
    # The commit built from (HEAD then; a commit since, by anyone, leaves it HEAD's ancestor).
    assert re.fullmatch(r"[0-9a-f]{40}", record["source_commit"]), record["source_commit"]
    assert subprocess.run(["git", "-C", str(ROOT), "merge-base", "--is-ancestor", record["source_commit"], "HEAD"],
                          capture_output=True).returncode == 0
    for f in record["files"]:
        assert hashlib.sha256((stack.dist / f["path"]).read_bytes()).hexdigest() == f["sha256"], f["path"]
    cost = re.search(r"took ([\d.]+) s \(.*npm ci ([\d.]+), vite build ([\d.]+)", stack.build_output)
    assert cost, stack.build_output
    figure(f"frontend build (tools/build-frontend.sh): {cost[1]} s (npm ci {cost[2]} s, vite build {cost[3]} s), "
           f"{len(paths)} files, {sum(f['size'] for f in record['files'])} bytes")


def test_the_same_inputs_build_the_same_files_and_bad_inputs_are_refused(stack: Stack, tmp_path: Path) -> None:
    again = subprocess.run([str(BUILD), f"http://{stack.api.target}", str(tmp_path / "again")], capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    first = json.loads((stack.dist / "build.json").read_text())
    second = json.loads((tmp_path / "again" / "build.json").read_text())
    assert (second["build_id"], second["files"]) == (first["build_id"], first["files"])

    keep = tmp_path / "precious"
    keep.mkdir()
    (keep / "notes.txt").write_text("not a build")
    for args, message in (
        (["ftp://api.example.com", str(tmp_path / "x")], "API_BASE_URL must be http(s)://host[:port][/path]"),
        (["https://api.example.com?debug=1", str(tmp_path / "x")], "API_BASE_URL must be"),
        (["https://api.example.com", str(keep)], "is not empty and holds no build.json"),
        (["https://api.example.com"], "usage: tools/build-frontend.sh API_BASE_URL OUT_DIR"),
    ):
        refused = subprocess.run([str(BUILD), *args], capture_output=True, text=True, timeout=60)
        assert (refused.returncode, message in refused.stderr) == (2, True), refused.stderr
    assert not (tmp_path / "x").exists()
    assert (keep / "notes.txt").read_text() == "not a build"


def test_the_page_creates_an_order_through_the_api_and_shows_it(stack: Stack, browser: Browser) -> None:
    opened = browser.open(f"{stack.site.origin}/")
    assert f"API: http://{stack.api.target}" in opened.text
    page = browser.create_order(None, customer="browser-ok", sku="BOOK-7", qty=3, price="4.20")
    assert page.error == "", page.error
    assert page.order["customer"] == "browser-ok"
    assert page.order["status"] == "new"
    assert page.order["amount"] == "12.60 USD"
    assert page.order["items"] == "3 x BOOK-7 @ 4.20 USD"
    # The id on the page is the one the API stored, and X-Served-By reached the page through CORS.
    stored = stack.api.get(f"/orders/{page.order['id']}").json()
    assert (stored["customer"], stored["amount_cents"]) == ("browser-ok", 1260)
    served_by = stack.api.get("/version").json()["instance_id"]
    assert page.order["served-by"] == served_by
    assert page.order["read"] == "cache miss"
    assert f"Order {page.order['id']} created (served by {served_by})" in page.message
    assert page.console_errors == []
    shot = browser.screenshot(ARTIFACTS / "frontend-local.png")
    assert shot.stat().st_size > 10_000
    figure(f"browser: order {page.order['id']} created and shown {page.seconds} s after the click "
           f"(POST with CORS preflight, then GET, page on {stack.site.origin}, API on {stack.api.target})")


def test_the_api_error_is_shown_in_plain_words(stack: Stack, browser: Browser) -> None:
    page = browser.create_order(f"{stack.site.origin}/", customer="", sku="A-1", qty=1, price="1.00")
    assert page.error.startswith("The orders API answered 422 validation_failed: customer:"), page.error
    assert page.order == {}


def test_an_origin_the_api_does_not_allow_shows_the_refusal_and_creates_nothing(
        stack: Stack, browser: Browser) -> None:
    page = browser.create_order(f"{stack.other.origin}/", customer="browser-refused", qty=1, price="9.99")
    assert page.order == {}
    assert page.error.startswith(f"Could not reach the orders API at http://{stack.api.target}"), page.error
    assert f"does not allow this page's origin {stack.other.origin} (CORS_ALLOW_ORIGINS)" in page.error
    # The browser itself refused, after the preflight: the POST never reached the API.
    assert any("blocked by CORS policy" in e for e in page.console_errors), page.console_errors
    time.sleep(0.2)
    assert stack.orders_of("browser-refused") == 0
    browser.screenshot(ARTIFACTS / "frontend-cors-refused.png")


def test_the_browser_trusts_the_lab_ca_it_is_given_and_no_other(tmp_path: Path) -> None:
    """TLS as a user's machine does it: a CA in the browser's NSS database, no certificate errors ignored."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=frontend test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "site.key", "-out", "site.csr", "-subj", "/CN=127.0.0.1")
    (tmp_path / "ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "site.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "site.crt", "-days", "1", "-extfile", "ext")
    (tmp_path / "index.html").write_text("<!doctype html><title>t</title><p id=ok>served over TLS</p>")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "site.crt", tmp_path / "site.key")
    site = StaticSite(tmp_path, tls=context)
    url = f"{site.origin}/index.html"
    try:
        with Browser() as untrusting:
            untrusting.driver.get(url)
            assert "served over TLS" not in untrusting.driver.page_source
            assert "privacy error" in untrusting.driver.title.lower(), untrusting.driver.title
        with Browser(ca_files=[tmp_path / "ca.crt"]) as trusting:
            trusting.driver.get(url)
            assert trusting.driver.find_element("id", "ok").text == "served over TLS"
    finally:
        site.close()
