"""Event context on the hub, pure: GeoIP lookups, first seen, the fleet watch, mute rules, the judge.

GeoIP databases are built per test with tests/geoip.py; everything else is
plain function calls with the clock passed in.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from geoip import build_asn_db, build_city_db

from secmon.config import ContextSettings, HubSettings
from secmon.errors import ConfigError
from secmon.hub import geoip as geoip_module
from secmon.hub.context import EventJudge, build_judge
from secmon.hub.fleet import MAX_FAILURES_HELD, Crossing, FleetWatch
from secmon.hub.geoip import GeoIP, locatable
from secmon.hub.hub import Hub
from secmon.hub.mutes import MAX_MUTES, BadMute, MuteBook
from secmon.hub.seen import FirstSeen
from secmon.protocol import messages as m
from secmon.protocol.batches import EventOrigin

T0 = 1_764_000_000.0
NODE = ("3", "web-1", "10.0.0.3")  # as a mute rule sees the node
ORIGIN = EventOrigin(3, "web-1", "10.0.0.3")
TESTS = Path(__file__).resolve().parents[1]


def clock() -> float:  # the monotonic clock the judge reads for the GeoIP files' checks
    return 0.0


def event(kind: str = "ssh_failed_password", host: str | None = "192.0.2.7", user: str | None = "root",
          seq: int = 1) -> dict:  # fmt: skip
    raw = {"seq": seq, "time": T0, "kind": kind, "process": "sshd", "user": user, "host": host}
    return {k: v for k, v in raw.items() if v is not None}


@pytest.fixture
def dbs(tmp_path: Path) -> tuple[Path, Path]:
    city = build_city_db(
        tmp_path / "city.mmdb",
        {"192.0.2.0/24": ("DE", "Germany", "Berlin"), "2001:db8::/32": ("FR", "France", "Paris"),
         "198.51.100.0/24": ("NL", "Netherlands", "Amsterdam")},
    )  # fmt: skip
    asns = {"192.0.2.0/24": (64496, "Example <Net> & Co"), "2001:db8::/32": (64511, "Doc6")}
    asn = build_asn_db(tmp_path / "asn.mmdb", asns)
    return city, asn


# --- GeoIP -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "located"),
    [
        ("192.0.2.7", True),  # documentation ranges are located (not is_global)
        ("2001:db8::5", True),
        ("::ffff:192.0.2.7", True),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("127.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("169.254.1.1", False),
        ("100.64.0.1", False),
        ("example.org", False),
        ("", False),
    ],
)
def test_only_addresses_a_database_could_place_are_looked_up(host, located):
    assert (locatable(host) is not None) is located


def test_city_and_asn_of_an_address(dbs):
    geo = GeoIP(*dbs)
    assert geo.lookup("192.0.2.7", 0) == m.SourceContext("DE", "Germany", "Berlin", 64496, "Example <Net> & Co")
    assert geo.lookup("2001:db8::1", 0) == m.SourceContext("FR", "France", "Paris", 64511, "Doc6")
    assert geo.lookup("198.51.100.1", 0) == m.SourceContext("NL", "Netherlands", "Amsterdam")  # no ASN for it
    assert geo.lookup("203.0.113.9", 0) is None  # in neither
    assert geo.lookup("10.0.0.1", 0) is None
    assert geo.lookup("host.example", 0) is None


def test_either_database_alone(dbs):
    city, asn = dbs
    assert GeoIP(city, None).lookup("192.0.2.7", 0) == m.SourceContext("DE", "Germany", "Berlin")
    assert GeoIP(None, asn).lookup("192.0.2.7", 0) == m.SourceContext(asn=64496, org="Example <Net> & Co")


def test_the_cache_is_bounded(dbs, monkeypatch):
    monkeypatch.setattr(geoip_module, "CACHE_SIZE", 3)
    geo = GeoIP(*dbs)
    for last in range(10):
        geo.lookup(f"192.0.2.{last}", 0)
    assert list(geo._cache) == ["192.0.2.7", "192.0.2.8", "192.0.2.9"]


def test_a_changed_file_is_read_again_no_sooner_than_the_check_interval(dbs):
    city, asn = dbs
    geo = GeoIP(city, asn, now=100.0)
    assert geo.lookup("192.0.2.7", 100.0).city == "Berlin"
    build_city_db(city, {"192.0.2.0/24": ("AT", "Austria", "Vienna Test City")})
    os.utime(city, ns=(1, 1))  # a different mtime, whatever the file system's granularity
    assert geo.lookup("192.0.2.7", 100.0 + geoip_module.CHECK_EVERY / 2).city == "Berlin"  # cached, not looked at
    assert geo.lookup("192.0.2.7", 100.0 + geoip_module.CHECK_EVERY).city == "Vienna Test City"


def test_a_file_that_turns_unreadable_keeps_the_old_one(dbs):
    city, asn = dbs
    geo = GeoIP(city, asn, now=0.0)
    broken = city.with_name("broken")
    broken.write_bytes(b"not a database at all")
    broken.replace(city)  # as geoipupdate replaces a file: a new one renamed over it
    assert geo.lookup("192.0.2.7", geoip_module.CHECK_EVERY).city == "Berlin"


def test_a_file_that_cannot_be_read_is_said_once_per_change_not_at_every_look(dbs, caplog):
    city, asn = dbs
    geo = GeoIP(city, asn, now=0.0)
    city.write_bytes(b"not a database at all")
    for look in range(1, 6):
        assert geo.lookup(f"192.0.2.{look}", look * geoip_module.CHECK_EVERY).city == "Berlin"
    city.write_bytes(b"still not a database")
    os.utime(city, ns=(2, 2))
    geo.lookup("192.0.2.9", 10 * geoip_module.CHECK_EVERY)
    asn.unlink()
    geo.lookup("192.0.2.10", 11 * geoip_module.CHECK_EVERY)
    geo.lookup("192.0.2.11", 12 * geoip_module.CHECK_EVERY)
    said = [r.getMessage().split(":")[1] for r in caplog.records if "keeping the loaded" in r.getMessage()]
    assert said == [" keeping the loaded GEOIP_CITY_DB"] * 2 + [" keeping the loaded GEOIP_ASN_DB"]


def test_a_file_rewritten_in_place_never_kills_the_process(tmp_path):
    """``cp new.mmdb city.mmdb`` truncates, then writes: lookups meanwhile, and the re-read of the half
    file, go on from the copy the hub holds (a mapped file would end the process with SIGBUS)."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        from pathlib import Path
        from geoip import build_city_db
        from secmon.hub.geoip import CHECK_EVERY, GeoIP
        path = Path({str(tmp_path / "city.mmdb")!r})
        build_city_db(path, {{"192.0.2.0/24": ("DE", "Germany", "Berlin")}})
        geo = GeoIP(path, None, 0.0)
        print(geo.lookup("192.0.2.1", 0.0).city)
        with open(path, "r+b") as file:
            file.truncate(0)
            print(geo.lookup("192.0.2.2", 1.0).city)  # not cached, not looked at yet
            file.write(b"half a database")
            file.flush()
            print(geo.lookup("192.0.2.3", CHECK_EVERY).city)  # looked at: refused, the copy kept
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.split()) == (0, ["Berlin"] * 3), done.stderr[-2000:]


