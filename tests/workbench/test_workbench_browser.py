"""The acceptance of the workbench: `connector ui` on loopback, driven by a real headless
Chromium (the OS package, /usr/bin/chromium, through Playwright; no browser is downloaded).

The page loads with requests to the connector only (anything else is aborted and fails the
test), shows the aging chart with the totals of `connector aging --json`, accepting a proposal
in it changes `connector reconcile --json` as `connector reconcile accept` does, and a request
without the token answers 401. Under CI=true a missing Chromium fails the test instead of
skipping it. WORKBENCH_SCREENSHOT=PATH keeps a screenshot of the page there (docs/workbench.png).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from workbench.conftest import USER

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium"))
STARTUP = 60.0  # seconds `connector ui` gets to print its URL


def _need(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (CI=true: .ci/run installs it)")
    pytest.skip(what)


try:
    from playwright.sync_api import Route, sync_playwright

    PLAYWRIGHT = True
except ImportError:  # the test extra brings it
    PLAYWRIGHT = False


@pytest.fixture
def chromium() -> Path:
    if not PLAYWRIGHT:
        _need("Playwright is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        _need(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    return CHROMIUM


@pytest.fixture
def ui_url(book_copy) -> Iterator[tuple[str, Path]]:
    """`connector ui --listen 127.0.0.1:0` on a copy of the book: (URL with token, copy)."""
    copy = book_copy("page")
    connector = shutil.which("connector", path=str(Path(sys.executable).parent)) or "connector"
    env = {k: v for k, v in os.environ.items() if k not in ("CONNECTOR_UI_TOKEN", "CONNECTOR_CONFIG")}
    process = subprocess.Popen(
        [connector, "--config", str(copy / "connector.toml"), "ui", "--listen", "127.0.0.1:0", "--user", USER],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stderr is not None
    stderr = process.stderr

    def read() -> None:
        for line in stderr:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + STARTUP
    url = None
    seen = []
    try:
        while url is None and time.monotonic() < deadline and process.poll() is None:
            try:
                line = lines.get(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
            except queue.Empty:
                continue
            seen.append(line)
            found = re.search(r"(http://127\.0\.0\.1:\d+/\?token=\S+)", line)
            url = found.group(1) if found else None
        assert url is not None, f"`connector ui` printed no URL within {STARTUP:g} s: {''.join(seen)}"
        yield url, copy
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_the_workbench_in_a_real_browser(chromium, ui_url, book_copy, cli_on, json_on, tmp_path):
    url, copy = ui_url
    base = url.split("?")[0]
    twin = book_copy("cli")  # the same book, for `connector reconcile accept`
    aging = json_on(copy, "aging")
    before = json_on(copy, "reconcile")
    outside: list[str] = []

    def only_the_connector(route: Route) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            context.set_default_timeout(15_000)
            context.route("**/*", only_the_connector)
            page = context.new_page()
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(url)
            assert "token=" not in page.url  # the token became a cookie and left the address bar

            # the chart, with the totals of `aging --json`
            for total in aging["totals"]:
                currency = total["currency"]
                assert page.locator(f'svg.aging-chart[data-currency="{currency}"]').is_visible()
                table = page.locator(f'table.aging-totals[data-currency="{currency}"]')
                for bucket in [*aging["buckets"], "total"]:
                    assert table.locator(f'td[data-bucket="{bucket}"]').inner_text() == total[bucket]
            assert page.locator("svg.aging-chart rect[data-bucket]").count() > 0
            page.screenshot(path=str(tmp_path / "workbench.png"))
            if os.environ.get("WORKBENCH_SCREENSHOT"):
                page.screenshot(path=os.environ["WORKBENCH_SCREENSHOT"])

            # accept the first proposal in the page
            first = page.locator("article.proposal").first
            proposal = first.get_attribute("data-proposal")
            assert proposal
            with page.expect_navigation():
                first.get_by_role("button", name="Accept", exact=True).click()
            assert "applied" in page.locator(".note").inner_text()
            assert page.locator(f'article.proposal[data-proposal="{proposal}"]').count() == 0
        finally:
            browser.close()

    assert outside == []  # the page asked nothing of the internet
    assert requested and all(r.startswith(base) for r in requested)

    accepted = cli_on(twin, "reconcile", "accept", proposal, "--user", USER)
    assert accepted.exit_code == 0, accepted.stderr
    after = json_on(copy, "reconcile")
    assert after == json_on(twin, "reconcile") and after != before

    assert httpx.get(base, timeout=10).status_code == 401
    assert httpx.get(base + "?token=not-the-token", timeout=10).status_code == 401
