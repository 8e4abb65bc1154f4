"""The HTTP bridge: the hub's client API as plain JSON over HTTP, and the dashboard.

Every request opens its own connection to the hub's socket, so a hub restart
costs only the requests made while it is down (503). The WebSocket follows
the hub with ``follow_updates``, which reconnects and resumes by itself.

Who acts is the name of the token a request carries (tokens.py): the hub's
command audit and mute rules record ``http:NAME``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.typedefs import Handler

from secmon import eventquery, jsonform
from secmon.client import ExecuteItem, HubClient, follow_updates
from secmon.errors import BadQuery, HubUnavailable, RequestFailed, UnknownNode
from secmon.protocol import messages as m

from . import guard
from .config import HttpSettings
from .mutes import MuteBodyError, parse_mute_body, parse_rule_id
from .tokens import ANONYMOUS

log = logging.getLogger("secmon.http")

MAX_BODY = 64 * 1024  # an execute request is a label and a flag
MAX_EXPIRES_IN = 3600.0  # seconds; longer waits are a mistake, not a plan
COOKIE_MAX_AGE = 30 * 24 * 3600  # seconds; a month, then the printed URL or the token again
STATIC = resources.files("secmon_http") / "static"
SETTINGS = web.AppKey("settings", HttpSettings)
IDENTITY = "secmon_identity"  # the request key of who acts: "http:NAME", or "http" with no token
UNKNOWN_MUTE = "unknown_mute"  # the hub's error code for a rule id it does not hold


def error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


def _hub_errors(handler: Handler) -> Handler:
    """Map hub faults to HTTP statuses once, at the edge."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except HubUnavailable as exc:
            return error(503, f"hub unavailable: {exc}")
        except UnknownNode as exc:
            if exc.code == "not_connected":
                return error(504, str(exc))
            return error(404, str(exc))
        except BadQuery as exc:
            return error(400, str(exc))
        except RequestFailed as exc:
            return error(404 if exc.code == UNKNOWN_MUTE else 502, str(exc))

    return wrapped


def cookie_name(request: web.Request) -> str:
    """One cookie per bridge: browsers share cookies across a host's ports, so the port is in the name."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return f"secmon_token_{sockname[1] if sockname else 0}"


def offered_token(request: web.Request) -> str:
    """The token a request carries: a bearer header (scripts), the dashboard's cookie, or for a
    WebSocket from a script that cannot set headers, ``?access_token=``."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    cookie = request.cookies.get(cookie_name(request))
    if cookie:
        return cookie
    if request.path == "/subscribe":
        return request.query.get("access_token", "")
    return ""


@web.middleware
async def guard_browsers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Host, Origin and body type, judged before anything else (see guard.py)."""
    settings = request.app[SETTINGS]
    own_origin = f"{request.scheme}://{request.host}"
    refusal = guard.judge(request.method, request.headers, own_origin, settings.server_names, settings.allowed_origins)
    if refusal is not None:
        log.warning("refused %s %s from %s: %s", request.method, request.path, request.remote, refusal.reason)
        return error(refusal.status, refusal.reason)
    return await handler(request)


@web.middleware
async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The token on every data route; the page, its files, the API document and the sign-in are public.

    Public is decided by the handler the route resolved to, never by the path's text: ``GET /login``
    is the node named "login", and ``POST /static/execute`` runs a command on the node "static".
    """
    tokens = request.app[SETTINGS].tokens
    if tokens is None:
        request[IDENTITY] = ANONYMOUS
        return await handler(request)
    if request.match_info.handler in PUBLIC_HANDLERS:
        return await handler(request)
    name = tokens.identify(offered_token(request))
    if name is None:
        return error(401, "missing or wrong token: send Authorization: Bearer TOKEN")
    request[IDENTITY] = f"{ANONYMOUS}:{name}"
    return await handler(request)


def identity(request: web.Request) -> str:
    """Who a request acts for, as the hub's audit and mute rules record it."""
    return str(request[IDENTITY])


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(guard.SECURITY_HEADERS)
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"