@pytest.mark.parametrize(
    ("content", "why"),
    [(None, "No such file or directory"), (b"garbage", "GEOIP_CITY_DB: cannot read")],
)
def test_an_unreadable_database_is_one_config_line(tmp_path, content, why):
    path = tmp_path / "city.mmdb"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=why) as caught:
        GeoIP(path, None)
    assert "\n" not in str(caught.value) and caught.value.variable == "GEOIP_CITY_DB"


def test_without_the_package_the_error_says_which_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "maxminddb", None)
    with pytest.raises(
        ConfigError, match=r"GEOIP_ASN_DB needs the maxminddb package: pip install 'secmon-core\[geoip\]'"
    ):
        GeoIP(None, tmp_path / "asn.mmdb")


# --- settings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"SECMON_FLEET_FAILURES": "x"}, "SECMON_FLEET_FAILURES must be an integer"),
        ({"SECMON_FLEET_FAILURES": "-1"}, "SECMON_FLEET_FAILURES must be between 0 and"),
        ({"SECMON_FLEET_NODES": "0"}, "SECMON_FLEET_NODES must be between 1 and"),
        ({"SECMON_FLEET_WINDOW": "0.5"}, "SECMON_FLEET_WINDOW must be at least 1 second"),
        ({"SECMON_FLEET_WINDOW": "inf"}, "SECMON_FLEET_WINDOW must be a finite number"),
        ({"SECMON_SEEN_MAX": "0"}, "SECMON_SEEN_MAX must be between 1 and"),
    ],
)
def test_malformed_context_settings_are_one_line(env, error):
    with pytest.raises(ConfigError, match=error):
        ContextSettings.from_env(env)


def test_context_settings_defaults_and_values():
    assert ContextSettings.from_env({}) == ContextSettings()
    env = {"GEOIP_CITY_DB": "/x/c.mmdb", "GEOIP_ASN_DB": " /x/a.mmdb ", "SECMON_FLEET_FAILURES": "0",
           "SECMON_FLEET_NODES": "2", "SECMON_FLEET_WINDOW": "30", "SECMON_SEEN_MAX": "5"}  # fmt: skip
    assert HubSettings.from_env(env).context == ContextSettings(Path("/x/c.mmdb"), Path("/x/a.mmdb"), 0, 2, 30.0, 5)


# --- first seen ---------------------------------------------------------------------


