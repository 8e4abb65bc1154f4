"""The bot: Telegram in (messages from the one user), the hub out, and pushes.

python-telegram-bot runs inside our own event loop (initialize/start/
start_polling … stop/shutdown). Every message we send goes through
``Outbox.send``, which waits out 429s (retry_after) and network errors, so
nothing is dropped while Telegram slows us down.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from telegram import BotCommand, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import Application, ApplicationBuilder, CommandHandler, ContextTypes, MessageHandler, filters
from telegram.request import HTTPXRequest

from secmon.client import HubClient
from secmon.errors import HubError
from secmon.folding import Notice
from secmon.notify import relay_auth_events
from secmon.protocol import messages as m
from secmon.signals import cancel_on_signal

from . import format as fmt
from .config import BotSettings, read_labels

log = logging.getLogger("secmon.telegram")

MAX_BACKOFF = 60.0
COMMANDS = [
    BotCommand("start", "what this bot does"),
    BotCommand("help", "the messages it understands"),
    BotCommand("list", "all nodes"),
]


class Outbox:
    """Sends HTML messages, retrying until Telegram takes them."""

    def __init__(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        self.bot = application.bot

    async def send(self, chat_id: int, text: str) -> None:
        delay = 1.0
        while True:
            try:
                await self.bot.send_message(chat_id, text, parse_mode=ParseMode.HTML, disable_web_page_preview=True)
                return
            except RetryAfter as exc:
                wait = exc.retry_after.total_seconds() if hasattr(exc.retry_after, "total_seconds") else exc.retry_after
                log.warning("Telegram rate limit: waiting %.1f s", wait)
                await anyio.sleep(float(wait))
            except (BadRequest, Forbidden) as exc:
                log.error("Telegram refused a message for good: %s", exc)
                return
            except (TimedOut, NetworkError) as exc:
                log.warning("Telegram unreachable (%s); retrying in %.0f s", exc, delay)
                await anyio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)


class SecmonBot:
    def __init__(self, settings: BotSettings, updates: bool, execute: bool) -> None:
        self.settings = settings
        self.updates = updates
        self.execute = execute
        self._strangers: set[int] = set()
        request_kwargs: dict[str, Any] = {}
        if settings.ipv4_only:
            import httpx

            request_kwargs["httpx_kwargs"] = {"transport": httpx.AsyncHTTPTransport(local_address="0.0.0.0")}
        self.app = (
            ApplicationBuilder()
            .token(settings.token)
            .base_url(settings.api_url)
            .concurrent_updates(True)  # a running command must not hold up other messages
            .request(HTTPXRequest(**request_kwargs))
            .get_updates_request(HTTPXRequest(read_timeout=30, **request_kwargs))
            .build()
        )
        self.outbox = Outbox(self.app)
        only_owner = filters.User(user_id=settings.user_id)
        self.app.add_handler(MessageHandler(~only_owner, self.on_stranger), group=0)
        self.app.add_handler(CommandHandler(["start", "help"], self.on_help, filters=only_owner), group=1)
        self.app.add_handler(CommandHandler("list", self.on_list, filters=only_owner), group=1)
        self.app.add_handler(MessageHandler(only_owner & filters.TEXT & ~filters.COMMAND, self.on_text), group=1)

    async def reply(self, text: str) -> None:
        await self.outbox.send(self.settings.user_id, text)

    async def on_stranger(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        user = update.effective_user
        user_id = user.id if user else 0
        if user_id not in self._strangers:
            self._strangers.add(user_id)
            log.warning("ignoring messages from user %d (only %d is answered)", user_id, self.settings.user_id)

    async def on_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        extra = []
        extra.append("Pushing ssh, su and sudo events." if self.updates else "Event pushes are off (start with upd).")
        extra.append("Commands are enabled." if self.execute else "Commands are off (start with exec).")
        await self.reply(fmt.HELP + "\n\n" + " ".join(extra))

    async def on_list(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._answer(["list"])

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None and message.text is not None  # the handler's filters.TEXT lets only text in
        await self._answer(message.text.split())

    async def _answer(self, words: list[str]) -> None:
        try:
            if words in (["list"], ["-"]):
                async with HubClient.connect() as hub:
                    await self.reply(fmt.node_list(await hub.list_nodes()))
            elif len(words) == 1:
                async with HubClient.connect() as hub:
                    await self.reply(fmt.node_details(await hub.find_node(words[0]), self.settings.timezone))
            elif len(words) == 2:
                await self._run(words[0], words[1])
            else:
                await self.reply(fmt.HELP)
        except HubError as exc:
            await self.reply(f"⚠️ {fmt.escape(str(exc))}")

    async def _run(self, target: str, label: str) -> None:
        if not self.execute:
            await self.reply("Commands are off: start the bot with <code>exec</code> to allow them.")
            return
        if label not in read_labels(self.settings.allowlist):
            await self.reply(f"⛔ <code>{fmt.escape(label)}</code> is not in this bot's allowlist.")
            return
        await self.reply(f"⏳ running <code>{fmt.escape(label)}</code> on <b>{fmt.escape(target)}</b>…")
        async with HubClient.connect() as hub:
            names = {n.serial: n.hostname for n in await hub.list_nodes()}
            async for item in hub.execute(target, label, stream=False, wait=self.settings.node_wait):
                if type(item) is m.Started and not item.serials:
                    await self.reply("No node is connected.")
                elif type(item) is m.CommandResult:
                    await self.reply(fmt.command_result(item, names.get(item.serial, f"node {item.serial}")))

    async def push(self, notice: Notice) -> None:
        await self.reply(fmt.event_message(notice, self.settings.timezone))

    async def run(self) -> None:
        async with self.app:
            await self.app.bot.set_my_commands(COMMANDS)
            await self.app.start()
            updater = self.app.updater
            assert updater is not None  # the builder makes one unless told not to
            await updater.start_polling(poll_interval=0.0, timeout=20)
            log.info("bot polling for messages from user %d", self.settings.user_id)
            try:
                async with anyio.create_task_group() as tg:
                    if self.updates:
                        tg.start_soon(lambda: relay_auth_events(self.push, window=self.settings.fold_window))
                    await cancel_on_signal(tg.cancel_scope, log)
            finally:
                await updater.stop()
                await self.app.stop()