async def dashboard(request: web.Request) -> web.StreamResponse:
    """The page; ``/?token=T`` (the URL printed at start) trades the token for a cookie."""
    settings = request.app[SETTINGS]
    offered = request.query.get("token")
    if offered is not None and settings.tokens is not None:
        if settings.tokens.identify(offered) is None:
            return error(401, "wrong token in the link: use the URL the bridge printed at start")
        response = web.Response(status=303, headers={"Location": "/"})  # the token leaves the address bar
        _set_token_cookie(request, response, offered)
        return response
    return web.Response(text=(STATIC / "index.html").read_text(), content_type="text/html")


async def login(request: web.Request) -> web.Response:
    """``POST /login {"token": "..."}``: the dashboard's form, for a browser that lost its cookie."""
    settings = request.app[SETTINGS]
    body = await _json_body(request, '{"token": "..."}')
    offered = body.get("token") if isinstance(body, dict) else None
    if not isinstance(offered, str):
        raise _bad('body must be a JSON object with a string "token"')
    offered = offered.strip()
    if settings.tokens is not None and settings.tokens.identify(offered) is None:
        return error(401, "wrong token")
    response = web.Response(status=204)
    if settings.tokens is not None:
        _set_token_cookie(request, response, offered)
    return response


def _set_token_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    response.set_cookie(
        cookie_name(request),
        token,
        httponly=True,
        samesite="Strict",
        path="/",
        secure=request.secure,
        max_age=COOKIE_MAX_AGE,
    )


async def static_file(request: web.Request) -> web.Response:
    """The page's own files, and under ``/static/vendor/`` the libraries shipped with it."""
    name = request.match_info["name"]
    types = {"js": "application/javascript", "css": "text/css", "png": "image/png"}
    kind = types.get(name.rsplit(".", 1)[-1])
    if kind is None or "/" in name or name.startswith("."):
        return error(404, "no such file")
    folder = STATIC / "vendor" if request.match_info.get("folder") == "vendor" else STATIC
    path = folder / name
    if not path.is_file():
        return error(404, "no such file")
    return web.Response(body=path.read_bytes(), content_type=kind)


async def openapi(request: web.Request) -> web.Response:
    return web.Response(
        text=(resources.files("secmon_http") / "openapi.json").read_text(), content_type="application/json"
    )


@_hub_errors
async def list_nodes(request: web.Request) -> web.Response:
    async with HubClient.connect() as hub:
        nodes = await hub.list_nodes()
    nodes.sort(key=lambda n: (n.hostname, n.serial))
    return web.json_response([jsonform.node_json(n) for n in nodes])


@_hub_errors
async def show_node(request: web.Request) -> web.Response:
    async with HubClient.connect() as hub:
        node = await hub.find_node(request.match_info["node"])
    return web.json_response(jsonform.node_json(node))


def _expires_in(request: web.Request) -> float:
    raw = request.headers.get("Expires-In")
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"Expires-In must be seconds, got {raw!r}"}), content_type="application/json"
        ) from None
    if not 0 <= value <= MAX_EXPIRES_IN or math.isnan(value):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"Expires-In must be 0 to {MAX_EXPIRES_IN:g} seconds"}),
            content_type="application/json",
        )
    return value


async def _json_body(request: web.Request, shape: str) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _bad(f"body over {MAX_BODY} bytes")
    try:
        return json.loads(await request.content.read(MAX_BODY + 1) or b"null")
    except ValueError:
        raise _bad(f"body must be JSON: {shape}") from None


async def _execute_body(request: web.Request) -> tuple[str, bool]:
    body = await _json_body(request, '{"label": "...", "stream": false}')
    if not isinstance(body, dict) or not isinstance(body.get("label"), str) or not body["label"]:
        raise _bad('body must be a JSON object with a non-empty string "label"')
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad('"stream" must be true or false')
    unknown = set(body) - {"label", "stream"}
    if unknown:
        raise _bad(f"unknown field {sorted(unknown)[0]!r}")
    return body["label"], stream