def test_first_seen_flags_each_pair_once():
    seen = FirstSeen(None)
    pairs = [("alice", "host", "192.0.2.7"), ("alice", "asn", "64496")]
    assert seen.mark(pairs, 1.0) == ["host", "asn"]
    assert seen.mark(pairs, 2.0) == []
    assert seen.mark([("alice", "host", "192.0.2.8"), ("alice", "asn", "64496")], 3.0) == ["host"]
    assert seen.mark([("bob", "host", "192.0.2.7")], 4.0) == ["host"]  # per user


def test_first_seen_forgets_the_least_recently_seen_past_its_bound(tmp_path):
    seen = FirstSeen(tmp_path, most=2)
    seen.mark([("a", "host", "1")], 1.0)
    seen.mark([("a", "host", "2")], 2.0)
    seen.mark([("a", "host", "1")], 3.0)  # seen again: now the most recent
    seen.mark([("a", "host", "3")], 4.0)  # "2" leaves
    assert len(seen) == 2
    seen.close()
    again = FirstSeen(tmp_path, most=2)
    assert again.mark([("a", "host", "1"), ("a", "host", "3")], 5.0) == []
    assert again.mark([("a", "host", "2")], 6.0) == ["host"]


def test_first_seen_survives_a_restart_and_a_smaller_bound(tmp_path):
    seen = FirstSeen(tmp_path)
    for n in range(5):
        seen.mark([("u", "host", str(n))], float(n))
    seen.close()
    smaller = FirstSeen(tmp_path, most=2)
    assert len(smaller) == 2
    assert smaller.mark([("u", "host", "4")], 9.0) == [] and smaller.mark([("u", "host", "0")], 9.0) == ["host"]


# --- the fleet watch ----------------------------------------------------------------


def test_a_source_becomes_failing_once_over_enough_nodes_and_is_then_summarized():
    fleet = FleetWatch(failures=5, nodes=3, window=60)
    outcomes = [fleet.failure("192.0.2.7", f"n{i % 2}", "root", T0 + i) for i in range(6)]
    assert outcomes == [None] * 6  # six failures, but only two nodes
    crossing = fleet.failure("192.0.2.7", "n2", "admin", T0 + 6)
    assert isinstance(crossing, Crossing)
    summary = crossing.failures
    assert (summary.source, summary.failures, summary.node_count, summary.user_count) == ("192.0.2.7", 7, 3, 2)
    assert (summary.first, summary.last, summary.nodes, summary.users, summary.ended) == (
        T0, T0 + 6, ["n0", "n1", "n2"], ["root", "admin"], False)  # fmt: skip
    fleet.summarize("192.0.2.7", 42)
    assert fleet.failure("192.0.2.7", "n3", "oracle", T0 + 7) == 42
    assert fleet.failures_before("192.0.2.7", T0 + 8) == 8
    assert fleet.ended(T0 + 7 + 59) == []  # not yet quiet for a whole window
    [ended] = fleet.ended(T0 + 7 + 61)
    assert (ended.failures, ended.node_count, ended.user_count, ended.ended) == (8, 4, 3, True)
    assert (ended.first, ended.last, ended.nodes) == (T0, T0 + 7, ["n0", "n1", "n2", "n3"])
    assert len(fleet) == 0 and fleet.failing == 0


def test_a_success_after_a_failing_source_counts_only_the_windows_failures():
    fleet = FleetWatch(failures=3, nodes=1, window=60)
    for n in range(3):
        outcome = fleet.failure("192.0.2.7", "n", "root", T0 + n * 20)
    assert isinstance(outcome, Crossing)
    fleet.summarize("192.0.2.7", 42)
    for n in range(3, 8):  # failing for 140 s, a failure every 20 s: three in any minute
        assert fleet.failure("192.0.2.7", "n", "root", T0 + n * 20) == 42
    assert fleet.failures_before("192.0.2.7", T0 + 150) == 3  # T0+100, +120, +140; not all eight
    [ended] = fleet.ended(T0 + 141 + 60)
    assert ended.failures == 8 and fleet.held == held_in_fact(fleet) == 0


def test_failures_outside_the_window_do_not_count():
    fleet = FleetWatch(failures=3, nodes=1, window=10)
    assert fleet.failure("h", "n", None, 0) is None
    assert fleet.failure("h", "n", None, 5) is None
    assert fleet.failure("h", "n", None, 11) is None  # the first one left the window
    assert fleet.failures_before("h", 12) == 2
    assert isinstance(fleet.failure("h", "n", None, 12), Crossing)


def test_the_watch_is_off_with_a_zero_threshold_and_bounded_in_sources():
    assert FleetWatch(failures=0).failure("h", "n", "u", 0) is None
    fleet = FleetWatch(failures=100, nodes=1, window=60, max_sources=3)
    for n in range(10):
        fleet.failure(f"192.0.2.{n}", "n", None, n)
    assert (
        len(fleet) == 3 and fleet.failures_before("192.0.2.9", 10) == 1 and fleet.failures_before("192.0.2.0", 10) == 0
    )


