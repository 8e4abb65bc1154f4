"""Mute rules, the command audit and notices through the HTTP bridge, against a real hub and nodes.

The bridge acts in the name of the token a request carries: the hub's audit and
its mute rules must say ``http:NAME``, whatever route changed them, and the
hub's faults keep their statuses (bad_query 400, unknown_mute 404, no hub 503).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from datetime import UTC, datetime
from importlib import resources

import aiohttp
import anyio
import pytest
from jsonschema import Draft202012Validator

from secmon.client import HubClient

pytestmark = pytest.mark.anyio

OPENAPI = json.loads((resources.files("secmon_http") / "openapi.json").read_text())
HOSTILE = "<img src=x onerror=alert(1)>"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def anyio_backend():
    return "asyncio"


def conforms_to_response(path: str, method: str, status: int, value) -> None:
    response = OPENAPI["paths"][path][method]["responses"][str(status)]
    schema = {**response["content"]["application/json"]["schema"], "components": OPENAPI["components"]}
    Draft202012Validator(schema).validate(value)


def conforms(schema_name: str, value) -> None:
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": OPENAPI["components"]}
    Draft202012Validator(schema).validate(value)


@pytest.fixture
def named(cluster, hub, workdir):
    """A bridge with two named tokens, alice's and the deploy script's; ``.as_`` gives each one's header."""
    names = {"alice": secrets.token_urlsafe(24), "ci.deploy": secrets.token_urlsafe(24)}
    token_file = workdir / "http-tokens"
    token_file.write_text("# people and scripts\n" + "".join(f"{n} {t}\n" for n, t in names.items()))
    token_file.chmod(0o600)
    http = cluster.start_http(HTTP_TOKEN_FILE=str(token_file))
    assert http.token == names["alice"]  # the printed URL carries the file's first token
    http.wait_for(r"token 'alice' of the 2 in ")
    http.as_ = {name: {"Authorization": f"Bearer {token}"} for name, token in names.items()}
    return http


async def call(session, method, url, body=None, headers=None):
    data = None if body is None else body if isinstance(body, (bytes, str)) else json.dumps(body)
    extra = JSON if data is not None else {}
    async with session.request(method, url, data=data, headers={**extra, **(headers or {})}) as response:
        return response.status, await response.json()


async def test_mute_rules_are_added_listed_and_removed_in_the_name_of_each_token(named, hub):
    async with aiohttp.ClientSession() as s:
        rule = {"source": "203.0.113.0/24", "kind": "ssh_failed_password", "for": "2h", "reason": HOSTILE}
        status, added = await call(s, "POST", f"{named.url}/mutes", rule, named.as_["alice"])
        assert status == 201, added
        conforms_to_response("/mutes", "post", 201, added)
        assert (added["source"], added["kind"], added["reason"]) == ("203.0.113.0/24", "ssh_failed_password", HOSTILE)
        assert added["by"].startswith("http:alice via ")
        lasts = datetime.fromisoformat(added["expires"]) - datetime.fromisoformat(added["created"])
        assert lasts.total_seconds() == pytest.approx(7200, abs=1)

        status, second = await call(s, "POST", f"{named.url}/mutes", {"user": "backup"}, named.as_["ci.deploy"])
        assert status == 201 and second["id"] > added["id"] and second["expires"] is None
        status, rules = await call(s, "GET", f"{named.url}/mutes", headers=named.as_["ci.deploy"])
        assert status == 200 and [r["id"] for r in rules] == [added["id"], second["id"]]
        conforms_to_response("/mutes", "get", 200, rules)

        status, removed = await call(s, "DELETE", f"{named.url}/mutes/{added['id']}", headers=named.as_["ci.deploy"])
        assert status == 200 and removed["id"] == added["id"]
        conforms_to_response("/mutes/{id}", "delete", 200, removed)
        status, rules = await call(s, "GET", f"{named.url}/mutes", headers=named.as_["alice"])
        assert [r["id"] for r in rules] == [second["id"]]

        status, gone = await call(s, "DELETE", f"{named.url}/mutes/{added['id']}", headers=named.as_["alice"])
        assert status == 404, gone
        conforms_to_response("/mutes/{id}", "delete", 404, gone)

        # every change is a notice naming who made it
        status, answer = await call(s, "GET", f"{named.url}/notices", headers=named.as_["alice"])
        assert status == 200
        conforms_to_response("/notices", "get", 200, answer)
        changes = [(n["kind"], n["mute"]["rule"]["id"], n["mute"]["by"]) for n in answer["notices"] if n["mute"]]
        assert [(kind, rule_id) for kind, rule_id, _ in changes] == [
            ("mute_added", added["id"]),
            ("mute_added", second["id"]),
            ("mute_removed", added["id"]),
        ]
        assert [by.split(" via ")[0] for _, _, by in changes] == ["http:alice", "http:ci.deploy", "http:ci.deploy"]
        assert answer["last_seq"] >= max(n["seq"] for n in answer["notices"])
    async with HubClient.connect(hub.socket) as client:  # the hub itself holds the names
        [kept] = await client.mutes()
        assert kept.by.startswith("http:ci.deploy via ")


