"""The HTTP bridge against a real hub and real nodes: every route, status and the WebSocket."""

from __future__ import annotations

import json
from importlib import resources

import aiohttp
import anyio
import pytest
from jsonschema import Draft202012Validator

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


OPENAPI = json.loads((resources.files("secmon_http") / "openapi.json").read_text())


def conforms(schema_name: str, value) -> None:
    """Fail unless ``value`` matches the named schema of the served OpenAPI document."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": OPENAPI["components"]}
    Draft202012Validator(schema).validate(value)


def conforms_to_response(path: str, method: str, status: int, value, content="application/json") -> None:
    response = OPENAPI["paths"][path][method]["responses"][str(status)]
    schema = {**response["content"][content]["schema"], "components": OPENAPI["components"]}
    Draft202012Validator(schema).validate(value)


@pytest.fixture
def fleet(cluster, hub):
    allow = cluster.allowlist("hi=echo hello\ncount=sh -c 'echo one; echo two'\nbad=false\nslow=sleep 30\n")
    for name in ("alpha", "bravo"):
        cluster.start_node("who", hostname=name, COMMAND_ALLOWLIST_FILE=str(allow), COMMAND_EXECUTE_TIMEOUT="5")
    return cluster.start_http()


async def get(session, url, **kw):
    async with session.get(url, **kw) as response:
        return response.status, await response.json()


async def post(session, url, body, headers=None, **kw):
    headers = {"Content-Type": "application/json", **(headers or {})}
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    async with session.post(url, data=data, headers=headers, **kw) as r:
        if r.content_type == "application/x-ndjson":
            return r.status, [json.loads(line) for line in (await r.text()).splitlines()]
        return r.status, await r.json()


async def test_list_and_node(fleet):
    async with aiohttp.ClientSession(headers=fleet.auth) as s:
        status, nodes = await get(s, f"{fleet.url}/list")
        assert status == 200 and [n["hostname"] for n in nodes] == ["alpha", "bravo"]
        conforms_to_response("/list", "get", 200, nodes)
        assert nodes[0]["labels"] == ["bad", "count", "hi", "slow"]
        status, node = await get(s, f"{fleet.url}/bravo")
        assert status == 200 and node["hostname"] == "bravo"
        conforms("Node", node)
        status, body = await get(s, f"{fleet.url}/nosuch")
        assert (status, body) == (404, {"error": "no node matches 'nosuch'"})
        conforms("Error", body)


async def test_execute_whole_and_streamed(fleet):
    async with aiohttp.ClientSession(headers=fleet.auth) as s:
        status, result = await post(s, f"{fleet.url}/alpha/execute", {"label": "hi"})
        assert status == 200 and result["status"] == "success" and result["output"] == "hello\n"
        conforms_to_response("/{node}/execute", "post", 200, result)
        status, items = await post(s, f"{fleet.url}/alpha/execute", {"label": "count", "stream": True})
        assert status == 200
        for item in items:
            conforms("StreamItem", item)
        assert [i["type"] for i in items] == ["started", "output", "output", "result", "done"]
        assert [i["line"] for i in items if i["type"] == "output"] == ["one", "two"]
        assert items[-1] == {"type": "done", "succeeded": 1, "failed": 0}
        status, failed = await post(s, f"{fleet.url}/alpha/execute", {"label": "bad"})
        assert status == 200 and (failed["status"], failed["exit_code"]) == ("failure", 1)


async def test_fan_out_to_all_nodes(fleet):
    async with aiohttp.ClientSession(headers=fleet.auth) as s:
        status, results = await post(s, f"{fleet.url}/-/execute", {"label": "hi"})
        assert status == 200 and sorted(r["hostname"] for r in results) == ["alpha", "bravo"]
        conforms_to_response("/{node}/execute", "post", 200, results)
        status, items = await post(s, f"{fleet.url}/-/execute", {"label": "count", "stream": True})
        outputs = [(i["hostname"], i["line"]) for i in items if i["type"] == "output"]
        assert sorted(outputs) == [("alpha", "one"), ("alpha", "two"), ("bravo", "one"), ("bravo", "two")]
        assert items[-1] == {"type": "done", "succeeded": 2, "failed": 0}


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b"{not json", {}, "body must be JSON"),
        ({"stream": True}, {}, 'non-empty string "label"'),
        ({"label": "hi", "stream": "yes"}, {}, '"stream" must be true or false'),
        ({"label": "hi", "extra": 1}, {}, "unknown field 'extra'"),
        ({"label": "hi"}, {"Expires-In": "soon"}, "Expires-In must be seconds"),
        ({"label": "hi"}, {"Expires-In": "-1"}, "Expires-In must be 0 to 3600 seconds"),
    ],
)
async def test_malformed_requests_are_400(fleet, body, headers, message):
    async with aiohttp.ClientSession(headers=fleet.auth) as s:
        status, answer = await post(s, f"{fleet.url}/alpha/execute", body, headers=headers)
    assert status == 400 and message in answer["error"]
    conforms("Error", answer)


async def test_label_not_allowed_is_403_streamed_or_not(fleet):
    async with aiohttp.ClientSession(headers=fleet.auth) as s:
        for stream in (False, True):
            status, answer = await post(s, f"{fleet.url}/alpha/execute", {"label": "rm", "stream": stream})
            assert status == 403 and "'rm' is not in this node's allowlist" in answer["error"]


async def test_node_that_does_not_answer_in_time_is_504(cluster, fleet):
    import signal

    node = next(d for d in cluster.daemons if d.name == "node alpha")
    node.signal(signal.SIGSTOP)  # connected, but answers nothing
    try:
        async with aiohttp.ClientSession(headers=fleet.auth) as s:
            status, answer = await post(s, f"{fleet.url}/alpha/execute", {"label": "hi"}, headers={"Expires-In": "0.5"})
        assert status == 504 and "did not answer within 0.5 s" in answer["error"]
    finally:
        node.signal(signal.SIGCONT)


async def test_hub_down_is_503_and_the_websocket_resumes(cluster, fleet):
    hub = cluster.hub
    async with aiohttp.ClientSession(headers=fleet.auth) as s, s.ws_connect(f"{fleet.url}/subscribe?since=0") as ws:
        with anyio.fail_after(15):
            first = await ws.receive_json()
            conforms("Update", first)
            cluster.stop_hub()
            status, answer = await get(s, f"{fleet.url}/list")
            assert status == 503 and answer["error"].startswith("hub unavailable")
            cluster.start_hub(BIND_PORT=str(hub.port))
            cluster.start_node(hostname="charlie")
            while True:
                update = await ws.receive_json()
                conforms("Update", update)
                if update["type"] == "node" and update["node"]["hostname"] == "charlie":
                    break
        status, nodes = await get(s, f"{fleet.url}/list")
        assert status == 200 and "charlie" in [n["hostname"] for n in nodes]


async def test_websocket_delivers_auth_events_live(cluster, hub, workdir):
    log = workdir / "auth.log"
    log.write_text("")
    node = cluster.start_node("auth", hostname="alpha")
    http = cluster.start_http()
    node.wait_for("following auth events")
    async with aiohttp.ClientSession(headers=http.auth) as s, s.ws_connect(f"{http.url}/subscribe?since=0") as ws:
        with anyio.fail_after(15):
            while (await ws.receive_json())["node"]["auth"] != "ok":
                pass
            with log.open("a") as f:
                f.write(
                    "2026-11-29T02:09:01+00:00 vm sshd[7]: Invalid user <script>x</script> from 198.51.100.1 port 4\n"
                )
            update = await ws.receive_json()
    conforms("Update", update)
    assert update["type"] == "auth" and update["event"]["user"] == "<script>x</script>"
    assert update["event"]["failure"] is True and update["event"]["label"] == "SSH invalid user"


async def test_bad_since_is_400(fleet):
    async with aiohttp.ClientSession(headers=fleet.auth) as s:
        status, answer = await get(s, f"{fleet.url}/subscribe?since=yesterday")
    assert status == 400 and "since must be a sequence number" in answer["error"]


async def test_token_file_guards_every_data_route(cluster, hub, workdir):
    import secrets

    token = secrets.token_urlsafe(16)
    token_file = workdir / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    http = cluster.start_http(HTTP_TOKEN_FILE=str(token_file))
    assert http.token == token  # the printed dashboard URL carries the configured token
    good = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as s:
        assert (await get(s, f"{http.url}/list"))[0] == 401
        assert (await get(s, f"{http.url}/list", headers={"Authorization": "Bearer nope"}))[0] == 401
        assert (await get(s, f"{http.url}/list", headers=good)) == (200, [])
        assert (await post(s, f"{http.url}/-/execute", {"label": "x"}))[0] == 401
        async with s.get(f"{http.url}/") as page:
            assert page.status == 200 and "SecMon" in await page.text()
        async with s.get(f"{http.url}/subscribe") as refused:
            assert refused.status == 401
        async with s.ws_connect(f"{http.url}/subscribe?access_token={token}") as ws:
            assert not ws.closed


def test_no_token_off_loopback_refuses_to_start(cluster):
    import subprocess
    import sys

    refused = subprocess.run(
        [sys.executable, "-m", "secmon_http"],
        env={**cluster.env, "SERVER_IP": "0.0.0.0", "SERVER_PORT": "0", "HTTP_NO_TOKEN": "true"},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert refused.returncode == 2
    assert "HTTP_NO_TOKEN is refused with SERVER_IP=0.0.0.0, which is not loopback" in refused.stderr
    assert "Traceback" not in refused.stderr


async def test_openapi_document_is_served(fleet):
    async with aiohttp.ClientSession(headers=fleet.auth) as s:
        status, doc = await get(s, f"{fleet.url}/openapi.json")
    assert status == 200 and doc == OPENAPI
    assert set(doc["paths"]) == {
        "/list", "/events", "/events/stats", "/{node}", "/{node}/execute", "/subscribe", "/openapi.json", "/", "/login",
        "/mutes", "/mutes/{id}", "/audit", "/notices",
    }  # fmt: skip
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer" and schemes["cookie"]["in"] == "cookie"
    assert doc["security"] == [{"bearer": []}, {"cookie": []}]  # no anonymous access by default
    assert doc["paths"]["/list"]["get"]["responses"]["401"]


def test_help_prints_usage():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "secmon_http", "help"], capture_output=True, text=True)
    assert result.returncode == 0 and "SERVER_IP, SERVER_PORT" in result.stdout


BAD_HISTORY_URLS = [  # each once a 500 (or a hub connection lost): now one line naming the parameter
    ("/events?since=0001-01-01", "since: '0001-01-01' is not a time from 1970-01-01"),
    ("/events?since=%C2%B2", "since: '²' is neither an ISO 8601 time"),
    ("/events?since=99999999999999999999999", "since: sequence 99999999999999999999999 is too large"),
    ("/events?limit=%C2%B2", "limit: must be a whole number from 1 to 10000, got '²'"),
    ("/events?node=%C2%B2", "node: '²' is not a serial"),
    ("/events?node=99999999999999999999999", "node: '99999999999999999999999' is not a serial"),
    ("/events?since=1h&until=2h", "since: is later than until"),
    (f"/events/stats?since={'9' * 400}s", "since: "),
    ("/events/stats?since=99999999999999999d&bucket=1e308", "since: '99999999999999999d' is not a time"),
    ("/events/stats?bucket=1e308", "bucket: must be whole seconds from 1 s to 366 days, got '1e308'"),
    ("/events/stats?bucket=2.5", "bucket: must be whole seconds"),
]


async def test_bad_history_parameters_are_400_naming_them(cluster, hub):
    bridge = cluster.start_http()
    async with aiohttp.ClientSession(headers=bridge.auth) as s:
        for url, words in BAD_HISTORY_URLS:
            async with s.get(f"{bridge.url}{url}") as response:  # as written: aiohttp sends the escapes as they are
                status, body = response.status, await response.json()
            assert status == 400 and body["error"].startswith(words), (url, status, body)
            conforms_to_response(url.split("?")[0], "get", 400, body)
        status, answer = await get(s, f"{bridge.url}/events", params={"since": "1970-01-01T00:00:00Z", "limit": "5"})
        assert status == 200 and answer["events"] == []  # the bridge and its hub go on


def test_the_history_routes_document_every_status_and_flag_they_answer():
    from secmon import eventquery

    for path in ("/events", "/events/stats"):
        operation = OPENAPI["paths"][path]["get"]
        assert {"200", "400", "502", "503"} <= set(operation["responses"])  # history_failed and busy are 502
        [failures] = [p for p in operation["parameters"] if p["name"] == "failures"]
        assert set(failures["schema"]["enum"]) == {*eventquery.TRUE, *eventquery.FALSE}