def held_in_fact(fleet: FleetWatch) -> int:
    return sum(len(source.held) + len(source.all_users) for source in fleet._sources.values())


def test_the_watch_holds_a_bounded_number_of_failures_per_source_and_in_all():
    """A source that never reaches enough nodes (a hub of two nodes) keeps failing within its window:
    it holds MAX_FAILURES_HELD of them; all sources together hold at most the watch's bound."""
    fleet = FleetWatch(failures=20, nodes=3, window=600)
    for n in range(MAX_FAILURES_HELD * 3):
        assert fleet.failure("192.0.2.1", "only-node", f"user{n % 50}", T0 + n * 0.01) is None
    assert fleet.held == held_in_fact(fleet) == MAX_FAILURES_HELD
    assert fleet.failures_before("192.0.2.1", T0 + 100) == MAX_FAILURES_HELD
    fleet = FleetWatch(failures=20, nodes=2, window=600, max_held=500)
    for n in range(3_000):  # 300 sources, 10 failures each, then some crossing and counting users
        fleet.failure(f"198.51.100.{n % 300}", f"n{n % 2}", f"u{n}", T0 + n * 0.01)
        if n % 700 == 0 and (crossing := fleet.failure("203.0.113.9", f"n{n % 2}", f"v{n}", T0 + n * 0.01)):
            fleet.summarize(crossing.source, 7)
        assert fleet.held == held_in_fact(fleet) <= 500


def test_a_threshold_above_what_a_source_holds_still_crosses():
    fleet = FleetWatch(failures=MAX_FAILURES_HELD * 2, nodes=2, window=600)
    outcomes = [fleet.failure("192.0.2.1", f"n{n % 2}", "root", T0 + n * 0.01) for n in range(MAX_FAILURES_HELD * 2)]
    assert outcomes[:-1] == [None] * (MAX_FAILURES_HELD * 2 - 1) and isinstance(outcomes[-1], Crossing)


# --- mute rules ---------------------------------------------------------------------


def add(book: MuteBook, now: float = T0, **fields) -> m.MuteRule:
    return book.add(m.AddMute(1, **fields), "alice (uid 1000)", now)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({}, "a mute rule needs at least one of source, user, node, kind"),
        ({"reason": "x"}, "a mute rule needs at least one of"),
        ({"source": "192.0.2.0/33"}, "source: '192.0.2.0/33' is not an IP address or CIDR network"),
        ({"source": "example.org"}, "source: "),
        ({"kind": "ssh_nonsense"}, "kind: 'ssh_nonsense' is not a known event kind"),
        ({"user": ""}, "user: must be 1 to"),
        ({"user": "root", "duration": 0.0}, "duration: must be more than 0 s and at most ten years"),
        ({"user": "root", "duration": 3_650 * 86_400.0 + 1}, "duration: must be more than 0 s and at most ten years"),
        ({"user": "root", "duration": float("inf")}, "duration: "),
        ({"user": "root", "duration": float("nan")}, "duration: "),
        ({"user": "root", "reason": "x" * 501}, "reason: at most 500 characters"),
        ({"user": "a\nb"}, "user: must not hold control characters"),
        ({"user": "root\t"}, "user: must not hold control characters"),
        ({"node": "web\x1b[2J"}, "node: must not hold control characters"),
        ({"node": "web\x7f"}, "node: must not hold control characters"),
        ({"user": "root\x9b"}, "user: must not hold control characters"),  # C1: a terminal's CSI
        ({"user": "root", "reason": "two\nlines"}, "reason: must not hold control characters"),
        ({"user": "root", "reason": "scanner\x1b]0;owned\x07"}, "reason: must not hold control characters"),
    ],
)
def test_a_bad_rule_is_refused_naming_its_field(fields, error):
    book = MuteBook(None)
    with pytest.raises(BadMute, match=error):
        add(book, **fields)
    assert not book and book.next_id == 1


