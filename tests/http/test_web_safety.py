"""The bridge against web pages, at the HTTP level: Host, Origin, body type, token, headers.

Each request is what a hostile page could make a browser send (a rebound
Host name, a foreign Origin, a "simple" text/plain body), sent to a real
bridge in front of a real hub and node; a command that must not run would
leave a file behind on the node.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import aiohttp
import pytest

pytestmark = pytest.mark.anyio

REQUIRED_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def guarded(cluster, hub, workdir):
    """A node whose one command leaves ``workdir/ran``, and a bridge with its default token."""
    marker = workdir / "ran"
    allow = cluster.allowlist(f"mark=touch {marker}\n")
    cluster.start_node("who", hostname="n1", COMMAND_ALLOWLIST_FILE=str(allow))
    http = cluster.start_http()
    http.marker = marker
    http.port = int(http.url.rsplit(":", 1)[1])
    return http


async def request(session, method, url, **kw):
    async with session.request(method, url, allow_redirects=False, **kw) as response:
        text = await response.text()
        return response.status, response.headers, text


def assert_secure_headers(headers) -> None:
    for name, value in REQUIRED_HEADERS.items():
        assert headers.get(name) == value, name
    policy = headers.get("Content-Security-Policy", "")
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy


JSON = {"Content-Type": "application/json"}


async def test_a_host_the_bridge_does_not_serve_is_refused(guarded):
    async with aiohttp.ClientSession(headers=guarded.auth) as s:
        for path in ("/", "/list", "/n1"):
            status, headers, body = await request(s, "GET", guarded.url + path, headers={"Host": "evil.example"})
            assert status == 403 and "SERVER_NAMES" in json.loads(body)["error"]
            assert_secure_headers(headers)
        status, _, _ = await request(
            s, "POST", f"{guarded.url}/n1/execute", data='{"label": "mark"}', headers={**JSON, "Host": "evil.example"}
        )
        assert status == 403
        for host in (f"localhost:{guarded.port}", f"127.0.0.1:{guarded.port}", "127.0.0.1", "[::1]:9"):
            status, _, _ = await request(s, "GET", f"{guarded.url}/list", headers={"Host": host})
            assert status == 200, host
    assert not guarded.marker.exists()


async def test_server_names_adds_a_host(cluster, hub):
    http = cluster.start_http(SERVER_NAMES="secmon.example.org, Other.Example")
    async with aiohttp.ClientSession(headers=http.auth) as s:
        for host in ("secmon.example.org", "other.example:443"):
            assert (await request(s, "GET", f"{http.url}/list", headers={"Host": host}))[0] == 200
        assert (await request(s, "GET", f"{http.url}/list", headers={"Host": "evil.example.org"}))[0] == 403


async def test_a_simple_cross_origin_post_runs_nothing(guarded):
    """The no-preflight request a page can make: text/plain, JSON inside, cookie or not."""
    async with aiohttp.ClientSession(headers=guarded.auth) as s:
        url = f"{guarded.url}/n1/execute"
        body = '{"label": "mark"}'
        plain = {"Content-Type": "text/plain;charset=UTF-8"}
        status, headers, text = await request(s, "POST", url, data=body, headers=plain)
        assert status == 415 and "application/json" in json.loads(text)["error"]
        assert_secure_headers(headers)
        for origin in ("http://evil.example", f"http://127.0.0.1:{guarded.port + 1}", "null"):
            status, _, text = await request(s, "POST", url, data=body, headers={**JSON, "Origin": origin})
            assert status == 403 and "cross-origin" in json.loads(text)["error"], origin
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert (await request(s, "POST", url, data="label=mark", headers=form))[0] == 415
    assert not guarded.marker.exists()


async def test_same_origin_and_scripts_without_origin_may_run_commands(guarded):
    async with aiohttp.ClientSession(headers=guarded.auth) as s:
        url = f"{guarded.url}/n1/execute"
        status, _, text = await request(s, "POST", url, data='{"label": "mark"}', headers=JSON)
        assert status == 200 and json.loads(text)["status"] == "success"
        assert guarded.marker.exists()
        guarded.marker.unlink()
        own = {**JSON, "Origin": f"http://127.0.0.1:{guarded.port}"}
        assert (await request(s, "POST", url, data='{"label": "mark"}', headers=own))[0] == 200
        assert guarded.marker.exists()


async def test_server_origins_admits_a_proxy(cluster, hub, workdir):
    marker = workdir / "ran"
    allow = cluster.allowlist(f"mark=touch {marker}\n")
    cluster.start_node("who", hostname="n1", COMMAND_ALLOWLIST_FILE=str(allow))
    http = cluster.start_http(SERVER_ORIGINS="https://secmon.example.org")
    async with aiohttp.ClientSession(headers=http.auth) as s:
        headers = {**JSON, "Origin": "https://secmon.example.org"}
        assert (await request(s, "POST", f"{http.url}/n1/execute", data='{"label":"mark"}', headers=headers))[0] == 200
    assert marker.exists()


async def test_cross_origin_websocket_is_refused(guarded):
    async with aiohttp.ClientSession(headers=guarded.auth) as s:
        for origin in ("http://evil.example", f"http://localhost:{guarded.port + 1}"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await s.ws_connect(f"{guarded.url}/subscribe?since=0", origin=origin)
            assert refused.value.status == 403
            assert_secure_headers(refused.value.headers)
        async with s.ws_connect(f"{guarded.url}/subscribe?since=0", origin=f"http://127.0.0.1:{guarded.port}") as ws:
            update = await ws.receive_json(timeout=15)
            assert update["type"] == "node"


async def test_subscribe_without_upgrade_is_a_json_error(guarded):
    async with aiohttp.ClientSession(headers=guarded.auth) as s:
        status, headers, text = await request(s, "GET", f"{guarded.url}/subscribe")
    assert status == 400 and headers["Content-Type"].startswith("application/json")
    assert "WebSocket" in json.loads(text)["error"]


async def test_missing_or_wrong_token_is_401_everywhere_that_holds_data(guarded):
    async with aiohttp.ClientSession() as s:
        for method, path in (("GET", "/list"), ("GET", "/n1"), ("POST", "/n1/execute"), ("GET", "/subscribe")):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": f"secmon_token_{guarded.port}=wrong"}):
                body = '{"label": "mark"}' if method == "POST" else None
                status, response_headers, _ = await request(
                    s, method, guarded.url + path, data=body, headers={**JSON, **headers}
                )
                assert status == 401, (path, headers)
                assert_secure_headers(response_headers)
        # the page, its files and the API document carry no data and stay public
        for path in ("/", "/static/app.js", "/openapi.json"):
            status, headers, _ = await request(s, "GET", guarded.url + path)
            assert status == 200, path
            assert_secure_headers(headers)
        status, headers, _ = await request(s, "GET", guarded.url + "/static/nosuch.js")
        assert status == 404
        assert_secure_headers(headers)
    assert not guarded.marker.exists()


def cookie_session() -> aiohttp.ClientSession:
    """A client that keeps cookies for IP-address hosts, as browsers do."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def test_the_printed_url_trades_the_token_for_a_strict_cookie(guarded):
    async with cookie_session() as s:
        status, headers, _ = await request(s, "GET", guarded.dashboard_url)
        assert status == 303 and headers["Location"] == "/"
        cookie = headers["Set-Cookie"]
        assert cookie.startswith(f"secmon_token_{guarded.port}={guarded.token};")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        # the session now holds the cookie: data routes answer without a header
        assert (await request(s, "GET", f"{guarded.url}/list"))[0] == 200
        status, _, _ = await request(s, "GET", f"{guarded.url}/?token=wrong")
        assert status == 401


