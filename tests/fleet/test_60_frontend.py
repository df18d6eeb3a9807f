"""The frontend in the lab, in a real browser: published to S3 + CloudFront (moto) by frontend.yml, served by
the lab's edge, calling the fleet through the lab's load balancer.

On the session's converged lab: the build for the load balancer's HTTPS URL (tools/build-frontend.sh);
frontend.yml publishes it; the API already allows the edge's origin (CORS_ALLOW_ORIGINS from
fleet_frontend_origin, which playbooks/vars/fleet_app.yml gives the app role since the first site.yml);
then headless Chromium, trusting the lab CA as a user's machine would, loads the page from the edge,
creates an order through the load balancer and sees it, with the host that served it. The screenshot is
.cache/test-reports/frontend.png (a run's copy is docs/img/frontend.png, which the README shows). A
finalizer checks the fleet serves the release it served. The frontend's bucket and distribution stay, as
after a deploy.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest

from ec2_fleet_dev.browser import Browser
from ec2_fleet_dev.lbhttp import http, lab_instance_ids
from ec2_fleet_dev.plays import ROOT

pytestmark = pytest.mark.fleet

BUILD = ROOT / "tools" / "build-frontend.sh"
SCREENSHOT = ROOT / ".cache" / "test-reports" / "frontend.png"


def figure(text: str) -> None:
    print(f"FIGURE {text}")


def edge_url(fleet) -> str:
    """The lab edge's URL (`labctl up --json`), else its documented default port."""
    url = fleet.endpoints.get("edge_url")
    if not url:
        url = f"https://127.0.0.1:{fleet.env.get('EC2_FLEET_LAB_EDGE_PORT') or 9443}"
    return url.rstrip("/")


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def preflight(lb_url: str, origin: str, ca_file: str) -> tuple[int, dict[str, str]]:
    """The browser's CORS preflight for POST /orders, sent by hand through the load balancer."""
    request = urllib.request.Request(f"{lb_url}/orders", method="OPTIONS", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    context = ssl.create_default_context(cafile=ca_file)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}


def releases(lb_url: str) -> set[str]:
    """The versions the fleet serves through the load balancer (a bounded loop of /version)."""
    seen = set()
    for _ in range(30):
        status, _, body = http(f"{lb_url}/version")
        if status == 200:
            seen.add(body["version"])
    return seen


@pytest.fixture(scope="module")
def published(converged, tmp_path_factory):
    """The build published; the finalizer checks the fleet serves what it served."""
    fleet = converged
    lb_url = fleet.endpoints["lb_url"].rstrip("/")
    before = releases(lb_url)
    assert len(before) == 1, f"the fleet serves {before} before the test: not converged on one release"
    timings = {}
    try:
        dist = fleet.state_dir / "frontend" / "dist"
        started = time.monotonic()
        built = subprocess.run([str(BUILD), lb_url, str(dist)], capture_output=True, text=True, timeout=300)
        timings["build"] = time.monotonic() - started
        assert built.returncode == 0, built.stderr + built.stdout

        started = time.monotonic()
        publish = fleet.play("frontend", extra={"frontend_src": str(dist)})
        timings["frontend.yml"] = time.monotonic() - started
        assert publish.rc == 0, f"frontend.yml failed:\n{publish.output[-4000:]}"
        yield fleet, json.loads((dist / "build.json").read_text()), timings
    finally:
        after = releases(lb_url)
        assert after == before, f"the fleet served {before} before the frontend test and {after} after it"


def test_the_api_allows_the_edge_origin_and_no_other(published) -> None:
    fleet, _, _ = published
    lb_url, origin = fleet.endpoints["lb_url"].rstrip("/"), origin_of(edge_url(fleet))
    ca = fleet.endpoints["lb_ca_file"]
    # Every host answers the same: a few rounds through the balancer reach each of them.
    for _ in range(3 * len(lab_instance_ids(fleet))):
        status, headers = preflight(lb_url, origin, ca)
        assert (status, headers.get("access-control-allow-origin")) == (204, origin), (status, headers)
    status, headers = preflight(lb_url, "https://elsewhere.example.com", ca)
    assert "access-control-allow-origin" not in headers, (status, headers)


def test_the_page_from_the_edge_creates_an_order_through_the_load_balancer(published) -> None:
    fleet, build, timings = published
    lb_url, site = fleet.endpoints["lb_url"].rstrip("/"), edge_url(fleet)
    instances = lab_instance_ids(fleet)
    assert build["api_base_url"] == lb_url
    with Browser(ca_files=[fleet.endpoints["lb_ca_file"]]) as browser:
        opened = browser.open(f"{site}/")
        assert origin_of(opened.url) == origin_of(site), opened.url
        assert f"API: {lb_url}" in opened.text
        page = browser.create_order(None, customer="lab-browser", sku="LAB-1", qty=2, price="19.99")
        assert page.error == "", f"the page shows an error: {page.error}\nconsole: {page.console_errors}"
        assert (page.order["customer"], page.order["status"], page.order["amount"]) == ("lab-browser", "new",
                                                                                          "39.98 USD")
        assert page.order["served-by"] in instances, (page.order, instances)
        assert page.console_errors == [], page.console_errors
        status, _, stored = http(f"{lb_url}/orders/{page.order['id']}")
        assert (status, stored["customer"], stored["amount_cents"]) == (200, "lab-browser", 3998)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        browser.screenshot(SCREENSHOT)
        # A deep link is the SPA's page too (the distribution's error response for a missing key).
        deep = browser.open(f"{site}/orders/{page.order['id']}")
        assert "New order" in deep.text and deep.console_errors == [], deep
    assert SCREENSHOT.stat().st_size > 10_000
    figure(f"frontend in the lab: build {timings['build']:.1f} s, frontend.yml {timings['frontend.yml']:.1f} s; "
           f"the browser created order "
           f"{page.order['id']} through the load balancer and showed it {page.seconds} s after the click "
           f"(served by {page.order['served-by']} of {len(instances)} hosts)")
