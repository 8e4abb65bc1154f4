"""The bridge's rules against web pages as plain function calls (guard.py has no I/O)."""

from __future__ import annotations

import pytest

from secmon_http import guard

OWN = "http://127.0.0.1:9993"
NAMES = frozenset({"secmon.example.org"})
ORIGINS = frozenset({"https://secmon.example.org"})


def judged(method: str = "GET", **headers: str) -> int | None:
    headers = {k.replace("_", "-"): v for k, v in headers.items()}
    headers.setdefault("Host", "127.0.0.1:9993")
    refusal = guard.judge(method, headers, OWN, NAMES, ORIGINS)
    return None if refusal is None else refusal.status


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:9993", "127.0.0.1"),
        ("LOCALHOST", "localhost"),
        ("[::1]:9993", "::1"),
        ("[::1]", "::1"),
        ("example.org:80", "example.org"),
        ("::1", "::1"),  # a bare IPv6 address is not host:port
    ],
)
def test_host_name(header, name):
    assert guard.host_name(header) == name


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:9993", "localhost:9993", "[::1]:9993", "10.1.2.3", "secmon.example.org", "app.localhost", "localhost."],
)
def test_served_hosts(host):
    assert guard.is_served_host(host, NAMES)


@pytest.mark.parametrize("host", [None, "", "evil.example", "evil.example:9993", "secmon.example.org.evil.example"])
def test_hosts_a_rebinding_page_would_send_are_refused(host):
    assert not guard.is_served_host(host, NAMES)


def test_a_foreign_host_is_refused_for_every_method():
    for method in ("GET", "POST", "HEAD"):
        assert judged(method, Host="evil.example") == 403


def test_origin_matters_for_state_changes_and_websockets_only():
    json_body = {"Content_Type": "application/json", "Content_Length": "17"}
    assert judged("POST", Origin="http://evil.example", **json_body) == 403
    assert judged("POST", Origin="null", **json_body) == 403
    assert judged("POST", Origin="http://127.0.0.1:9994", **json_body) == 403  # same site, other origin
    assert judged("POST", Origin=OWN, **json_body) is None
    assert judged("POST", Origin=OWN.upper() + "/", **json_body) is None
    assert judged("POST", Origin="https://secmon.example.org", **json_body) is None
    assert judged("POST", **json_body) is None  # curl and scripts send no Origin
    assert judged("GET", Origin="http://evil.example") is None  # a read: the answer stays opaque to the page
    assert judged("GET", Origin="http://evil.example", Upgrade="websocket") == 403
    assert judged("GET", Origin=OWN, Upgrade="WebSocket") is None


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data", ""],
)
def test_bodies_that_need_no_preflight_are_refused(content_type):
    assert judged("POST", Content_Type=content_type, Content_Length="5") == 415
    assert judged("POST", Content_Type=content_type, Transfer_Encoding="chunked") == 415


def test_json_bodies_and_empty_posts_pass():
    assert judged("POST", Content_Type="application/json; charset=utf-8", Content_Length="5") is None
    assert judged("POST", Content_Length="0") is None


def test_security_headers_say_what_the_issue_asks():
    policy = guard.SECURITY_HEADERS["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert guard.SECURITY_HEADERS["X-Content-Type-Options"] == "nosniff"
    assert guard.SECURITY_HEADERS["Referrer-Policy"] == "no-referrer"


def test_server_origins_are_read_as_browsers_send_them():
    from secmon_http.config import HttpSettings

    env = {
        "HTTP_NO_TOKEN": "1",
        "SERVER_ORIGINS": "https://secmon.example.org:443, http://[::1]:8080, HTTP://Proxy.Example:80/",
    }
    settings = HttpSettings.from_env(env)
    assert settings.allowed_origins == {"https://secmon.example.org", "http://[::1]:8080", "http://proxy.example"}


@pytest.mark.parametrize("bad", ["secmon.example.org", "ftp://x", "https://x/path", "https://[nope]", "https://a b"])
def test_a_malformed_server_origin_is_refused(bad):
    from secmon.errors import ConfigError
    from secmon_http.config import HttpSettings

    with pytest.raises(ConfigError, match="SERVER_ORIGINS"):
        HttpSettings.from_env({"HTTP_NO_TOKEN": "1", "SERVER_ORIGINS": bad})