async def test_login_form_sets_the_cookie_for_a_json_body_only(guarded):
    async with cookie_session() as s:
        login = f"{guarded.url}/login"
        wrong = json.dumps({"token": "wrong"})
        assert (await request(s, "POST", login, data=wrong, headers=JSON))[0] == 401
        right = json.dumps({"token": guarded.token})
        assert (await request(s, "POST", login, data=right, headers={"Content-Type": "text/plain"}))[0] == 415
        foreign = {**JSON, "Origin": "http://evil.example"}
        assert (await request(s, "POST", login, data=right, headers=foreign))[0] == 403
        status, headers, _ = await request(s, "POST", login, data=right, headers=JSON)
        assert status == 204 and "HttpOnly" in headers["Set-Cookie"]
        assert (await request(s, "GET", f"{guarded.url}/list"))[0] == 200


def test_the_generated_token_is_private_and_kept_across_restarts(cluster, hub, workdir):
    first = cluster.start_http()
    token_file = workdir / "config" / "secmon" / "http-token"
    assert first.count(r"dashboard: http://127\.0\.0\.1:\d+/\?token=") == 1
    assert first.count(f"the token is in {token_file}") == 1
    mode = stat.S_IMODE(token_file.stat().st_mode)
    assert mode == 0o600 and stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    assert token_file.read_text().strip() == first.token and len(first.token) >= 40
    first.stop()
    second = cluster.start_http()
    assert second.token == first.token
    second.stop()
    token_file.chmod(0o644)
    refused = subprocess.run(
        [sys.executable, "-m", "secmon_http"],
        env={**cluster.env, "SERVER_PORT": "0", "XDG_CONFIG_HOME": str(workdir / "config")},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert refused.returncode == 2 and "readable by others" in refused.stderr and "Traceback" not in refused.stderr


def test_the_token_lives_in_the_state_dir_when_there_is_one(cluster, hub, workdir):
    state = workdir / "state"
    http = cluster.start_http(SECMON_STATE_DIR=str(state))
    assert (state / "http-token").read_text().strip() == http.token


async def test_no_token_on_loopback_is_explicit_and_warned(cluster, hub):
    http = cluster.start_http(HTTP_NO_TOKEN="yes")
    assert http.token is None
    http.wait_for(r"HTTP_NO_TOKEN is set: every local user")
    async with aiohttp.ClientSession() as s:
        assert (await request(s, "GET", f"{http.url}/list"))[0] == 200
        # the Host and Origin checks still hold without a token
        assert (await request(s, "GET", f"{http.url}/list", headers={"Host": "evil.example"}))[0] == 403


def test_a_token_file_and_no_token_together_are_refused(cluster, workdir):
    token_file = workdir / "token"
    token_file.write_text(os.urandom(8).hex())
    token_file.chmod(0o600)
    both = subprocess.run(
        [sys.executable, "-m", "secmon_http"],
        env={**cluster.env, "SERVER_PORT": "0", "HTTP_TOKEN_FILE": str(token_file), "HTTP_NO_TOKEN": "1"},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert both.returncode == 2 and "choose one" in both.stderr and "Traceback" not in both.stderr


async def test_public_is_decided_by_the_route_not_the_path(cluster, hub, workdir):
    """Nodes named like the public routes stay behind the token: /login and /static/... are theirs too."""
    marker = workdir / "ran"
    allow = cluster.allowlist(f"mark=touch {marker}\n")
    for name in ("login", "static"):
        cluster.start_node("who", hostname=name, COMMAND_ALLOWLIST_FILE=str(allow))
    http = cluster.start_http()
    async with aiohttp.ClientSession() as s:
        for method in ("GET", "HEAD"):
            assert (await request(s, method, f"{http.url}/login"))[0] == 401
        status, _, _ = await request(s, "POST", f"{http.url}/static/execute", data='{"label": "mark"}', headers=JSON)
        assert status == 401
        status, _, text = await request(s, "GET", f"{http.url}/login", headers=http.auth)
        assert status == 200 and json.loads(text)["hostname"] == "login"
    assert not marker.exists()


async def test_a_token_of_undecodable_bytes_is_401_not_a_crash(guarded):
    import socket

    with socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as raw:
        raw.sendall(
            b"GET /list HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := raw.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert guarded.count("Traceback") == 0
