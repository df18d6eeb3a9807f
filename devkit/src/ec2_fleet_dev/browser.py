"""A real headless browser for the frontend tests: Debian's Chromium driven by Selenium through Debian's chromedriver.

Why Selenium and not the DevTools protocol by hand: WebDriver gives the waits, form filling and the
browser's console log in a few stable calls, and Debian ships a chromedriver built from the same
source as its chromium (same version, always), so nothing is downloaded: the driver path is given,
which keeps Selenium Manager from running at all.

TLS: a lab CA is trusted properly, the way a user's machine trusts a CA: an NSS database
(`certutil` from libnss3-tools) in a private HOME for this browser only, holding that CA as a trusted
issuer. No `--ignore-certificate-errors`: an untrusted certificate fails here as it would for users.

    with Browser(ca_files=[lab_ca]) as browser:
        page = browser.create_order(frontend_url, customer="acme", sku="A-1", qty=2, price="12.50")
        page.order["id"], page.text, page.console_errors
        browser.screenshot(path)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("EC2_FLEET_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("EC2_FLEET_CHROMEDRIVER", "/usr/bin/chromedriver")
CERTUTIL = shutil.which("certutil") or "/usr/bin/certutil"
HOST_PACKAGES = "chromium chromium-driver libnss3-tools"


class BrowserUnavailable(RuntimeError):
    """Chromium, its driver or certutil is missing (install the host packages)."""


def missing_tools() -> list[str]:
    """The browser tools this machine lacks (empty when a browser can run)."""
    return [p for p in (CHROMIUM, CHROMEDRIVER, CERTUTIL) if not os.access(p, os.X_OK)]


@dataclass
class PageResult:
    """What the page shows after an action: its text, the order it lists (if any) and the console."""

    url: str
    text: str
    error: str
    message: str
    order: dict[str, str] = field(default_factory=dict)
    console_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Browser:
    """One headless Chromium session. Every wait is bounded; close() (or the with-block) ends the browser."""

    def __init__(self, ca_files: Sequence[str | Path] = (), window: tuple[int, int] = (1100, 1000),
                 page_timeout: float = 30.0) -> None:
        missing = missing_tools()
        if missing:
            raise BrowserUnavailable(f"missing {', '.join(missing)}: apt-get install {HOST_PACKAGES}")
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.home = Path(tempfile.mkdtemp(prefix="ec2-fleet-browser-"))
        self.page_timeout = page_timeout
        try:
            self._trust(ca_files)
            options = webdriver.ChromeOptions()
            options.binary_location = CHROMIUM
            for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                        "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={self.home / 'profile'}",
                        f"--window-size={window[0]},{window[1]}", "--lang=en-US"):
                options.add_argument(arg)
            options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
            # HOME points Chromium's NSS lookups at the private database made by _trust().
            env = {**os.environ, "HOME": str(self.home), "SE_AVOID_STATS": "true"}
            service = Service(executable_path=CHROMEDRIVER, env=env, log_output=str(self.home / "chromedriver.log"))
            self.driver = webdriver.Chrome(service=service, options=options)
            self.driver.set_page_load_timeout(page_timeout)
            self.driver.set_script_timeout(page_timeout)
        except BaseException:
            shutil.rmtree(self.home, ignore_errors=True)
            raise

    def _trust(self, ca_files: Sequence[str | Path]) -> None:
        nssdb = self.home / ".pki" / "nssdb"
        nssdb.mkdir(parents=True)
        subprocess.run([CERTUTIL, "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True,
                       capture_output=True, timeout=30)
        for n, ca in enumerate(ca_files):
            subprocess.run([CERTUTIL, "-A", "-d", f"sql:{nssdb}", "-n", f"ec2-fleet-ca-{n}", "-t", "C,,",
                            "-i", str(ca)], check=True, capture_output=True, timeout=30)

    # -- actions ---------------------------------------------------------------------------------

    def open(self, url: str) -> PageResult:
        """Load the page and wait (bounded) until its script has run (the API URL is filled in)."""
        started = time.monotonic()
        self.driver.get(url)
        self._wait(lambda d: d.find_element("id", "api-base").text.strip() != "", "the page's script to run")
        return self.read(started)

    def create_order(self, url: str | None, customer: str, sku: str = "A-1", qty: int = 1,
                     price: str = "12.50", timeout: float = 20.0) -> PageResult:
        """Fill the form, click Create order and wait (bounded) until the page shows the order or an error."""
        from selenium.webdriver.common.by import By

        if url is not None:
            self.open(url)
        started = time.monotonic()
        before = len(self.driver.find_elements(By.CSS_SELECTOR, "#orders li.order"))
        for element_id, value in (("customer", customer), ("sku", sku), ("qty", str(qty)), ("price", price)):
            box = self.driver.find_element(By.ID, element_id)
            box.clear()
            box.send_keys(value)
        self.driver.find_element(By.ID, "create").click()

        def settled(d: Any) -> bool:
            shown = len(d.find_elements(By.CSS_SELECTOR, "#orders li.order")) > before
            failed = d.find_element(By.ID, "error").is_displayed()
            return shown or failed

        self._wait(settled, "the order or an error on the page", timeout)
        return self.read(started)

    def read(self, started: float | None = None) -> PageResult:
        """The page as a user sees it now, the first listed order's fields, and the console's errors."""
        from selenium.webdriver.common.by import By

        d = self.driver
        order: dict[str, str] = {}
        first = d.find_elements(By.CSS_SELECTOR, "#orders li.order")
        if first:
            for dd in first[0].find_elements(By.CSS_SELECTOR, "dd[data-field]"):
                order[dd.get_attribute("data-field") or ""] = dd.text
        error_box = d.find_element(By.ID, "error")
        return PageResult(
            url=d.current_url,
            text=d.find_element(By.TAG_NAME, "body").text,
            error=error_box.text if error_box.is_displayed() else "",
            message=d.find_element(By.ID, "message").text,
            order=order,
            console_errors=self.console_errors(),
            seconds=round(time.monotonic() - started, 2) if started is not None else 0.0,
        )

    def console_errors(self) -> list[str]:
        """Console messages at SEVERE level since the last call (CORS refusals, failed loads, script errors)."""
        return [e["message"] for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]

    def screenshot(self, path: str | Path, width: int = 1000) -> Path:
        """A PNG of the whole page at the given CSS width (the viewport set to the document's height)."""
        import base64

        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        metrics = {"width": width, "height": 600, "deviceScaleFactor": 1, "mobile": False}
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        try:
            height = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
            metrics["height"] = min(max(height, 300), 4000)
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
            shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        finally:
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        out.write_bytes(base64.b64decode(shot["data"]))
        return out

    def _wait(self, condition: Any, what: str, timeout: float | None = None) -> None:
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        limit = timeout or self.page_timeout
        try:
            WebDriverWait(self.driver, limit, poll_frequency=0.1).until(condition)
        except TimeoutException as exc:
            body = ""
            with contextlib.suppress(Exception):
                body = self.driver.find_element("tag name", "body").text[:2000]
            raise AssertionError(f"timed out after {limit} s waiting for {what}; the page shows:\n{body}\n"
                                 f"console errors: {self.console_errors()}") from exc

    # -- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        try:
            with contextlib.suppress(Exception):
                self.driver.quit()
        finally:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def browser(ca_files: Sequence[str | Path] = ()) -> Iterator[Browser]:
    b = Browser(ca_files)
    try:
        yield b
    finally:
        b.close()