@pytest.mark.parametrize(
    ("fields", "ev", "node", "muted"),
    [
        ({"source": "192.0.2.0/24"}, event(host="192.0.2.7"), NODE, True),
        ({"source": "192.0.2.0/24"}, event(host="198.51.100.7"), NODE, False),
        ({"source": "192.0.2.7"}, event(host="192.0.2.7"), NODE, True),
        ({"source": "192.0.2.7"}, event(host="::ffff:192.0.2.7"), NODE, True),
        ({"source": "2001:db8::/32"}, event(host="192.0.2.7"), NODE, False),
        ({"source": "192.0.2.0/24"}, event(host="scanner.example"), NODE, False),
        ({"source": "192.0.2.0/24"}, event(host=None), NODE, False),
        ({"user": "root"}, event(user="root"), NODE, True),
        ({"user": "root"}, event(user="Root"), NODE, False),
        ({"user": "root"}, event(user=None), NODE, False),
        ({"node": "3"}, event(), NODE, True),
        ({"node": "web-1"}, event(), NODE, True),
        ({"node": "10.0.0.3"}, event(), NODE, True),
        ({"node": "web"}, event(), NODE, False),
        ({"kind": "ssh_invalid_user"}, event(kind="ssh_invalid_user"), NODE, True),
        ({"kind": "ssh_invalid_user"}, event(), NODE, False),
        ({"source": "192.0.2.0/24", "user": "root"}, event(user="admin"), NODE, False),
        (
            {"source": "192.0.2.0/24", "user": "root", "node": "web-1", "kind": "ssh_failed_password"},
            event(),
            NODE,
            True,
        ),
    ],
)
def test_a_rule_matches_when_every_field_it_sets_matches(fields, ev, node, muted):
    book = MuteBook(None)
    rule = add(book, **fields)
    assert book.matching(ev, node, False, T0) == ([rule.id] if muted else [])


def test_an_ipv4_mapped_source_is_the_ipv4_network_it_names():
    book = MuteBook(None)
    rule = add(book, source="::ffff:192.0.2.0/120")
    assert rule.source == "192.0.2.0/24" and add(book, source="::ffff:192.0.2.9").source == "192.0.2.9"
    hits = [book.matching(event(host=host), NODE, False, T0) for host in ("192.0.2.9", "::ffff:192.0.2.9", "192.0.3.1")]
    assert hits == [[1, 2], [1, 2], []]


def test_a_success_new_for_its_user_is_muted_only_by_a_rule_naming_its_kind():
    book = MuteBook(None)
    by_source = add(book, source="192.0.2.0/24")
    by_kind = add(book, source="192.0.2.0/24", kind="ssh_accepted")
    accepted = event(kind="ssh_accepted")
    assert book.matching(accepted, NODE, True, T0) == [by_kind.id]
    assert book.matching(accepted, NODE, False, T0) == [by_source.id, by_kind.id]


def test_an_expired_rule_stops_matching_at_once_and_leaves_at_the_sweep():
    book = MuteBook(None)
    rule = add(book, user="root", duration=30)
    assert rule.expires == T0 + 30
    assert book.matching(event(), NODE, False, T0 + 29.9) == [rule.id]
    assert book.matching(event(), NODE, False, T0 + 30) == []
    assert book.expire(T0 + 29) == []
    assert book.expire(T0 + 30) == [rule] and book.rules() == []


def test_ids_are_never_used_twice_across_restarts(tmp_path):
    book = MuteBook(tmp_path)
    first = add(book, user="a", reason="maintenance <window>")
    second = add(book, source="192.0.2.1/32")
    assert second.source == "192.0.2.1"  # one address reads as one
    assert book.remove(second.id) == second and book.remove(second.id) is None
    again = MuteBook(tmp_path)
    assert again.rules() == [first]
    assert add(again, user="b").id == 3


def test_a_damaged_rules_file_is_one_config_line(tmp_path):
    (tmp_path / "mutes.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read the mute rules in") as caught:
        MuteBook(tmp_path)
    assert "\n" not in str(caught.value)


SAVED = {"id": 1, "source": None, "user": "root", "node": None, "kind": None, "created": T0, "expires": None,
         "reason": "", "by": "alice (uid 1000)"}  # fmt: skip


def saved(**fields) -> dict:
    return {"next_id": 2, "rules": [{**SAVED, **fields}]}


@pytest.mark.parametrize(
    ("book", "error"),
    [
        (saved(expires="2030-01-01"), "rules[0].expires: expected float or nil, got str"),
        (saved(expires=float("nan")), "rules[0].expires: must be a finite"),
        (saved(created=float("inf")), "rules[0].created: must be a finite"),
        (saved(expires=1e13), "rules[0].expires: must be a time from 1970-01-01 to 9998-12-31"),
        (saved(source=5), "rules[0].source: expected str or nil, got int"),
        (saved(source="192.0.2.0/33"), "rules[0].source: '192.0.2.0/33' is not"),
        (saved(user=7), "rules[0].user: expected str or nil, got int"),
        (saved(id="one"), "rules[0].id: expected int, got str"),
        (saved(id=2), "rules[0].id: 2 is not a new id below next_id 2"),
        ({"next_id": 3, "rules": [SAVED, SAVED]}, "rules[1].id: 1 is not a new id"),
        (saved(user=None), "rules[0].a mute rule needs at least one of"),
        (saved(kind="nonsense"), "rules[0].kind: 'nonsense' is not a known"),
        (saved(reason="x" * 501), "rules[0].reason: at most 500"),
        (saved(reason="one\ntwo"), "rules[0].reason: must not hold control characters"),
        (saved(user="a\x85b"), "rules[0].user: must not hold control characters"),
        (saved(by="x" * 5_000), "rules[0].by: at most 1000 characters"),
        (saved(colour="red"), "rules[0]: unknown field colour"),
        ({"next_id": 2, "rules": ["root"]}, "rules[0]: expected map (MuteRule), got str"),
        ({"next_id": "2", "rules": []}, "next_id: expected a whole number above 0, got '2'"),
        ({"next_id": True, "rules": []}, "next_id: expected a whole number above 0"),
        ({"next_id": 2}, "expected {"),
        ([], "expected {"),
    ],
)
def test_a_hand_edited_rules_file_the_hub_cannot_trust_is_one_config_line(tmp_path, book, error):
    """Checked at start as a MuteRule off the wire and as an AddMute: never a crash at the first sweep."""
    (tmp_path / "mutes.json").write_text(json.dumps(book))
    with pytest.raises(ConfigError, match="cannot read the mute rules in .*: " + re.escape(error)) as caught:
        MuteBook(tmp_path)
    assert "\n" not in str(caught.value)