BAD_MUTES = [
    ({}, 400, "at least one of"),
    ({"source": "not-an-address"}, 400, "source"),
    ({"source": "203.0.113.0/99"}, 400, "source"),
    ({"kind": "nosuch_kind"}, 400, "kind"),
    ({"user": "root", "reason": "x" * 501}, 400, "reason"),
    ({"user": "root", "for": "soon"}, 400, "for: 'soon' is not a duration"),
    ({"user": "root", "for": 0}, 400, "for: '0': a duration must be more than 0"),
    ({"user": "root", "for": "99999d"}, 400, "for: '99999d': a duration must be more than 0 and at most 3650d"),
    ({"user": 5}, 400, "user: must be a string or null"),
    ({"user": "root", "by": "someone else"}, 400, "unknown field 'by'"),
    (["user", "root"], 400, "body must be a JSON object"),
    (b"{not json", 400, "body must be JSON"),
]


async def test_a_rule_that_does_not_read_is_400_naming_the_field(named):
    async with aiohttp.ClientSession(headers=named.as_["alice"]) as s:
        for body, expected, words in BAD_MUTES:
            status, answer = await call(s, "POST", f"{named.url}/mutes", body)
            assert status == expected and words in answer["error"], (body, status, answer)
            conforms_to_response("/mutes", "post", 400, answer)
        for rule_id in ("0", "abc", "-1", "1.5", "9" * 30):
            status, answer = await call(s, "DELETE", f"{named.url}/mutes/{rule_id}")
            assert status == 400 and "id: " in answer["error"], (rule_id, answer)
        status, answer = await call(s, "DELETE", f"{named.url}/mutes/424242")
        assert status == 404 and "424242" in answer["error"], answer
        status, rules = await call(s, "GET", f"{named.url}/mutes")
        assert (status, rules) == (200, [])  # nothing refused was kept


async def test_changing_rules_obeys_the_guard_like_running_commands(named):
    async with aiohttp.ClientSession() as s:
        url = f"{named.url}/mutes"
        body = json.dumps({"source": "192.0.2.0/24"})
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            assert (await call(s, "POST", url, body, headers))[0] == 401
            assert (await call(s, "GET", url, headers=headers))[0] == 401
            assert (await call(s, "DELETE", f"{url}/1", headers=headers))[0] == 401
        alice = named.as_["alice"]
        plain = {**alice, "Content-Type": "text/plain;charset=UTF-8"}
        async with s.post(url, data=body, headers=plain) as refused:
            assert refused.status == 415
        foreign = {**alice, "Origin": "http://evil.example"}
        assert (await call(s, "POST", url, body, foreign))[0] == 403
        assert (await call(s, "DELETE", f"{url}/1", headers=foreign))[0] == 403
        assert (await call(s, "GET", url, headers={**alice, "Host": "evil.example"}))[0] == 403
        status, rules = await call(s, "GET", url, headers=alice)
        assert (status, rules) == (200, [])
        own = {**alice, "Origin": named.url}
        assert (await call(s, "POST", url, body, own))[0] == 201


