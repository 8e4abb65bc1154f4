"""Local HTTP servers that speak the parts of Discord's and Telegram's APIs we use.

Each runs aiohttp in its own thread and loop, so tests (sync or async) can
start the real integration as a process pointed at it, then read what it
received and tell it to answer 429 or 500 next.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import deque
from html import unescape
from typing import Any

from aiohttp import web


class FakeServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.loop = asyncio.new_event_loop()
        self.lock = threading.Lock()
        self.failures: deque[tuple[int, dict[str, Any], dict[str, str]]] = deque()  # (status, body, headers)
        self.refused: list[float] = []  # when each scripted failure was answered
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        self.routes(app)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)  # a client may still be polling
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, self.host, 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._started.set()
        self.loop.run_forever()

    def start(self) -> FakeServer:
        self._thread.start()
        self._started.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def fail_next(self, status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        with self.lock:
            self.failures.append((status, body or {}, headers or {}))

    def drop_next(self) -> None:
        """The next request gets no answer: the connection is cut (a network error for the client)."""
        self.fail_next(0)

    def _scripted_failure(self, request: web.Request) -> web.Response | None:
        with self.lock:
            if not self.failures:
                return None
            status, body, headers = self.failures.popleft()
            self.refused.append(time.monotonic())
        if status == 0:
            request.transport.abort()
            return web.Response()  # never reaches the client
        return web.json_response(body, status=status, headers=headers)


class FakeDiscord(FakeServer):
    """A webhook endpoint that records every accepted post."""

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[dict[str, Any]] = []
        self.accepted_at: list[float] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/webhooks/123/secret-token"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/webhooks/{id}/{token}", self.execute)

    async def execute(self, request: web.Request) -> web.Response:
        failure = self._scripted_failure(request)
        if failure is not None:
            return failure
        body = await request.json()
        with self.lock:
            self.posts.append(body)
            self.accepted_at.append(time.monotonic())
            number = len(self.posts)
        return web.json_response({"id": str(1000 + number), "channel_id": "42", "embeds": body.get("embeds", [])})

    def embeds(self) -> list[dict[str, Any]]:
        with self.lock:
            return [e for post in self.posts for e in post.get("embeds", [])]


class FakeTelegram(FakeServer):
    """The Bot API methods secmon-tg uses: getMe, getUpdates, sendMessage, setMyCommands, …"""

    TOKEN = "123456:TEST-token"

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.sent: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.commands: list[dict[str, Any]] = []
        self._updates: list[dict[str, Any]] = []
        self._update_id = 0
        self._message_id = 0
        self._new_update: asyncio.Event | None = None

    @property
    def api_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/bot{{token}}"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/bot{token}/{method}", self.method)

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            return await request.json()
        data = dict(await request.post())
        for key, value in list(data.items()):
            if isinstance(value, str) and value[:1] in "[{":
                try:
                    data[key] = json.loads(value)
                except ValueError:
                    pass
        return data

    async def method(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.TOKEN:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        name = request.match_info["method"]
        params = await self._params(request)
        with self.lock:
            self.calls.append(name)
        if name == "getMe":
            return ok({"id": 999, "is_bot": True, "first_name": "SecMon", "username": "secmon_test_bot"})
        if name in ("deleteWebhook", "setMyCommands", "sendChatAction", "close", "logOut"):
            if name == "setMyCommands":
                self.commands = params.get("commands", [])
            return ok(True)
        if name == "getUpdates":
            return ok(await self._get_updates(params))
        if name in ("sendMessage", "editMessageText"):
            if name == "sendMessage":
                failure = self._scripted_failure(request)
                if failure is not None:
                    return failure
            with self.lock:
                self._message_id += 1
                record = {**params, "method": name, "message_id": self._message_id}
                self.sent.append(record)
            chat_id = int(params.get("chat_id", 0))
            return ok(
                {
                    "message_id": int(params.get("message_id") or self._message_id),
                    "date": int(time.time()),
                    "chat": {"id": chat_id, "type": "private"},
                    "text": params.get("text", ""),
                }
            )
        return web.json_response({"ok": False, "error_code": 404, "description": f"Not Found: {name}"}, status=404)

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), 1.0)  # keep long polls short: tests stop quickly
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                pending = [u for u in self._updates if u["update_id"] >= offset]
            if pending or time.monotonic() >= deadline:
                return pending
            await asyncio.sleep(0.02)

    def send_text(self, user_id: int, text: str) -> int:
        """A message from ``user_id`` to the bot, as getUpdates will deliver it; its message id."""
        with self.lock:
            self._update_id += 1
            message = self._message(user_id, 10_000 + self._update_id, text)
            self._updates.append({"update_id": self._update_id, "message": message})
            return int(message["message_id"])

    def send_edited(self, user_id: int, message_id: int, text: str) -> None:
        """``user_id`` edits their message ``message_id`` to ``text``: an ``edited_message`` update."""
        with self.lock:
            self._update_id += 1
            message = self._message(user_id, message_id, text)
            message["edit_date"] = message["date"]
            self._updates.append({"update_id": self._update_id, "edited_message": message})

    @staticmethod
    def _message(user_id: int, message_id: int, text: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Operator"},
            "text": text,
        }
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return message

    def messages_to(self, chat_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.sent if int(m.get("chat_id", 0)) == chat_id]

    def texts(self, chat_id: int) -> list[str]:
        """What the user of ``chat_id`` reads: markup removed, entities decoded."""
        return [unescape(re.sub(r"<[^>]+>", "", m["text"])) for m in self.messages_to(chat_id)]


def ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


class ChaosProxy:
    """A TCP forwarder between nodes and the hub that can cut every connection on demand."""

    def __init__(self, upstream_port: int) -> None:
        import socket as _socket

        self.upstream_port = upstream_port
        self._listener = _socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._pairs: list[tuple] = []
        self._lock = threading.Lock()
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket as _socket

        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = _socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pipe(source, sink) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(2)
            except OSError:
                pass

    def cut(self) -> None:
        """Reset every open connection, as a broken network path would."""
        import socket as _socket
        import struct

        with self._lock:
            pairs, self._pairs = self._pairs, []
            self.cuts += 1
        for pair in pairs:
            for s in pair:
                try:
                    s.setsockopt(_socket.SOL_SOCKET, _socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._listener.close()
        self.cut()