def test_a_saved_book_that_passes_the_checks_loads_and_expires(tmp_path):
    saved = {"next_id": 5, "rules": [{**SAVED, "id": 4, "expires": T0 + 1, "created": 1}]}
    (tmp_path / "mutes.json").write_text(json.dumps(saved))
    book = MuteBook(tmp_path)
    [rule] = book.rules()
    assert (rule.id, rule.created, rule.expires) == (4, 1.0, T0 + 1)
    assert book.expire(T0 + 1) == [rule] and add(book, user="b").id == 5


def plainly_matching(book: MuteBook, ev: dict, node: tuple[str, str, str], new: bool, now: float) -> list[int]:
    """Every rule checked, the contract's words as code: what the book's index must agree with."""
    found = []
    for rule in book.rules():
        host = ev.get("host")
        try:
            address = ipaddress.ip_address(host) if host is not None else None
        except ValueError:
            address = None
        if address is not None and address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if rule.source is not None:
            network = ipaddress.ip_network(rule.source, strict=False)
            if network.version == 6 and network.subnet_of(ipaddress.ip_network("::ffff:0:0/96")):
                network = ipaddress.ip_network(f"{network.network_address.ipv4_mapped}/{network.prefixlen - 96}")
        if (
            (rule.expires is None or rule.expires > now)
            and (not new or rule.kind is not None)
            and rule.kind in (None, ev["kind"])
            and rule.user in (None, ev.get("user"))
            and rule.node in (None, *node)
            and (rule.source is None or (address is not None and address.version == network.version
                                         and address in network))
        ):  # fmt: skip
            found.append(rule.id)
    return found


def test_the_indexed_rules_match_exactly_what_checking_every_rule_matches():
    book = MuteBook(None)
    sources = [None, "192.0.2.0/24", "192.0.2.7", "192.0.0.0/16", "2001:db8::/32", "198.51.100.0/25", "0.0.0.0/0"]
    kinds, users = [None, "ssh_failed_password", "ssh_accepted"], [None, "root", "admin"]
    nodes = [None, "3", "web-1", "x"]
    for n, (source, kind, user, node) in enumerate(itertools.product(sources, kinds, users, nodes)):
        if source or kind or user or node:
            add(book, source=source, kind=kind, user=user, node=node, duration=None if n % 5 else 100.0)
    hosts = [None, "192.0.2.7", "192.0.2.200", "192.0.77.1", "::ffff:192.0.2.7", "2001:db8::1", "198.51.100.1",
             "198.51.100.200", "203.0.113.1", "scanner.example"]  # fmt: skip
    checked = 0
    for host, kind, user, node, new, now in itertools.product(
        hosts, ["ssh_failed_password", "ssh_accepted"], [None, "root", "admin", "guest"],
        [NODE, ("4", "db-1", "10.0.0.4")], [False, True], [T0, T0 + 200],
    ):  # fmt: skip
        ev = event(kind=kind, host=host, user=user)
        expected = plainly_matching(book, ev, node, new, now)
        assert book.matching(ev, node, new, now) == expected, (ev, node, new, now)
        checked += bool(expected)
    assert checked > 100  # the table is not all misses


