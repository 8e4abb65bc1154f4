"""The hub's event history through a real hub, node, CLI and HTTP bridge: same data, same answers."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from importlib import resources

import pytest
from conftest import Daemon, secmon_argv, wait_until
from jsonschema import Draft202012Validator

OPENAPI = json.loads((resources.files("secmon_http") / "openapi.json").read_text())

# (line, user, source, kind): what the node's parser makes of each line
LINES = [
    ("sshd[70]: Failed password for root from 192.0.2.9 port 2201 ssh2", "root", "192.0.2.9", "ssh_failed_password"),
    ("sshd[71]: Invalid user admin from 192.0.2.77 port 2202", "admin", "192.0.2.77", "ssh_invalid_user"),
    (
        "sshd[72]: Failed password for root from 2001:db8::5 port 2203 ssh2",
        "root",
        "2001:db8::5",
        "ssh_failed_password",
    ),
    (
        "sshd[73]: Accepted publickey for deploy from 198.51.100.4 port 2204 ssh2",
        "deploy",
        "198.51.100.4",
        "ssh_accepted",
    ),
    ("sshd[74]: Invalid user oracle from 2001:db8:1::9 port 2205", "oracle", "2001:db8:1::9", "ssh_invalid_user"),
    (
        "sshd[75]: Failed password for deploy from 192.0.2.9 port 2206 ssh2",
        "deploy",
        "192.0.2.9",
        "ssh_failed_password",
    ),
]


def write_lines(path, lines, host="alpha") -> None:
    """Syslog lines stamped now (the history's time filters read the events' own times), in one write."""
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    with path.open("a") as f:
        f.write("".join(f"{stamp} {host} {line}\n" for line in lines))


def http_get(bridge, path: str, **params) -> tuple[int, object]:
    query = urllib.parse.urlencode([(k, v) for k, values in params.items() for v in _list(values)])
    request = urllib.request.Request(f"{bridge.url}{path}?{query}", headers=bridge.auth)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _list(value) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def conforms(path: str, status: int, value) -> None:
    response = OPENAPI["paths"][path]["get"]["responses"][str(status)]
    schema = {**response["content"]["application/json"]["schema"], "components": OPENAPI["components"]}
    Draft202012Validator(schema).validate(value)


def cli_events(cluster, *args: str) -> list[dict]:
    result = cluster.cli("events", "--json", *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def history_fleet(cluster, hub, workdir):
    """A hub, a node following its auth log (alpha), a bridge; the LINES written and in the history."""
    (workdir / "auth.log").write_text("")
    cluster.start_node("auth", hostname="alpha")
    cluster.wait_auth_ok("alpha")
    bridge = cluster.start_http()
    write_lines(workdir / "auth.log", [line for line, *_ in LINES])
    wait_until(lambda: len(cli_events(cluster)) == len(LINES), what="the events in the history")
    return bridge


QUERIES = [
    ({}, []),
    ({"failures": "1"}, ["--failures"]),
    ({"user": "root"}, ["--user", "root"]),
    ({"source": "192.0.2.0/24"}, ["--source", "192.0.2.0/24"]),
    ({"source": "2001:db8::/32"}, ["--source", "2001:db8::/32"]),
    ({"source": "2001:db8::5"}, ["--source", "2001:db8::5"]),
    ({"node": "alpha", "kind": ["ssh_invalid_user", "ssh_accepted"]},
     ["--node", "alpha", "--kind", "ssh_invalid_user", "--kind", "ssh_accepted"]),
    ({"limit": "2"}, ["--limit", "2"]),
    ({"since": "1h"}, ["--since", "1h"]),
    ({"node": "nosuch"}, ["--node", "nosuch"]),
]  # fmt: skip


def test_the_cli_and_the_bridge_answer_every_query_alike(cluster, history_fleet):
    everything = cli_events(cluster)
    assert [(e["event"]["user"], e["event"]["host"], e["event"]["kind"]) for e in everything] == [
        (user, source, kind) for _, user, source, kind in LINES
    ]
    assert all(e["type"] == "auth" and e["hostname"] == "alpha" and e["serial"] == 1 for e in everything)
    assert [e["seq"] for e in everything] == sorted(e["seq"] for e in everything)
    for params, args in QUERIES:
        status, answer = http_get(history_fleet, "/events", **params)
        assert status == 200, answer
        conforms("/events", 200, answer)
        assert answer["events"] == cli_events(cluster, *args), params
    status, answer = http_get(history_fleet, "/events", source="192.0.2.0/24")
    assert [e["event"]["host"] for e in answer["events"]] == ["192.0.2.9", "192.0.2.77", "192.0.2.9"]
    status, answer = http_get(history_fleet, "/events", source="2001:db8::/32")
    assert [e["event"]["host"] for e in answer["events"]] == ["2001:db8::5", "2001:db8:1::9"]
    status, answer = http_get(history_fleet, "/events", limit=2)
    assert answer["more"] is True and answer["events"] == everything[-2:]
    assert answer["last_seq"] >= everything[-1]["seq"]


def test_counts_by_time_and_by_source_are_those_of_the_events(cluster, history_fleet):
    status, stats = http_get(history_fleet, "/events/stats", since="1h", bucket="5m")
    assert status == 200, stats
    conforms("/events/stats", 200, stats)
    [series] = stats["series"]
    assert series["key"] == "all" and len(series["points"]) in (12, 13)  # whole buckets from an hour ago to now
    totals = [sum(p[k] for p in series["points"]) for k in ("failures", "successes", "other")]
    assert totals == [5, 1, 0]
    assert sum(1 for p in series["points"] if p["failures"] + p["successes"] + p["other"] == 0) >= 11  # gaps as zeros
    status, stats = http_get(history_fleet, "/events/stats", by="source")
    conforms("/events/stats", 200, stats)
    top = stats["rows"][0]
    assert (top["key"], top["count"], top["failures"], top["nodes"], top["users"]) == ("192.0.2.9", 2, 2, 1, 2)
    assert {row["key"] for row in stats["rows"]} == {source for _, _, source, _ in LINES}
    status, stats = http_get(history_fleet, "/events/stats", by="user", limit=1)
    assert [(r["key"], r["count"]) for r in stats["rows"]] in ([("deploy", 2)], [("root", 2)])


@pytest.mark.parametrize(
    ("args", "params", "message"),
    [
        (["--since", "yesterday"], {"since": "yesterday"}, "since: 'yesterday' is neither an ISO 8601 time"),
        (["--until", "5x"], {"until": "5x"}, "until: '5x' is neither"),
        (["--source", "10.0.0.0/99"], {"source": "10.0.0.0/99"}, "source: '10.0.0.0/99' is not an IP address"),
        (["--limit", "0"], {"limit": "0"}, "limit: must be a whole number from 1 to 10000"),
        (["--limit", "²"], {"limit": "²"}, "limit: must be a whole number from 1 to 10000"),
        (["--since", "0001-01-01"], {"since": "0001-01-01"}, "since: '0001-01-01' is not a time from 1970-01-01"),
        (["--since", "²"], {"since": "²"}, "since: '²' is neither an ISO 8601 time"),
        (["--since", "9" * 30], {"since": "9" * 30}, "since: sequence 999999999999999999999999999999 is too large"),
        (["--since", "9" * 400 + "s"], {"since": "9" * 400 + "s"}, "is not a time from 1970-01-01 to 9998-12-31"),
        (["--since", "1h", "--until", "2h"], {"since": "1h", "until": "2h"}, "since: is later than until"),
        (["--node", "²"], {"node": "²"}, "node: '²' is not a serial"),
        (["--node", "9" * 23], {"node": "9" * 23}, "is not a serial (digits 0-9, at most 18)"),
    ],
)
def test_a_bad_parameter_is_one_line_naming_it(cluster, history_fleet, args, params, message):
    result = cluster.cli("events", *args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    status, answer = http_get(history_fleet, "/events", **params)
    assert status == 400 and message in answer["error"]
    conforms("/events", 400, answer)


def test_bad_stats_parameters_are_400(history_fleet):
    for params, message in [
        ({"by": "colour"}, "by: must be time or one of node, kind, source, user"),
        ({"bucket": "soon"}, "bucket: 'soon' is not a duration"),
        ({"group": "user"}, "group: must be node or kind"),
        ({"bucket": "1s", "since": "30d"}, "bucket: 1 s makes"),  # the hub's own check: too many buckets
        ({"failures": "maybe"}, "failures: must be 1/true or 0/false"),
        ({"bucket": "1e308"}, "bucket: must be whole seconds from 1 s to 366 days, got '1e308'"),
        ({"bucket": "1e308", "since": "99999999999999999d"}, "since: '99999999999999999d' is not a time"),
        ({"bucket": "1.5"}, "bucket: must be whole seconds"),
        ({"since": "9" * 400 + "s"}, "since: "),
        ({"since": "1h", "until": "2h"}, "since: is later than until"),
        ({"node": "9" * 23}, "node: "),
    ]:
        status, answer = http_get(history_fleet, "/events/stats", **params)
        assert status == 400 and message in answer["error"], (params, answer)
        conforms("/events/stats", 400, answer)


def test_the_human_form_is_one_line_per_event(cluster, history_fleet):
    result = cluster.cli("events", "--failures", "--limit", "2")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and "ssh_invalid_user oracle from 2001:db8:1::9" in lines[0]
    assert "alpha (127.0.0.1)" in lines[1] and "ssh_failed_password deploy from 192.0.2.9:2206" in lines[1]
    assert "older events match too" in result.stderr
    assert cluster.cli("events", "--help").stdout.startswith("usage: secmon events")
    assert "secmon events" in cluster.cli("help").stdout


def test_a_subscription_from_last_seq_misses_nothing_and_repeats_nothing(cluster, history_fleet, workdir):
    status, first = http_get(history_fleet, "/events")
    assert status == 200
    seen = {e["seq"]: e for e in first["events"]}
    assert len(seen) == len(LINES)
    subscriber = Daemon(secmon_argv("subscribe", "--since", str(first["last_seq"]), "--json"), cluster.env, "sub")
    cluster.daemons.append(subscriber)
    more = [f"sshd[8{i}]: Invalid user late{i} from 203.0.113.{i} port 30{i}" for i in range(5)]
    write_lines(workdir / "auth.log", more)
    arrived = [json.loads(subscriber.wait_for(rf'^\{{.*"user": "late{i}".*').group(0)) for i in range(5)]
    auth = [json.loads(line) for line in subscriber.lines if line.startswith("{") and '"type": "auth"' in line]
    assert [e["event"]["user"] for e in auth] == [f"late{i}" for i in range(5)]  # nothing from before, once each
    assert all(e["seq"] > first["last_seq"] for e in arrived)
    _status, after = http_get(history_fleet, "/events")
    assert [e["seq"] for e in after["events"]] == sorted([*seen, *(e["seq"] for e in arrived)])
    assert after["events"][-5:] == arrived  # what the history answers is what was broadcast


def test_the_history_outlives_a_hub_restart_with_a_state_dir(cluster, workdir):
    state = workdir / "state"
    cluster.start_hub(SECMON_STATE_DIR=str(state))
    (workdir / "auth.log").write_text("")
    cluster.start_node("auth", hostname="alpha")
    cluster.wait_auth_ok("alpha")
    write_lines(workdir / "auth.log", [line for line, *_ in LINES])
    wait_until(lambda: len(cli_events(cluster)) == len(LINES), what="the events in the history")
    before = cli_events(cluster)
    assert (state / "history.sqlite3").exists()
    cluster.restart_hub()
    assert cli_events(cluster) == before
    assert cli_events(cluster, "--since", str(before[2]["seq"])) == before[3:]
    assert cli_events(cluster, "--until", str(before[2]["seq"])) == before[:3]


def test_the_history_routes_need_the_token(history_fleet):
    for path in ("/events", "/events/stats"):
        request = urllib.request.Request(f"{history_fleet.url}{path}")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
        assert json.loads(refused.value.read()) == {"error": "missing or wrong token: send Authorization: Bearer TOKEN"}


def test_a_query_the_hub_refuses_leaves_the_connection_serving(cluster, history_fleet):
    """Queries no CLI or bridge sends (they check first) are answered one by one; the connection goes on."""
    import math

    import anyio

    from secmon.client import HubClient
    from secmon.errors import BadQuery, RequestFailed
    from secmon.protocol import messages as m

    bad = [
        (m.EventFilter(nodes=["²"]), "node: '²' is not a serial"),
        (m.EventFilter(nodes=["9" * 23]), "node: "),
        (m.EventFilter(since_time=math.nan), "since: must be a finite time"),
        (m.EventFilter(since_seq=2**63), "since: a sequence must be"),
        (m.EventFilter(since_time=2e9, until_time=1e9), "since: is later than until"),
    ]

    async def ask() -> tuple[list[str], list[str], int, int]:
        async with HubClient.connect(cluster.env["SECMON_SOCKET"]) as client:
            refusals = []
            for query, _ in bad:
                with pytest.raises(BadQuery) as caught:
                    await client.events(query)
                refusals.append(str(caught.value))
            with pytest.raises(BadQuery) as caught:
                await client.event_stats(m.EventFilter(since_time=-math.inf), bucket=1e308)
            refusals.append(str(caught.value))
            with pytest.raises(BadQuery) as caught:
                await client.event_stats(bucket=1.5)
            refusals.append(str(caught.value))
            # many at once: past the bound a query is told the connection is busy, not queued without end
            outcomes: list[str] = []

            async def one() -> None:
                try:
                    outcomes.append(f"{len((await client.events()).events)} events")
                except RequestFailed as exc:
                    outcomes.append(f"{exc.code}: {exc}")

            async with anyio.create_task_group() as tg:
                for _ in range(40):
                    tg.start_soon(one)
            after = await client.events()
            return refusals, outcomes, len(after.events), len(await client.list_nodes())

    refusals, outcomes, events, nodes = anyio.run(ask)
    assert [r.startswith(words) for r, (_, words) in zip(refusals, bad, strict=False)] == [True] * len(bad), refusals
    assert refusals[-2].startswith("since: must be a finite time") and refusals[-1].startswith(
        "bucket: must be a whole"
    )
    busy = "busy: more than 4 history queries in flight; ask when one is answered"
    assert set(outcomes) <= {f"{len(LINES)} events", busy} and len(outcomes) == 40, set(outcomes)
    assert outcomes.count(busy) >= 1 and outcomes.count(f"{len(LINES)} events") >= 4
    assert events == len(LINES) and nodes == 1  # the same connection, still served