def _bad(text: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": text}), content_type="application/json")


def _result_json(result: m.CommandResult, names: dict[int, str]) -> dict[str, Any]:
    return {"hostname": names.get(result.serial), **jsonform.result_json(result)}


def _status_for(result: m.CommandResult) -> int:
    if result.status == m.NOT_ALLOWED:
        return 403
    if result.status == m.TIMEOUT and result.message.startswith("node did not answer"):
        return 504
    if result.status == m.ERROR and "disconnected" in result.message:
        return 502
    return 200


@_hub_errors
async def execute(request: web.Request) -> web.StreamResponse:
    target = request.match_info["node"]
    wait = _expires_in(request)
    label, stream = await _execute_body(request)
    async with HubClient.connect() as hub:
        names = {n.serial: n.hostname for n in await hub.list_nodes()}
        items = hub.execute(target, label, stream=stream, wait=wait, on_behalf=identity(request))
        started = await anext(items)
        assert isinstance(started, m.Started), "the client library yields Started first"
        if not stream:
            results = [_result_json(item, names) async for item in items if type(item) is m.CommandResult]
            if target != m.ALL_NODES:
                only = results[0]
                status = _status_for(m.CommandResult(0, only["status"], message=only["message"]))
                if status != 200:
                    return error(status, only["message"] or only["status"])
                return web.json_response(only)
            return web.json_response(results)
        first = None
        if target != m.ALL_NODES:
            first = await anext(items)  # a refusal or a timeout is known before any output: say it with a status
            if type(first) is m.CommandResult and _status_for(first) != 200:
                return error(_status_for(first), first.message or first.status)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        response.enable_chunked_encoding()
        await response.prepare(request)

        async def emit(obj: dict[str, Any]) -> None:
            await response.write(json.dumps(obj, ensure_ascii=False).encode() + b"\n")

        await emit({"type": "started", "serials": started.serials})
        ok = failed = 0
        pending = [first] if first is not None else []

        async def all_items() -> AsyncIterator[ExecuteItem]:
            for item in pending:
                yield item
            async for item in items:
                yield item

        async for item in all_items():
            if type(item) is m.CommandOutput:
                await emit({"type": "output", **jsonform.output_json(item), "hostname": names.get(item.serial)})
            elif type(item) is m.CommandResult:
                ok += item.status == m.SUCCESS
                failed += item.status != m.SUCCESS
                await emit({"type": "result", **_result_json(item, names)})
        await emit({"type": "done", "succeeded": ok, "failed": failed})
        await response.write_eof()
        return response


def _query_filter(request: web.Request) -> m.EventFilter:
    """The history filter of a request's query parameters (see eventquery); 400 naming a bad one."""
    query = request.query
    try:
        return eventquery.event_filter(
            now=time.time(),
            since=query.get("since"),
            until=query.get("until"),
            nodes=query.getall("node", []),
            kinds=query.getall("kind", []),
            user=query.get("user"),
            source=query.get("source"),
            failures=eventquery.parse_flag(query.get("failures", "0"), "failures"),
        )
    except eventquery.QueryError as exc:
        raise _bad(str(exc)) from None


def _query_number(request: web.Request, name: str, default: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(request.query.get(name, default))
    except eventquery.QueryError as exc:
        raise _bad(str(exc)) from None


@_hub_errors
async def events(request: web.Request) -> web.Response:
    """``GET /events``: the latest matching events of the hub's history, oldest first."""
    query = _query_filter(request)
    limit = _query_number(request, "limit", "100", eventquery.parse_limit)
    async with HubClient.connect() as hub:
        answer = await hub.events(query, limit)
    return web.json_response(jsonform.event_list_json(answer))


@_hub_errors
async def event_stats(request: web.Request) -> web.Response:
    """``GET /events/stats``: counts per time bucket, or the top nodes, kinds, sources or users."""
    query = _query_filter(request)
    by = request.query.get("by", m.BY_TIME)
    if by != m.BY_TIME and by not in m.STATS_KEYS:
        raise _bad(f"by: must be {m.BY_TIME} or one of {', '.join(m.STATS_KEYS)}, got {by!r}")
    group = request.query.get("group", "")
    if group not in ("", "node", "kind"):
        raise _bad(f"group: must be node or kind, got {group!r}")
    bucket = _query_number(request, "bucket", "1h", eventquery.parse_bucket)
    limit = _query_number(request, "limit", "10", lambda text: eventquery.parse_limit(text, eventquery.MAX_STATS_LIMIT))
    async with HubClient.connect() as hub:
        stats = await hub.event_stats(query, by=by, bucket=bucket, group=group, limit=limit)
    return web.json_response(jsonform.stats_json(stats))


def _query_since(request: web.Request) -> float | None:
    """``since`` as a time (ISO 8601, or how long ago: ``2h``); None when absent."""
    text = request.query.get("since")
    if text is None or not text.strip():
        return None
    try:
        return eventquery.parse_time(text, time.time(), "since")
    except eventquery.QueryError as exc:
        raise _bad(str(exc)) from None


@_hub_errors
async def list_mutes(request: web.Request) -> web.Response:
    """``GET /mutes``: the mute rules in force, by id."""
    async with HubClient.connect() as hub:
        rules = await hub.mutes()
    return web.json_response([jsonform.mute_json(rule) for rule in rules])


@_hub_errors
async def add_mute(request: web.Request) -> web.Response:
    """``POST /mutes``: add a rule in the name of the request's token; 201 with the rule."""
    try:
        rule = parse_mute_body(await _json_body(request, '{"source": "...", "for": "2h", "reason": "..."}'))
    except MuteBodyError as exc:
        raise _bad(str(exc)) from None
    async with HubClient.connect() as hub:
        added = await hub.add_mute(**rule.arguments(), on_behalf=identity(request))
    return web.json_response(jsonform.mute_json(added), status=201)


@_hub_errors
async def remove_mute(request: web.Request) -> web.Response:
    """``DELETE /mutes/{id}``: remove a rule; the rule removed, 404 when the hub holds none by that id."""
    try:
        rule_id = parse_rule_id(request.match_info["id"])
    except MuteBodyError as exc:
        raise _bad(str(exc)) from None
    async with HubClient.connect() as hub:
        removed = await hub.remove_mute(rule_id, on_behalf=identity(request))
    return web.json_response(jsonform.mute_json(removed))


@_hub_errors
async def audit(request: web.Request) -> web.Response:
    """``GET /audit``: the latest command records, oldest first."""
    since = _query_since(request)
    limit = _query_number(request, "limit", "100", eventquery.parse_limit)
    async with HubClient.connect() as hub:
        answer = await hub.audit(since, limit)
    return web.json_response(
        {"records": [jsonform.command_record_json(r) for r in answer.records], "more": answer.more}
    )


@_hub_errors
async def notices(request: web.Request) -> web.Response:
    """``GET /notices``: the latest notices, oldest first; ``last_seq`` to follow on with the WebSocket."""
    since = _query_since(request)
    limit = _query_number(request, "limit", "100", eventquery.parse_limit)
    async with HubClient.connect() as hub:
        answer = await hub.notices(since, limit)
    return web.json_response(
        {
            "notices": [jsonform.notice_json(n) for n in answer.notices],
            "last_seq": answer.last_seq,
            "more": answer.more,
        }
    )


async def subscribe(request: web.Request) -> web.StreamResponse:
    since_text = request.query.get("since")
    if since_text is not None and not since_text.isdigit():
        return error(400, f"since must be a sequence number, got {since_text!r}")
    ws = web.WebSocketResponse(heartbeat=30)
    if not ws.can_prepare(request).ok:
        return error(400, "GET /subscribe is a WebSocket: send Upgrade: websocket")
    await ws.prepare(request)
    since = int(since_text) if since_text is not None else None

    async def pump() -> None:
        async with follow_updates(since=since) as updates:
            async for update in updates:
                await ws.send_json(jsonform.update_json(update))

    task = asyncio.ensure_future(pump())
    try:
        async for message in ws:  # the page sends nothing; this notices it leaving
            if message.type == WSMsgType.ERROR:
                break
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return ws


PUBLIC_HANDLERS = frozenset({dashboard, login, static_file, openapi})  # they carry no data from the hub


def make_app(settings: HttpSettings) -> web.Application:
    app = web.Application(middlewares=[guard_browsers, require_token], client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app.on_response_prepare.append(add_security_headers)
    app.router.add_get("/", dashboard)
    app.router.add_post("/login", login)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/static/{folder:vendor}/{name}", static_file)
    app.router.add_get("/list", list_nodes)
    app.router.add_get("/subscribe", subscribe)
    app.router.add_get("/events", events)
    app.router.add_get("/events/stats", event_stats)
    # before the node routes: these words are not node names
    app.router.add_get("/mutes", list_mutes)
    app.router.add_post("/mutes", add_mute)
    app.router.add_delete("/mutes/{id}", remove_mute)
    app.router.add_get("/audit", audit)
    app.router.add_get("/notices", notices)
    app.router.add_get("/{node}", show_node)
    app.router.add_post("/{node}/execute", execute)
    return app