def test_an_event_checks_only_the_rules_indexed_for_it_at_max_mutes():
    """A book of MAX_MUTES rules costs an event a few looks, not a walk through every rule."""
    book = MuteBook(None)
    for n in range(MAX_MUTES // 2):
        add(book, user=f"u{n}", source="192.0.2.0/24")
        add(book, source=f"10.{n // 250}.{n % 250}.0/24")
    ev = event(user="u7", host="10.0.7.9")
    assert book.matching(ev, NODE, False, T0) == [16]  # 15 is looked at (its user), but its source is not this one
    assert len(book._index.candidates(ev, NODE, ipaddress.ip_address("10.0.7.9"))) == 2


def test_a_hub_that_keeps_no_rules_says_so_to_every_mute_request():
    """A hub of a cluster keeps no rules yet: an empty list would read as "nothing muted", and
    "no rule has id 3" as a wrong id."""
    hub = Hub(HubSettings.from_env({"SECMON_SOCKET": "/nonexistent/hub.sock"}))
    requester = m.Requester(0, "root")
    for ask in (hub.mute_rules, lambda: hub.add_mute(m.AddMute(1, user="root"), requester),
                lambda: hub.remove_mute(m.RemoveMute(1, 3), requester)):  # fmt: skip
        with pytest.raises(BadMute, match=r"this hub keeps no mute rules \(a hub of a cluster does not yet\)"):
            ask()


def test_the_book_holds_at_most_max_mutes(monkeypatch):
    monkeypatch.setattr("secmon.hub.mutes.MAX_MUTES", 2)
    book = MuteBook(None)
    add(book, user="a")
    add(book, user="b")
    with pytest.raises(BadMute, match="at most 2 mute rules"):
        add(book, user="c")
    assert MAX_MUTES == 1_000


# --- the judge ----------------------------------------------------------------------


class Notices:
    """What the judge announced, numbered as the hub would."""

    def __init__(self) -> None:
        self.sent: list[m.SourceFailures] = []

    def __call__(self, failures: m.SourceFailures) -> int:
        self.sent.append(failures)
        return 1000 + len(self.sent)


def judge_of(geo: GeoIP | None = None, fleet: FleetWatch | None = None, mutes: MuteBook | None = None) -> EventJudge:
    return EventJudge(
        geo, FirstSeen(None), FleetWatch() if fleet is None else fleet, MuteBook(None) if mutes is None else mutes
    )


def test_with_nothing_configured_failures_have_no_context():
    judge, notices = judge_of(), Notices()
    events = [event(seq=n) for n in range(1, 6)] + [event("ssh_disconnected")]
    assert judge.judge(events, ORIGIN, T0, clock, notices) is None
    assert notices.sent == [] and judge.fleet.failures_before("192.0.2.7", T0) == 5


def test_first_login_from_an_address_is_new_the_second_not(dbs):
    judge = judge_of(GeoIP(*dbs))
    first = judge.judge([event("ssh_accepted", user="alice")], ORIGIN, T0, clock, Notices())
    source = m.SourceContext("DE", "Germany", "Berlin", 64496, "Example <Net> & Co")
    assert first == [m.EventContext(source, ["host", "asn", "country"])]
    assert judge.judge([event("ssh_accepted", user="alice")], ORIGIN, T0 + 1, clock, Notices()) == [
        m.EventContext(source)
    ]
    # another address of the same network: only the host is new
    [other] = judge.judge([event("ssh_accepted", host="192.0.2.99", user="alice")], ORIGIN, T0 + 2, clock, Notices())
    assert other.new == ["host"]


def test_without_geoip_a_first_login_is_new_by_host_only():
    judge = judge_of()
    assert judge.judge([event("ssh_accepted", user="bob")], ORIGIN, T0, clock, Notices()) == [
        m.EventContext(new=["host"])
    ]
    assert judge.judge([event("ssh_accepted", user="bob")], ORIGIN, T0, clock, Notices()) is None


def test_a_success_after_failures_says_how_many():
    judge = judge_of()
    events = [event(seq=n) for n in range(1, 4)] + [event("ssh_accepted", user="root", seq=4)]
    contexts = judge.judge(events, ORIGIN, T0, clock, Notices())
    assert contexts == [None, None, None, m.EventContext(new=["host"], after_failures=3)]


def test_the_failure_that_crosses_is_announced_first_and_every_failure_from_it_on_is_summarized(dbs):
    judge, notices = judge_of(GeoIP(*dbs), FleetWatch(failures=30, nodes=3, window=600)), Notices()
    source = m.SourceContext("DE", "Germany", "Berlin", 64496, "Example <Net> & Co")
    seen: list[m.EventContext | None] = []
    for n in range(30):  # ten per node, in reads of one
        node = EventOrigin(n % 3 + 1, f"web-{n % 3 + 1}", f"10.0.0.{n % 3 + 1}")
        seen += judge.judge([event(seq=n + 1, user=f"u{n % 4}")], node, T0 + n, clock, notices)
    [announced] = notices.sent
    assert (announced.failures, announced.node_count, announced.user_count, announced.context) == (30, 3, 4, source)
    assert [c.summarized for c in seen] == [0] * 29 + [1001]
    [later] = judge.judge([event(seq=99)], ORIGIN, T0 + 40, clock, notices)
    assert later.summarized == 1001 and len(notices.sent) == 1
    ended, expired = judge.housekeeping(T0 + 40 + 601, 0)
    assert [(e.failures, e.node_count, e.ended) for e in ended] == [(31, 3, True)] and expired == []


def test_a_crossing_within_one_read_without_other_context():
    judge, notices = judge_of(fleet=FleetWatch(failures=3, nodes=1, window=60)), Notices()
    contexts = judge.judge([event(seq=n) for n in range(1, 6)], ORIGIN, T0, clock, notices)
    assert contexts == [None, None, m.EventContext(summarized=1001), m.EventContext(summarized=1001),
                        m.EventContext(summarized=1001)]  # fmt: skip
    assert [n.failures for n in notices.sent] == [3]


def test_mutes_mark_matching_events_and_stop_at_expiry():
    mutes = MuteBook(None)
    rule = add(mutes, user="root", duration=10)
    judge = judge_of(mutes=mutes)
    assert judge.judge([event(), event(user="admin")], ORIGIN, T0 + 1, clock, Notices()) == [
        m.EventContext(muted=[rule.id]),
        None,
    ]
    assert judge.judge([event()], ORIGIN, T0 + 10, clock, Notices()) is None
    assert judge.housekeeping(T0 + 10, 0) == ([], [rule])


def test_build_judge_from_settings(dbs, tmp_path):
    city, _asn = dbs
    judge = build_judge(dataclasses.replace(ContextSettings(), geoip_city_db=city, fleet_failures=7), tmp_path, 0.0)
    assert judge.geoip is not None and judge.geoip.asn is None and judge.fleet.threshold == 7
    assert judge.seen.db is not None
    judge.close()
    assert build_judge(ContextSettings(), None, 0.0).geoip is None


# --- secmon check -------------------------------------------------------------------


def test_check_opens_the_geoip_databases_and_reads_the_mute_rules(tmp_path, dbs):
    from secmon.check import check_configuration

    city, asn = dbs
    env = {"SECMON_SOCKET": str(tmp_path / "hub.sock"), "GEOIP_CITY_DB": str(city), "GEOIP_ASN_DB": str(asn),
           "SECMON_STATE_DIR": str(tmp_path / "state")}  # fmt: skip
    assert check_configuration(env, ["hub"]) == []
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "mutes.json").write_text("[]")
    broken = {**env, "GEOIP_CITY_DB": str(tmp_path / "none.mmdb"), "GEOIP_ASN_DB": str(city.parent / "garbage")}
    (city.parent / "garbage").write_text("x" * 100)
    problems = check_configuration({**broken, "SECMON_FLEET_WINDOW": "0"}, ["hub"])
    assert problems[0].startswith("SECMON_FLEET_WINDOW must be at least 1 second")
    assert any(p.startswith("SECMON_STATE_DIR: cannot read the mute rules in") for p in problems)
    assert f"GEOIP_CITY_DB: cannot read {tmp_path / 'none.mmdb'}: No such file or directory" in problems
    assert any(p.startswith(f"GEOIP_ASN_DB: cannot read {city.parent / 'garbage'}") for p in problems)
    assert all("\n" not in p for p in problems) and len(problems) == 4