async def test_the_audit_names_the_token_that_ran_each_command(cluster, named, hub):
    allow = cluster.allowlist("hi=echo hello\n")
    cluster.start_node("who", hostname="alpha", COMMAND_ALLOWLIST_FILE=str(allow))
    async with aiohttp.ClientSession() as s:
        status, result = await call(s, "POST", f"{named.url}/alpha/execute", {"label": "hi"}, named.as_["ci.deploy"])
        assert status == 200 and result["output"] == "hello\n"
        status, _ = await call(s, "POST", f"{named.url}/nosuch/execute", {"label": "hi"}, named.as_["alice"])
        assert status == 404

        status, answer = await call(s, "GET", f"{named.url}/audit", headers=named.as_["alice"])
        assert status == 200, answer
        conforms_to_response("/audit", "get", 200, answer)
        ran, refused = answer["records"]
        assert (ran["label"], ran["target"], ran["requester"]["on_behalf"]) == ("hi", "alpha", "http:ci.deploy")
        assert [(o["hostname"], o["status"], o["exit_code"]) for o in ran["outcomes"]] == [("alpha", "success", 0)]
        assert ran["finished"] is not None
        assert (refused["target"], refused["requester"]["on_behalf"]) == ("nosuch", "http:alice")
        assert refused["outcomes"] == [] and refused["finished"] is not None  # ran nowhere

        status, latest = await call(s, "GET", f"{named.url}/audit?limit=1", headers=named.as_["alice"])
        assert status == 200 and latest["more"] is True and [r["id"] for r in latest["records"]] == [refused["id"]]
        status, none = await call(s, "GET", f"{named.url}/audit?since=2999-01-01T00:00:00Z", headers=named.as_["alice"])
        assert (status, none) == (200, {"records": [], "more": False})

        # the command_run notices carry the same records
        status, answer = await call(s, "GET", f"{named.url}/notices?since=1h", headers=named.as_["alice"])
        runs = [n["command"] for n in answer["notices"] if n["kind"] == "command_run"]
        assert [(r["id"], r["requester"]["on_behalf"]) for r in runs] == [
            (ran["id"], "http:ci.deploy"),
            (refused["id"], "http:alice"),
        ]
    async with HubClient.connect(hub.socket) as client:
        records = (await client.audit()).records
        assert [r.requester.on_behalf for r in records] == ["http:ci.deploy", "http:alice"]


@pytest.mark.parametrize("path", ["/audit", "/notices"])
async def test_bad_audit_and_notice_parameters_are_400_naming_them(named, path):
    async with aiohttp.ClientSession(headers=named.as_["alice"]) as s:
        for query, words in (
            ("since=yesterday", "since: 'yesterday' is neither an ISO 8601 time"),
            ("since=0001-01-01", "since: '0001-01-01' is not a time from 1970-01-01"),
            ("limit=0", "limit: must be a whole number from 1 to 10000"),
            ("limit=10001", "limit: must be a whole number from 1 to 10000"),
            ("limit=%C2%B2", "limit: must be a whole number"),
        ):
            async with s.get(f"{named.url}{path}?{query}") as response:
                status, answer = response.status, await response.json()
            assert status == 400 and answer["error"].startswith(words), (query, answer)
            conforms_to_response(path, "get", 400, answer)


async def test_the_route_words_are_never_taken_for_node_names(cluster, hub):
    for name in ("mutes", "audit", "notices"):
        cluster.start_node("who", hostname=name)
    http = cluster.start_http()
    async with aiohttp.ClientSession(headers=http.auth) as s:
        status, rules = await call(s, "GET", f"{http.url}/mutes")
        assert (status, rules) == (200, [])
        status, answer = await call(s, "GET", f"{http.url}/audit")
        assert status == 200 and set(answer) == {"records", "more"}
        status, answer = await call(s, "GET", f"{http.url}/notices")
        assert status == 200 and set(answer) == {"notices", "last_seq", "more"}
        status, node = await call(s, "GET", f"{http.url}/2")  # the nodes stay reachable by serial
        assert status == 200 and node["hostname"] == "audit"


