"""The dashboard over the hub's event history, in a real headless Chromium (Debian's).

Two real nodes write auth events into the hub's history before the page opens:
the page must show them (feed and charts), go on live from the sequence it
loaded without a gap or a duplicate, restrict feed and charts to the filters in
its address, fit a phone's width, and put a node that went silent first (and
its node-down notice). The hub has GeoIP databases and one source is muted, so
the feed shows each event's place and the muted ones marked.
With SECMON_SCREENSHOT=1 the desktop and phone tests refresh the pictures in
docs/ that the HTTP package's README shows.
"""

from __future__ import annotations

import json
import os
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import require_root_tools, wait_until

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parents[2] / "docs"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

# 500 events over the last 50 minutes, denser as the attack goes on: web-1 is attacked from three sources, db-1 from one
# (its 40 failures are what the node filter must leave), and alice logs in on both now and then.
WEB_SOURCES = ("203.0.113.7", "203.0.113.8", "198.51.100.23")
DB_SOURCE = "192.0.2.99"
ALICE_FROM = "192.0.2.4"
MUTED_SOURCE = WEB_SOURCES[2]  # a rule mutes it: its events show marked


def history_lines(now: datetime) -> dict[str, list[str]]:
    """The auth log lines of each node, oldest first: 500 in all."""
    lines: dict[str, list[tuple[datetime, str]]] = {"web-1": [], "db-1": []}
    for i in range(500):
        at = now - timedelta(seconds=3000 * (1 - i / 500) ** 1.8)
        stamp = at.isoformat(timespec="seconds")
        if i % 10 == 9:  # 50 accepted logins, alternating nodes
            host = "web-1" if i % 20 == 9 else "db-1"
            text = f"Accepted publickey for alice from {ALICE_FROM} port {40000 + i} ssh2"
        elif i % 10 == 4 and len([1 for _, t in lines["db-1"] if "Failed" in t]) < 40:
            host = "db-1"
            text = f"Failed password for postgres from {DB_SOURCE} port {30000 + i} ssh2"
        else:
            host = "web-1"
            user = ("root", "admin", "oracle")[i % 3]
            text = f"Failed password for {user} from {WEB_SOURCES[i % 3]} port {20000 + i} ssh2"
        lines[host].append((at, f"{stamp} {host} sshd[{1000 + i}]: {text}"))
    return {host: [text for _, text in sorted(entries)] for host, entries in lines.items()}


