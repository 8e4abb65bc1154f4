"""The dashboard's notices, event context and mute rules, in a real headless Chromium (Debian's).

A real hub with small GeoIP databases (whose city and organisation names are
markup), real nodes writing auth logs, and the bridge. From the page the
operator adds a mute rule (its reason is markup too): the rule is listed, its
notice arrives live, a matching event is shown marked muted (not hidden), an
accepted login carries its new-source and after-failures flags and its place,
a node killed with SIGKILL gives a node-down notice live, and a page opened
afterwards shows the recent notices once each. Every hostile string is shown
as text: no element is made of it and no script runs.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime

import pytest
from conftest import require_root_tools

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"]
HOSTILE = "<img src=x onerror=alert(1)>"
ATTACKER = "203.0.113.5"  # fails a few times, then gets in
SCANNER = "198.51.100.7"  # muted from the page

# Asks the WebSocket for every update the hub holds (since=0) instead of those after the history the
# page loaded: notices then come both from /notices and from the socket, and must be shown once.
REPLAY_ALL = """
const RealSocket = window.WebSocket;
window.WebSocket = function (url) { return new RealSocket(url.replace(/since=\\d+/, "since=0")); };
"""


@pytest.fixture
def chromium():
    require_root_tools(CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def fleet(cluster, workdir):
    """A hub with GeoIP databases and NODE_DOWN_AFTER=1, web-1 following its auth log, db-1, a bridge."""
    from geoip import build_asn_db, build_city_db

    city = build_city_db(workdir / "city.mmdb", {"203.0.113.0/24": ("DE", f"Germany {HOSTILE}", f"Berlin {HOSTILE}")})
    asn = build_asn_db(workdir / "asn.mmdb", {"203.0.113.0/24": (64496, f"Example {HOSTILE} Networks")})
    cluster.start_hub(GEOIP_CITY_DB=str(city), GEOIP_ASN_DB=str(asn), NODE_DOWN_AFTER="1")
    log = workdir / "web-1.log"
    log.write_text("")
    cluster.start_node("who", "auth", hostname="web-1", AUTH_LOG=str(log))
    cluster.wait_auth_ok("web-1")
    db = cluster.start_node("who", hostname="db-1")
    http = cluster.start_http()
    http.log = log
    http.db = db
    return http


def open_page(chromium, http, init_script: str | None = None):
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.refused = []
    page.dialogs = []
    page.on("console", lambda m: "Content Security Policy" in m.text and page.refused.append(m.text))
    page.on("pageerror", lambda e: page.refused.append(f"script error: {e}"))
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    if init_script:
        page.add_init_script(init_script)
    page.goto(http.dashboard_url)
    page.wait_for_selector("#link.on")
    page.wait_for_selector("#notices-status:not(:empty)")
    return page


def append(http, *texts: str) -> None:
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    with http.log.open("a") as f:
        for i, text in enumerate(texts):
            f.write(f"{stamp} web-1 sshd[{7000 + i}]: {text}\n")


def notice_seqs(page) -> list[int]:
    return page.eval_on_selector_all("#notices li", "items => items.map(li => Number(li.dataset.seq))")


def assert_nothing_injected(page) -> None:
    assert page.evaluate("document.querySelectorAll('img').length") == 0  # no element was made of the markup
    assert page.dialogs == [] and page.refused == []


def test_notices_context_and_mutes_live_with_hostile_names_as_text(fleet, chromium):
    page = open_page(chromium, fleet)
    assert page.locator("#notices li").count() == 0
    assert page.locator("#mutes tbody tr").count() == 0 and page.is_visible("#no-mutes")

    # a rule from the page's form: listed, and its notice arrives live, by the bridge's token name
    page.fill("#mute-form input[name=source]", "198.51.100.0/24")
    page.fill("#mute-form input[name=for]", "2h")
    page.fill("#mute-form input[name=reason]", HOSTILE)
    page.click("#mute-form button[type=submit]")
    page.wait_for_selector("#mutes tbody tr")
    row = page.locator("#mutes tbody tr").first.inner_text()
    assert "198.51.100.0/24" in row and HOSTILE in row and "http:default via " in row
    page.wait_for_selector("#notices li[data-kind=mute_added]")
    added = page.locator("#notices li[data-kind=mute_added]").inner_text()
    assert "Mute rule added" in added and HOSTILE in added and "http:default" in added
    assert page.input_value("#mute-form input[name=reason]") == ""  # the form is ready for the next

    # events: one the rule mutes (shown, marked), failures from the attacker, then its login
    append(
        fleet,
        f"Failed password for root from {SCANNER} port 1 ssh2",
        *[f"Failed password for alice from {ATTACKER} port {10 + i} ssh2" for i in range(3)],
        f"Accepted password for alice from {ATTACKER} port 20 ssh2",
    )
    page.wait_for_selector("#events li >> text=SSH login accepted")
    muted = page.locator("#events li.muted-event")
    assert muted.count() == 1 and SCANNER in muted.inner_text() and "muted #" in muted.inner_text()
    login = page.locator("#events li").first
    text = login.inner_text()
    assert "SSH login accepted" in text
    assert "🆕 new host" in text and "⚠ after 3 failures" in text, text
    assert f"DE Berlin {HOSTILE}" in text and f"AS64496 Example {HOSTILE} Networks" in text
    assert page.locator("#events li:not(.muted-event)").count() == 4  # the rest are not marked
    assert_nothing_injected(page)

    # a node killed: its node-down notice arrives live, first and critical
    fleet.db.signal(signal.SIGKILL)
    page.wait_for_selector("#notices li[data-kind=node_down]", timeout=15_000)
    down = page.locator("#notices li").first
    assert down.get_attribute("data-kind") == "node_down" and "sev-critical" in down.get_attribute("class")
    assert "db-1" in down.inner_text() and "Node down" in down.inner_text()
    assert "critical" in page.inner_text("#notices-status")

    # the rule removed from the page: gone from the list, its notice arrives
    page.click("#mutes tbody tr button.remove")
    page.wait_for_selector("#notices li[data-kind=mute_removed]")
    page.wait_for_selector("#no-mutes:not([hidden])")
    assert page.locator("#mutes tbody tr").count() == 0
    seqs = notice_seqs(page)
    assert len(seqs) == len(set(seqs)) == 3 and seqs == sorted(seqs, reverse=True)
    assert_nothing_injected(page)

    # a page opened now shows the recent notices from /notices, and the replayed socket adds none twice
    again = open_page(chromium, fleet, REPLAY_ALL)
    again.wait_for_function("() => document.querySelectorAll('#notices li').length === 3")
    again.wait_for_selector("#events li >> text=SSH login accepted")
    assert notice_seqs(again) == seqs
    assert again.locator("#events li.muted-event").count() == 1  # from the history: still marked
    assert HOSTILE in again.locator("#notices li[data-kind=mute_added]").inner_text()
    assert_nothing_injected(again)


def test_a_refused_rule_says_why_in_the_form(fleet, chromium):
    page = open_page(chromium, fleet)
    page.fill("#mute-form input[name=source]", "not-an-address")
    page.click("#mute-form button[type=submit]")
    page.wait_for_selector("#mute-error:not(:empty)")
    assert "source" in page.inner_text("#mute-error")
    assert page.input_value("#mute-form input[name=source]") == "not-an-address"  # kept, to correct it
    page.fill("#mute-form input[name=source]", "")
    page.click("#mute-form button[type=submit]")
    page.wait_for_function("() => document.querySelector('#mute-error').textContent.includes('at least one of')")
    assert page.locator("#mutes tbody tr").count() == 0
    assert page.refused == []