async def test_a_muted_event_and_the_notices_arrive_live_on_the_websocket(cluster, hub, workdir):
    log = workdir / "auth.log"
    log.write_text("")
    cluster.start_node("auth", hostname="alpha")
    cluster.wait_auth_ok("alpha")
    http = cluster.start_http()
    async with aiohttp.ClientSession(headers=http.auth) as s:
        status, answer = await call(s, "GET", f"{http.url}/notices")
        async with s.ws_connect(f"{http.url}/subscribe?since={answer['last_seq']}") as ws:
            status, rule = await call(s, "POST", f"{http.url}/mutes", {"source": "203.0.113.0/24", "reason": HOSTILE})
            assert status == 201 and rule["by"].startswith("http:default via ")
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            with log.open("a") as f:
                f.write(f"{stamp} alpha sshd[7]: Failed password for root from 203.0.113.9 port 4 ssh2\n")
                f.write(f"{stamp} alpha sshd[8]: Failed password for root from 198.51.100.9 port 5 ssh2\n")
            seen = []
            with anyio.fail_after(15):
                while len([u for u in seen if u["type"] == "auth"]) < 2:
                    update = await ws.receive_json()
                    conforms("Update", update)
                    seen.append(update)
    notice = next(u for u in seen if u["type"] == "notice")
    assert notice["kind"] == "mute_added" and notice["mute"]["rule"]["reason"] == HOSTILE
    muted, plain = [u for u in seen if u["type"] == "auth"]
    assert (muted["event"]["host"], muted["context"]["muted"]) == ("203.0.113.9", [rule["id"]])
    assert (plain["event"]["host"], plain["context"]["muted"]) == ("198.51.100.9", [])


async def test_without_a_token_the_bridge_acts_as_http(cluster, hub):
    http = cluster.start_http(HTTP_NO_TOKEN="true")
    async with aiohttp.ClientSession() as s:
        status, rule = await call(s, "POST", f"{http.url}/mutes", {"user": "backup"})
        assert status == 201 and rule["by"].startswith("http via "), rule


async def test_a_hub_that_is_gone_is_503_on_every_new_route(cluster, named):
    cluster.stop_hub()
    async with aiohttp.ClientSession(headers=named.as_["alice"]) as s:
        for method, path, documented, body in (
            ("GET", "/mutes", "/mutes", None),
            ("POST", "/mutes", "/mutes", {"user": "root"}),
            ("DELETE", "/mutes/1", "/mutes/{id}", None),
            ("GET", "/audit", "/audit", None),
            ("GET", "/notices", "/notices", None),
        ):
            status, answer = await call(s, method, f"{named.url}{path}", body)
            assert status == 503 and answer["error"].startswith("hub unavailable"), (path, answer)
            conforms_to_response(documented, method.lower(), 503, answer)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("alice " + "a" * 24 + "\nbob\n", "line 2: expected NAME TOKEN"),
        ("alice " + "a" * 24 + "\nalice " + "b" * 24 + "\n", "line 2: the name 'alice' is given twice"),
        ("alice short\n", "too short"),
    ],
)
def test_a_malformed_token_file_stops_the_bridge_with_one_line(cluster, workdir, content, words):
    token_file = workdir / "http-tokens"
    token_file.write_text(content)
    token_file.chmod(0o600)
    refused = subprocess.run(
        [sys.executable, "-m", "secmon_http"],
        env={**cluster.env, "SERVER_PORT": "0", "HTTP_TOKEN_FILE": str(token_file)},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert refused.returncode == 2 and words in refused.stderr, refused.stderr
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