def get_json(http, path: str):
    request = urllib.request.Request(http.url + path, headers=http.auth)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def post_json(http, path: str, body) -> dict:
    headers = {**http.auth, "Content-Type": "application/json"}
    request = urllib.request.Request(http.url + path, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@pytest.fixture
def fleet(cluster, workdir):
    """web-1 and db-1 following their own auth logs, 500 events in the hub's history, a bridge.

    The hub has GeoIP databases for the sources (each event carries where it comes from), and
    one web source is muted before the history is written (its events are marked, not hidden).
    """
    from geoip import build_asn_db, build_city_db

    city = build_city_db(
        workdir / "city.mmdb",
        {"203.0.113.0/24": ("NL", "Netherlands", "Amsterdam"), "198.51.100.0/24": ("US", "United States", "Ashburn"),
         "192.0.2.0/24": ("DE", "Germany", "Berlin")},
    )  # fmt: skip
    asn = build_asn_db(
        workdir / "asn.mmdb",
        {"203.0.113.0/24": (64500, "Example Hosting"), "198.51.100.0/24": (64501, "Example Cloud"),
         "192.0.2.0/24": (64496, "Example Telecom")},
    )  # fmt: skip
    cluster.start_hub(GEOIP_CITY_DB=str(city), GEOIP_ASN_DB=str(asn), NODE_DOWN_AFTER="1")
    logs = {name: workdir / f"{name}.log" for name in ("web-1", "db-1")}
    nodes = {}
    for name, log in logs.items():
        log.write_text("")
        nodes[name] = cluster.start_node("who", "auth", hostname=name, AUTH_LOG=str(log))
        cluster.wait_auth_ok(name)
    http = cluster.start_http()
    post_json(http, "/mutes", {"source": MUTED_SOURCE, "reason": "the pen-test we ordered"})
    written = history_lines(datetime.now(UTC))
    for name, lines in written.items():
        with logs[name].open("a") as f:
            f.writelines(line + "\n" for line in lines)
    wait_until(
        lambda: len(get_json(http, "/events?limit=1000")["events"]) == 500, what="500 events in the hub's history"
    )
    http.logs = logs
    http.nodes = nodes
    http.written = written
    return http


@pytest.fixture
def chromium():
    require_root_tools(CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(chromium, http, path: str = "/", viewport=DESKTOP, scheme: str = "light"):
    """A signed-in page at ``path``, with the Content-Security-Policy complaints it logs."""
    page = chromium.new_page(viewport=viewport, color_scheme=scheme)
    page.refused = []
    page.on("console", lambda m: "Content Security Policy" in m.text and page.refused.append(m.text))
    page.on("pageerror", lambda e: page.refused.append(f"script error: {e}"))
    page.goto(http.dashboard_url)  # trades the token for the cookie, then lands on /
    if path != "/":
        page.goto(http.url + path)
    page.wait_for_selector("#link.on")
    return page


def charts_total(page) -> int:
    return int(page.get_attribute("#timeline", "data-total") or -1)


def feed_seqs(page) -> list[int]:
    return page.eval_on_selector_all("#events li", "items => items.map(li => Number(li.dataset.seq))")


def append(http, node: str, *texts: str) -> None:
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    with http.logs[node].open("a") as f:
        for i, text in enumerate(texts):
            f.write(f"{stamp} {node} sshd[{9000 + i}]: {text}\n")


def test_the_page_opens_on_the_history_and_its_charts_then_goes_on_live(fleet, chromium):
    page = open_page(chromium, fleet)
    page.wait_for_function("() => document.querySelectorAll('#events li').length === 500")
    page.wait_for_function("() => Number(document.querySelector('#timeline').dataset.total) === 500")
    loaded = feed_seqs(page)
    assert len(set(loaded)) == 500 and loaded == sorted(loaded, reverse=True)  # newest first, each once
    assert page.locator("#events li.failure").count() == 450
    muted = page.eval_on_selector_all("#events li.muted-event", "items => items.map(li => li.innerText)")
    assert muted and all(MUTED_SOURCE in text and "muted #1" in text for text in muted)
    assert page.locator("#events li >> text=NL Amsterdam · AS64500 Example Hosting").count() > 0
    assert page.locator("#notices li[data-kind=mute_added]").count() == 1
    assert "500 events" in page.inner_text("#feed-status")

    # the chart is drawn (uPlot's canvas), over a day's buckets, with its numbers as text too
    assert page.locator("#timeline canvas").count() >= 1
    assert int(page.get_attribute("#timeline", "data-points")) >= 90  # a day of 15-minute buckets
    assert int(page.get_attribute("#timeline", "data-series")) == 3
    assert "450 failures, 50 successes" in page.inner_text("#timeline-summary")
    page.click("#timeline-details summary")
    assert page.locator("#timeline-table tbody tr").count() >= 4  # the 50 minutes span 4 or 5 buckets of 15

    sources = page.locator("#top-sources tbody tr")
    assert sources.count() == 5
    top = sources.first.inner_text()
    assert any(source in top for source in WEB_SOURCES)
    assert DB_SOURCE in page.inner_text("#top-sources") and ALICE_FROM in page.inner_text("#top-sources")
    users = page.inner_text("#top-users")
    for user in ("root", "admin", "oracle", "postgres", "alice"):
        assert user in users

    # live: three new events, without a reload, each shown once, above the history
    page.evaluate("window.notReloaded = true")
    before = max(loaded)
    append(
        fleet,
        "web-1",
        "Failed password for <i>mallory</i> from 203.0.113.66 port 1 ssh2",
        "Invalid user zed from 203.0.113.66 port 2",
    )
    append(fleet, "db-1", f"Accepted publickey for alice from {ALICE_FROM} port 3 ssh2")
    page.wait_for_function(
        "before => [...document.querySelectorAll('#events li')].slice(0, 3).every(li => li.dataset.seq > before)",
        arg=before,
    )
    page.wait_for_function("() => Number(document.querySelector('#timeline').dataset.total) === 503")
    seqs = feed_seqs(page)
    assert len(seqs) == len(set(seqs)) == 500  # the feed keeps its bound, and no row twice
    assert seqs == sorted(seqs, reverse=True)
    assert page.locator("#events li >> text=<i>mallory</i>").count() == 1  # markup shown as text, once
    assert page.locator("#events li >> text=zed").count() == 1
    assert page.evaluate("window.notReloaded") is True
    page.wait_for_selector("#top-sources >> text=203.0.113.66")

    # another range, from the form: into the address, and the chart's buckets follow it
    page.click("#timeline-details summary")  # closed again, as an operator first sees it
    page.select_option("#filters select[name=range]", "1h")
    page.wait_for_function("() => Number(document.querySelector('#timeline').dataset.points) <= 62")
    assert "range=1h" in page.url
    assert int(page.get_attribute("#timeline", "data-points")) >= 60  # minutes
    assert charts_total(page) == 503
    if os.environ.get("SECMON_SCREENSHOT") == "1":
        page.screenshot(path=str(DOCS / "dashboard.png"), full_page=True)
        assert (DOCS / "dashboard.png").stat().st_size > 20_000

    # failures split by node: one series each
    page.check("#by-node")
    page.wait_for_function("() => document.querySelector('#timeline').dataset.series === '2'")
    assert "by=node" in page.url and "range=1h" in page.url
    assert charts_total(page) == 452
    summary = page.inner_text("#timeline-summary")
    assert "412 web-1" in summary and "40 db-1" in summary, summary
    assert page.refused == []  # the charting library lives within the page's Content-Security-Policy


def test_a_filter_in_the_address_restricts_feed_and_charts(fleet, chromium):
    page = open_page(chromium, fleet, "/?node=db-1&failures=1")
    page.wait_for_function("() => Number(document.querySelector('#timeline').dataset.total) === 40")
    assert page.locator("#events li").count() == 40
    rows = page.eval_on_selector_all("#events li", "items => items.map(li => [li.className, li.innerText])")
    assert all(cls == "failure" and "db-1" in text and DB_SOURCE in text for cls, text in rows)
    assert "40 failures, 0 successes" in page.inner_text("#timeline-summary")
    assert page.locator("#top-sources tbody tr").count() == 1
    assert page.locator("#top-users tbody tr").count() == 1 and "postgres" in page.inner_text("#top-users")
    assert page.input_value("#filters select[name=node]") == "db-1"
    assert page.is_checked("#filters input[name=failures]")

    # live events outside the filter stay out; one inside it comes in
    append(fleet, "web-1", "Failed password for root from 203.0.113.7 port 5 ssh2")
    append(fleet, "db-1", f"Accepted publickey for alice from {ALICE_FROM} port 6 ssh2")
    append(fleet, "db-1", f"Failed password for backup from {DB_SOURCE} port 7 ssh2")
    page.wait_for_selector("#events li >> text=backup")
    page.wait_for_function("() => Number(document.querySelector('#timeline').dataset.total) === 41")
    assert page.locator("#events li").count() == 41
    assert page.locator("#events li >> text=alice").count() == 0

    # a user filter from the form goes into the address; back and forward move between the views
    page.fill("#filters input[name=user]", "backup")
    page.press("#filters input[name=user]", "Enter")
    page.wait_for_function("() => document.querySelectorAll('#events li').length === 1")
    assert "user=backup" in page.url and "node=db-1" in page.url
    page.wait_for_function("() => Number(document.querySelector('#timeline').dataset.total) === 1")
    page.go_back()
    page.wait_for_function("() => document.querySelectorAll('#events li').length === 41")
    assert page.input_value("#filters input[name=user]") == ""
    page.click("#clear-filters")
    page.wait_for_function("() => Number(document.querySelector('#timeline').dataset.total) === 503")
    assert "node=" not in page.url
    assert page.refused == []


# Holds the page's WebSocket back until the test calls releaseSockets(), so events can reach the hub
# between the history the page loaded and its live feed; with ``replayAll`` set, it asks for every
# update the hub holds (since=0) instead of those after the history, to try the page's de-duplication.
GATED_SOCKET = """
const RealSocket = window.WebSocket;
const gate = new Promise((release) => { window.releaseSockets = release; });
window.socketUrls = [];
window.WebSocket = class {
  constructor(url) {
    window.socketUrls.push(url);
    this.closed = false;
    gate.then(() => {
      if (this.closed) return;
      const ws = (this.ws = new RealSocket(window.replayAll ? url.replace(/since=\\d+/, "since=0") : url));
      ws.onopen = (e) => this.onopen && this.onopen(e);
      ws.onmessage = (e) => this.onmessage && this.onmessage(e);
      ws.onclose = (e) => this.onclose && this.onclose(e);
    });
  }
  close() {
    this.closed = true;
    if (this.ws) this.ws.close();
  }
};
"""


@pytest.mark.parametrize("replay_all", [False, True], ids=["resume", "replay-everything"])
def test_events_written_while_the_page_loads_arrive_once(fleet, chromium, replay_all):
    page = chromium.new_page(viewport=DESKTOP)
    page.add_init_script(GATED_SOCKET)
    page.goto(fleet.dashboard_url)
    page.wait_for_function("() => document.querySelectorAll('#events li').length === 500")
    page.wait_for_function("() => window.socketUrls.length === 1")
    loaded = feed_seqs(page)
    since = int(page.evaluate("window.socketUrls[0]").rsplit("since=", 1)[1])
    assert since >= max(loaded)  # the live feed resumes after the history it loaded

    # three events reach the hub after the history was read and before the page follows it live
    append(fleet, "web-1", *[f"Failed password for late{i} from 203.0.113.77 port {i} ssh2" for i in range(3)])
    wait_until(lambda: len(get_json(fleet, "/events?user=late2")["events"]) == 1, what="the late events in history")
    assert page.locator("#events li >> text=late").count() == 0
    page.evaluate(f"window.replayAll = {'true' if replay_all else 'false'}; window.releaseSockets()")
    page.wait_for_selector("#link.on")
    page.wait_for_function("() => document.querySelectorAll('#events li')[2]?.innerText.includes('late')")
    seqs = feed_seqs(page)
    assert len(seqs) == len(set(seqs)) == 500 and seqs == sorted(seqs, reverse=True)
    for i in range(3):
        assert page.locator(f"#events li >> text=late{i}").count() == 1
    assert seqs[3:] == loaded[:497]  # the history rows stay, once each, below the late ones


def test_a_bad_filter_says_what_is_wrong(fleet, chromium):
    page = chromium.new_page(viewport=DESKTOP)
    page.goto(fleet.dashboard_url)
    page.goto(fleet.url + "/?source=203.0.113.0/99")  # no such network
    page.wait_for_selector("#filter-error:not(:empty)")
    assert "source" in page.inner_text("#filter-error")
    assert page.locator("#events li").count() == 0


def test_on_a_phone_nothing_scrolls_sideways_and_a_silent_node_comes_first(fleet, chromium):
    fleet.nodes["db-1"].stop()  # db-1 goes silent: the hub marks it disconnected
    page = open_page(chromium, fleet, "/?range=1h", viewport=PHONE, scheme="dark")
    page.wait_for_function("() => document.querySelectorAll('#events li').length === 500")
    page.wait_for_function("() => Number(document.querySelector('#timeline').dataset.total) === 500")
    page.wait_for_selector("#nodes tbody tr.row-down")
    first = page.locator("#nodes tbody tr").first
    assert "db-1" in first.inner_text() and "disconnected" in first.inner_text().lower()
    assert "db-1" in page.inner_text("#alerts") and "down" in page.inner_text("#alerts")
    assert "web-1" not in page.inner_text("#alerts")
    page.wait_for_selector("#notices li.sev-critical[data-kind=node_down] >> text=db-1")  # NODE_DOWN_AFTER=1
    width = page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
    assert width[0] <= width[1], width
    assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") == "rgb(20, 24, 29)"  # dark

    # every control is reached from the keyboard, and shows where the focus is
    reached = set()
    while "events" not in reached and len(reached) < 60:
        page.keyboard.press("Tab")
        focus = page.evaluate(
            "() => { const e = document.activeElement;"
            " return [e.name || e.id || e.textContent.trim().slice(0, 20), getComputedStyle(e).outlineStyle]; }"
        )
        assert focus[0] not in reached and focus[1] != "none", focus
        reached.add(focus[0])
    assert {"range", "node", "kind", "user", "source", "failures", "by-node", "events"} <= reached
    assert page.refused == []

    if os.environ.get("SECMON_SCREENSHOT") == "1":
        page.evaluate("document.activeElement.blur()")
        page.screenshot(path=str(DOCS / "dashboard-phone.png"), full_page=True)
        assert (DOCS / "dashboard-phone.png").stat().st_size > 20_000


def test_streaming_events_move_nothing_on_the_page(fleet, chromium):
    page = open_page(chromium, fleet)
    page.wait_for_function("() => Number(document.querySelector('#timeline').dataset.total) === 500")
    boxes = (
        "() => ['#nodes-section', '#timeline', '#top-sources', '#events']"
        ".map(s => JSON.stringify(document.querySelector(s).getBoundingClientRect()))"
    )
    page.evaluate("document.querySelector('#events').scrollIntoView()")
    before = page.evaluate(boxes)
    # a reader scrolled down the feed: the row they look at stays where it is
    reading = (
        "() => { const list = document.querySelector('#events'); const box = list.getBoundingClientRect();"
        " return document.elementFromPoint(box.left + 40, box.top + 20).closest('li').dataset.seq; }"
    )
    page.evaluate("document.querySelector('#events').scrollTop = 400")
    looked_at = page.evaluate(reading)
    append(fleet, "web-1", *[f"Failed password for root from 203.0.113.7 port {i} ssh2" for i in range(20)])
    page.wait_for_function("() => Number(document.querySelector('#timeline').dataset.total) === 520")
    page.wait_for_function("() => document.querySelectorAll('#events li')[0].innerText.includes(':19 ')")
    assert page.evaluate(boxes) == before
    assert page.evaluate(reading) == looked_at
