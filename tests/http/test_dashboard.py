"""The dashboard in a real headless Chromium (Debian's), driven by Playwright.

It must show the nodes, add a new auth event without a reload, and stream a
command's output into the page when its button is pressed.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from conftest import require_root_tools

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser_page():
    require_root_tools(CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 760})
        yield page
        browser.close()


def test_dashboard_without_its_token_asks_for_it(cluster, hub, browser_page):
    cluster.start_node("who", hostname="web-1")
    http = cluster.start_http()
    page = browser_page
    page.goto(http.url)
    page.wait_for_selector("#login:not([hidden])")
    assert page.locator("#nodes tbody tr").count() == 0
    page.fill("#token", "not-the-token")
    page.click("#login button")
    page.wait_for_selector("#login-message >> text=not this bridge's")
    page.fill("#token", http.token)
    page.click("#login button")
    page.wait_for_selector("#nodes tbody tr >> text=web-1")
    page.wait_for_selector("#link.on")
    assert page.locator("#login").is_hidden()


def test_dashboard_shows_nodes_live_events_and_command_output(cluster, hub, workdir, browser_page):
    log = workdir / "auth.log"
    log.write_text("")
    allow = cluster.allowlist("uptime=uptime\ngreet=sh -c 'echo hello from the node; echo second line'\n")
    cluster.start_node("who", "auth", hostname="web-1", COMMAND_ALLOWLIST_FILE=str(allow))
    cluster.start_node("who", hostname="db-1")
    cluster.wait_auth_ok("web-1")
    http = cluster.start_http()
    page = browser_page
    refused_by_policy: list[str] = []
    page.on("console", lambda m: "Content Security Policy" in m.text and refused_by_policy.append(m.text))
    page.goto(http.dashboard_url)  # the URL the bridge printed, token included
    assert page.url == http.url + "/"  # traded for the cookie: the token left the address bar
    page.wait_for_selector("#link.on")
    page.wait_for_selector("#nodes tbody tr >> text=web-1")
    assert page.locator("#nodes tbody tr").count() == 2
    assert page.locator("#nodes tbody tr >> text=connected").count() == 2

    now = datetime.now(UTC).isoformat(timespec="seconds")
    with log.open("a") as f:
        f.write(f"{now} web-1 sshd[7]: Failed password for <b>root</b> from 203.0.113.9 port 4242 ssh2\n")
        f.write(f"{now} web-1 sshd[8]: Accepted publickey for alice from 192.0.2.4 port 5151 ssh2\n")
    page.wait_for_selector("#events li.failure")
    failure = page.locator("#events li.failure").first.inner_text()
    assert "<b>root</b>" in failure and "203.0.113.9:4242" in failure  # markup shown as text
    page.wait_for_selector("#events li >> text=alice")
    assert page.locator("#events li").first.inner_text().count("alice") == 1  # newest first

    page.click("#nodes tbody tr >> text=web-1")
    page.click("#labels button >> text=greet")
    page.wait_for_selector("#output >> text=second line")
    output = page.locator("#output").inner_text()
    assert "hello from the node" in output and "[success (exit 0)]" in output
    assert refused_by_policy == []  # the page lives within its own Content-Security-Policy
