"""Hostile pages against the bridge, in a real headless Chromium (Debian's).

The operator has opened the dashboard through its printed URL, so the browser
holds the bridge's cookie: the worst case. A page served from another
loopback port (same site, other origin) then tries a no-cors POST that would
run a command, a WebSocket to the live feed, a read of the node list and an
iframe of the dashboard. A page whose name is rebound to 127.0.0.1 (the
browser's resolver maps it) tries to be the bridge's own origin. None of it
may work, and the command's marker file on the node must never appear.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import require_root_tools

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
REBOUND = "rebound.test"  # a name the attacker controls, answering with 127.0.0.1

ATTACK_PAGE = """<!doctype html><meta charset="utf-8"><title>cute cats</title><body><script>
window.results = {};
const target = "%(target)s";
fetch(target + "/n1/execute", {
  method: "POST", mode: "no-cors", credentials: "include",
  headers: {"Content-Type": "text/plain"}, body: JSON.stringify({label: "mark"}),
}).then(() => { results.post = "sent"; }, (e) => { results.post = "failed"; });
fetch(target + "/list", {credentials: "include"})
  .then((r) => r.text()).then((t) => { results.list = t; }, () => { results.list = "blocked"; });
const ws = new WebSocket(target.replace("http", "ws") + "/subscribe?since=0");
ws.onopen = () => { results.ws = "open"; };
ws.onmessage = (m) => { results.wsData = m.data; };
ws.onclose = () => { results.wsClosed = true; };
const frame = document.createElement("iframe");
frame.src = target + "/";
frame.onload = () => { results.frame = "loaded"; };
document.body.append(frame);
</script>"""


@pytest.fixture
def browser():
    require_root_tools(CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1"],
        )
        yield browser
        browser.close()


@pytest.fixture
def attacker_site() -> Iterator[ThreadingHTTPServer]:
    """Serves ATTACK_PAGE on a loopback port of its own; ``server.target`` is set by the test."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (ATTACK_PAGE % {"target": self.server.target}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_page_from_another_origin_gets_nothing_and_runs_nothing(cluster, hub, workdir, browser, attacker_site):
    marker = workdir / "ran"
    allow = cluster.allowlist(f"mark=touch {marker}\n")
    node = cluster.start_node("who", hostname="n1", COMMAND_ALLOWLIST_FILE=str(allow))
    http = cluster.start_http()
    context = browser.new_context()
    dashboard = context.new_page()
    dashboard.goto(http.dashboard_url)  # the operator's tab: the cookie is now in the browser
    dashboard.wait_for_selector("#nodes tbody tr >> text=n1")

    attacker_site.target = http.url
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{attacker_site.server_address[1]}/")
    page.wait_for_function("() => results.post && results.list && results.wsClosed && results.frame", timeout=15_000)
    results = page.evaluate("results")
    assert results["list"] == "blocked"  # no CORS grant: the page cannot read the fleet
    assert "ws" not in results and "wsData" not in results  # the upgrade was refused (403)
    framed = [f for f in page.frames if f != page.main_frame]
    assert framed and all(f.query_selector("#nodes") is None for f in framed)  # frame-ancestors 'none'
    assert http.count(r"refused POST /n1/execute") == 1
    assert http.count(r"refused GET /subscribe") >= 1
    # the command would have been the node's to run: it never saw a request
    assert not marker.exists()
    assert node.count(r"command .mark.") == 0
    context.close()


def test_a_rebound_name_is_not_the_bridge(cluster, hub, browser):
    cluster.start_node("who", hostname="n1")
    http = cluster.start_http()
    port = http.url.rsplit(":", 1)[1]
    page = browser.new_page()
    response = page.goto(f"http://{REBOUND}:{port}/list")
    assert response.status == 403
    assert "n1" not in page.content()
    response = page.goto(f"http://{REBOUND}:{port}/?token={http.token}")
    assert response.status == 403  # not even the token in the link makes the name the bridge's
    assert page.context.cookies() == []