def test_the_usual_path_judges_as_the_general_one_in_an_attack():
    """The usual path (no GeoIP, no rules) gives failures a failing source summarizes their context
    itself; a mute rule that matches nothing sends every read down the general path instead, and
    the contexts (and notices) must be the same, read by read."""
    hosts = ["192.0.2.7", "198.51.100.4", None]
    kinds = ["ssh_failed_password", "ssh_accepted", "ssh_disconnected", "su_failed"]
    origins = [EventOrigin(n, f"web-{n}", f"10.0.0.{n}") for n in range(1, 4)]
    reads = []
    for n in range(200):  # a fixed, varied mix: every kind, source and node, reads of 1 to 4 events
        size = 1 + n % 4
        read = [event(kinds[(n * 7 + i) % 4] if n % 5 else "ssh_failed_password", hosts[(n + i) % 3],
                      f"u{(n + i) % 3}", seq=n * 4 + i) for i in range(size)]  # fmt: skip
        reads.append((origins[n % 3], read))
    usual, usual_notices = judge_of(fleet=FleetWatch(failures=5, nodes=2)), Notices()
    ruled = judge_of(fleet=FleetWatch(failures=5, nodes=2), mutes=MuteBook(None))
    ruled.mutes.add(m.AddMute(1, user="nobody-at-all"), "test", T0)
    ruled_notices = Notices()
    summarized = 0
    for step, (origin, read) in enumerate(reads):
        now = T0 + step
        expected = ruled.judge(read, origin, now, clock, ruled_notices)
        if expected is not None:
            expected = [None if c is None or c == m.EventContext() else c for c in expected]
            expected = None if not any(expected) else expected
        got = usual.judge(read, origin, now, clock, usual_notices)
        assert got == expected, (step, read)
        summarized += sum(1 for c in got or [] if c is not None and c.summarized)
    assert usual_notices.sent == ruled_notices.sent and usual_notices.sent  # a source did fail
    assert summarized > 0
