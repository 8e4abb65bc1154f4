"""Event context and mute rules through a real hub, real nodes and the real CLI.

GeoIP and ASN databases are built by tests/geoip.py; nodes follow their own
auth log files, written here in syslog form; what the hub decided is read from
``secmon subscribe --json`` and ``secmon events --json``, which must agree.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from conftest import Daemon, secmon_argv, wait_until
from geoip import build_asn_db, build_city_db

from secmon.client import HubClient
from secmon.errors import RequestFailed
from secmon.hub.clients import MAX_ON_BEHALF

BERLIN = {"country": "DE", "country_name": "Germany", "city": "Berlin", "asn": 64496, "org": "Example <Net> & Co"}


def write_lines(path: Path, lines: list[str], host: str = "alpha") -> None:
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    with path.open("a") as f:
        f.write("".join(f"{stamp} {host} {line}\n" for line in lines))


def failed(user: str, source: str, pid: int = 70) -> str:
    return f"sshd[{pid}]: Failed password for {user} from {source} port 2201 ssh2"


def accepted(user: str, source: str, pid: int = 80) -> str:
    return f"sshd[{pid}]: Accepted publickey for {user} from {source} port 2202 ssh2"


@pytest.fixture
def geo_env(workdir: Path) -> dict[str, str]:
    city = build_city_db(
        workdir / "city.mmdb",
        {"192.0.2.0/24": ("DE", "Germany", "Berlin"), "2001:db8::/32": ("FR", "France", "Paris")},
    )
    asn = build_asn_db(workdir / "asn.mmdb", {"192.0.2.0/24": (64496, "Example <Net> & Co")})
    return {"GEOIP_CITY_DB": str(city), "GEOIP_ASN_DB": str(asn)}


class Subscriber:
    """``secmon subscribe --since 0 --json`` as a process (everything the hub's ring holds, then live);
    its updates, parsed."""

    def __init__(self, env: dict[str, str]) -> None:
        self.daemon = Daemon(secmon_argv("subscribe", "--since", "0", "--json"), env, "subscribe")

    def updates(self) -> list[dict]:
        return [json.loads(line) for line in list(self.daemon.lines) if line.startswith("{")]

    def auth(self) -> list[dict]:
        return [u for u in self.updates() if u["type"] == "auth"]

    def notices(self, kind: str | None = None) -> list[dict]:
        return [u for u in self.updates() if u["type"] == "notice" and kind in (None, u["kind"])]

    def wait_auth(self, count: int) -> list[dict]:
        wait_until(lambda: len(self.auth()) >= count, what=f"{count} auth updates")
        return self.auth()

    def stop(self) -> None:
        self.daemon.stop()


@pytest.fixture
def subscriber(cluster):
    subscribers: list[Subscriber] = []

    def start() -> Subscriber:
        sub = Subscriber(cluster.env)
        subscribers.append(sub)
        return sub

    yield start
    for sub in subscribers:
        sub.stop()


def start_node(cluster, workdir: Path, name: str) -> Path:
    log = workdir / f"{name}.log"
    log.write_text("")
    cluster.start_node("auth", "--reconnect", hostname=name, AUTH_LOG=str(log))
    cluster.wait_auth_ok(name)
    return log


def cli_events(cluster) -> list[dict]:
    result = cluster.cli("events", "--json", "--limit", "1000")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def client_call(socket: str, call):
    """Run ``call(client)`` on a HubClient connected to ``socket``; its result."""

    async def main():
        async with HubClient.connect(socket) as client:
            return await call(client)

    return anyio.run(main)


def test_geo_asn_and_first_seen_in_subscribe_and_events(cluster, workdir, geo_env, subscriber):
    cluster.start_hub(**geo_env)
    log = start_node(cluster, workdir, "alpha")
    sub = subscriber()
    write_lines(log, [failed("alice", "192.0.2.9")])
    sub.wait_auth(1)  # the subscription is live: what follows is seen
    write_lines(log, [accepted("alice", "192.0.2.9")])
    write_lines(log, [accepted("alice", "192.0.2.9"), accepted("alice", "2001:db8::7"), accepted("alice", "10.1.2.3"),
                      failed("bob", "203.0.113.5")])  # fmt: skip
    updates = sub.wait_auth(6)
    contexts = [u["context"] for u in updates]
    assert contexts[0] == {"source": BERLIN, "new": [], "after_failures": 0, "muted": [], "summarized": None}
    # the first login from the address is new (host, ASN, country), and came after a failure from it
    assert contexts[1]["new"] == ["host", "asn", "country"] and contexts[1]["after_failures"] == 1
    assert contexts[1]["source"] == BERLIN
    assert contexts[2]["new"] == []  # the second is not
    paris = {"country": "FR", "country_name": "France", "city": "Paris", "asn": None, "org": None}
    assert contexts[3] == {"source": paris, "new": ["host", "country"], "after_failures": 0, "muted": [],
                           "summarized": None}  # fmt: skip
    assert contexts[4] == {"source": None, "new": ["host"], "after_failures": 0, "muted": [], "summarized": None}
    assert contexts[5]["source"] is None and contexts[5]["new"] == []  # in neither database
    # the history keeps and returns exactly what was broadcast
    history = {e["seq"]: e for e in cli_events(cluster)}
    assert [history[u["seq"]]["context"] for u in updates] == contexts


def test_a_geoip_file_copied_over_in_place_is_read_again_and_the_hub_lives(cluster, workdir, subscriber):
    city = build_city_db(workdir / "city.mmdb", {"192.0.2.0/24": ("DE", "Germany", "Berlin")})
    hub = cluster.start_hub(GEOIP_CITY_DB=str(city))
    log = start_node(cluster, workdir, "alpha")
    sub = subscriber()
    write_lines(log, [failed("root", "192.0.2.1")])
    assert sub.wait_auth(1)[0]["context"]["source"]["country"] == "DE"
    fresh = build_city_db(workdir / "fresh.mmdb", {"192.0.2.0/24": ("FR", "France", "Paris")})
    with open(city, "r+b") as f:  # `cp fresh.mmdb city.mmdb`: truncate, then write; an event comes meanwhile
        f.truncate(0)
        write_lines(log, [failed("root", "192.0.2.2")])
        wait_until(lambda: len(sub.auth()) >= 2 or hub.process.poll() is not None, what="the event or the hub's end")
        f.write(fresh.read_bytes())
    assert hub.process.poll() is None, f"hub died with {hub.process.returncode}: " + "\n".join(hub.lines[-5:])
    assert sub.auth()[1]["context"]["source"]["country"] == "DE"  # the copy the hub holds
    countries = []

    def paris() -> bool:  # the new file is read at the next look at it (every few seconds)
        write_lines(log, [failed("root", f"192.0.2.{len(countries) + 3}")])
        wait_until(lambda: len(sub.auth()) >= len(countries) + 3, what="the next event")
        countries.append(sub.auth()[-1]["context"]["source"]["country"])
        return countries[-1] == "FR"

    wait_until(paris, timeout=20, what="the rewritten file in use")
    assert hub.process.poll() is None


def test_failures_from_one_source_over_three_nodes_give_one_summary(cluster, workdir, subscriber):
    cluster.start_hub(SECMON_FLEET_WINDOW="6")
    logs = [start_node(cluster, workdir, name) for name in ("web-1", "web-2", "web-3")]
    sub = subscriber()
    write_lines(logs[0], [failed("probe", "198.51.100.1")])
    sub.wait_auth(1)
    for n in range(30):
        write_lines(logs[n % 3], [failed(f"user{n % 5}", "192.0.2.66", pid=100 + n)], host=f"web-{n % 3 + 1}")
    updates = sub.wait_auth(31)[1:]
    assert len(updates) == 30
    [notice] = sub.notices("source_failing")
    summary = notice["source"]
    assert summary["source"] == "192.0.2.66" and summary["ended"] is False
    assert summary["failures"] >= 20 and summary["node_count"] == 3 and summary["user_count"] == 5
    summarized = [u for u in updates if u["context"]["summarized"] is not None]
    assert {u["context"]["summarized"] for u in summarized} == {notice["seq"]}
    # every failure from the crossing one on is covered, and the notice came before all of them
    assert len(summarized) == 30 - summary["failures"] + 1
    assert summarized == updates[-len(summarized) :]
    assert notice["seq"] < summarized[0]["seq"]
    # quiet for a whole window: one more notice, with the totals
    wait_until(lambda: len(sub.notices("source_failing")) == 2, timeout=20, what="the source to be quiet")
    ended = sub.notices("source_failing")[1]["source"]
    assert ended["ended"] is True and (ended["failures"], ended["node_count"], ended["user_count"]) == (30, 3, 5)


def test_a_mute_rule_marks_matching_events_until_it_expires(cluster, workdir, subscriber):
    hub = cluster.start_hub()
    log = start_node(cluster, workdir, "alpha")
    sub = subscriber()
    write_lines(log, [failed("probe", "198.51.100.1")])
    sub.wait_auth(1)
    rule = client_call(
        hub.socket, lambda c: c.add_mute(source="192.0.2.0/24", user="root", duration=4, reason="pen test")
    )
    assert (rule.id, rule.source, rule.user, rule.reason) == (1, "192.0.2.0/24", "root", "pen test")
    assert f"uid {os.getuid()}" in rule.by
    [added] = wait_until(lambda: sub.notices("mute_added"), what="the mute_added notice")
    assert added["mute"]["rule"]["id"] == 1 and added["mute"]["by"] == rule.by
    write_lines(log, [failed("root", "192.0.2.9"), failed("admin", "192.0.2.9"), failed("root", "198.51.100.3")])
    updates = sub.wait_auth(4)[1:]
    assert [u["context"]["muted"] for u in updates] == [[1], [], []]
    assert [r.id for r in client_call(hub.socket, lambda c: c.mutes())] == [1]
    [expired] = wait_until(lambda: sub.notices("mute_expired"), timeout=15, what="the rule to expire")
    assert expired["mute"]["rule"]["id"] == 1 and expired["mute"]["by"] == ""
    write_lines(log, [failed("root", "192.0.2.9")])
    assert sub.wait_auth(5)[-1]["context"]["muted"] == []
    assert client_call(hub.socket, lambda c: c.mutes()) == []
    history = {e["seq"]: e["context"]["muted"] for e in cli_events(cluster)}
    assert history[updates[0]["seq"]] == [1]


def test_mute_requests_refused_and_removed(cluster, subscriber):
    hub = cluster.start_hub()
    sub = subscriber()
    for fields, code, text in [
        ({}, "bad_query", "a mute rule needs at least one of source, user, node, kind"),
        ({"source": "not-a-network/8"}, "bad_query", "source: "),
        ({"kind": "nonsense"}, "bad_query", "kind: 'nonsense' is not a known event kind"),
        ({"user": "root", "duration": -1.0}, "bad_query", "duration: "),
    ]:
        with pytest.raises(RequestFailed, match=text) as caught:
            client_call(hub.socket, lambda c, fields=fields: c.add_mute(**fields))
        assert caught.value.code == code
    with pytest.raises(RequestFailed, match="no mute rule has id 7") as caught:
        client_call(hub.socket, lambda c: c.remove_mute(7))
    assert caught.value.code == "unknown_mute"
    rule = client_call(hub.socket, lambda c: c.add_mute(kind="ssh_invalid_user", on_behalf="telegram:42 @ops"))
    assert rule.by.startswith("telegram:42 @ops via ")
    assert client_call(hub.socket, lambda c: c.remove_mute(rule.id, on_behalf="http:ci")) == rule
    [removed] = wait_until(lambda: sub.notices("mute_removed"), what="the mute_removed notice")
    assert removed["mute"]["rule"]["id"] == rule.id and removed["mute"]["by"].startswith("http:ci via ")
    assert len(sub.notices("mute_added")) == 1


def test_a_long_on_behalf_is_cut_like_an_executes_in_rules_and_notices(cluster, subscriber):
    """A rule's ``by`` goes to mutes.json, every MuteRules answer and the notices: unbounded, a few such
    rules made every mute list and notice query bigger than a frame, for good."""
    hub = cluster.start_hub()
    sub = subscriber()
    who = "http:" + "x" * 1_000_000
    rule = client_call(hub.socket, lambda c: c.add_mute(user="root", on_behalf=who))
    assert rule.by.startswith(who[:MAX_ON_BEHALF] + " via ") and len(rule.by) < MAX_ON_BEHALF + 100
    assert client_call(hub.socket, lambda c: c.mutes()) == [rule]
    removed = client_call(hub.socket, lambda c: c.remove_mute(rule.id, on_behalf=who))
    assert removed == rule
    notices = wait_until(lambda: sub.notices("mute_removed") and sub.notices(), what="the mute notices")
    assert [len(n["mute"]["by"]) for n in notices] == [len(rule.by)] * 2


def test_rules_and_first_seen_survive_a_hub_restart(cluster, workdir, subscriber):
    hub = cluster.start_hub(SECMON_STATE_DIR=str(workdir / "state"))
    log = start_node(cluster, workdir, "alpha")
    write_lines(log, [accepted("carol", "192.0.2.50")])
    wait_until(lambda: len(cli_events(cluster)) == 1, what="the login in the history")
    assert cli_events(cluster)[0]["context"]["new"] == ["host"]
    client_call(hub.socket, lambda c: c.add_mute(user="dave"))
    second = client_call(hub.socket, lambda c: c.add_mute(user="erin"))
    client_call(hub.socket, lambda c: c.remove_mute(second.id))
    hub = cluster.restart_hub()
    assert [(r.id, r.user) for r in client_call(hub.socket, lambda c: c.mutes())] == [(1, "dave")]
    assert client_call(hub.socket, lambda c: c.add_mute(user="frank")).id == 3  # 2 is never used again
    cluster.wait_auth_ok("alpha")  # the node is back, following its log
    write_lines(log, [accepted("carol", "192.0.2.50"), failed("dave", "192.0.2.51")])
    wait_until(lambda: len(cli_events(cluster)) == 3, what="the new events in the history")
    events = cli_events(cluster)
    assert events[1]["context"]["new"] == []  # seen before the restart
    assert events[2]["context"]["muted"] == [1]


def test_a_bad_context_setting_stops_the_hub_with_one_line(cluster, workdir):
    (workdir / "garbage.mmdb").write_text("not a database " * 20)
    state = workdir / "state"
    state.mkdir(mode=0o700)
    rule = {"id": 1, "user": "root", "created": 1.0, "expires": "2030-01-01", "reason": "", "by": "x"}
    (state / "mutes.json").write_text(json.dumps({"next_id": 2, "rules": [rule]}))  # edited by hand
    for extra, line in [
        ({"GEOIP_ASN_DB": str(workdir / "none.mmdb")},
         f"GEOIP_ASN_DB: cannot read {workdir / 'none.mmdb'}: No such file or directory"),
        ({"GEOIP_CITY_DB": str(workdir / "garbage.mmdb")}, f"GEOIP_CITY_DB: cannot read {workdir / 'garbage.mmdb'}: "),
        ({"SECMON_FLEET_NODES": "many"}, "SECMON_FLEET_NODES must be an integer, got 'many'"),
        ({"SECMON_STATE_DIR": str(state)}, f"SECMON_STATE_DIR: cannot read the mute rules in {state / 'mutes.json'}: "
                                           "rules[0].expires: expected float or nil, got str"),
    ]:  # fmt: skip
        result = cluster.cli("hub", **extra)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"secmon: {line}") and result.stderr.count("\n") == 1, result.stderr
