"""The bot: Telegram in (messages from the one user), the hub out, and pushes.

Everything the bot asks of the hub for its user (commands, mute rules) carries
``on_behalf`` = ``telegram:<user id> @<username>``, so the hub's audit and its
mute notices say who it was.

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
from secmon.mutewords import MuteWordsError
from secmon.notify import Outgoing, relay_updates
from secmon.protocol import messages as m
from secmon.signals import cancel_on_signal

from . import format as fmt
from .config import BotSettings, read_labels
from .mutes import parse_mute, parse_rule_id

log = logging.getLogger("secmon.telegram")

MAX_BACKOFF = 60.0
COMMANDS = [
    BotCommand("start", "what this bot does"),
    BotCommand("help", "the messages it understands"),
    BotCommand("list", "all nodes"),
    BotCommand("mute", "stop pushes that match: CIDR user:U node:N kind:K [for 2h] [reason ...]"),
    BotCommand("mutes", "the mute rules in force"),
    BotCommand("unmute", "remove a mute rule: /unmute ID"),
]

EDIT_IGNORED = "✏️ Edits are ignored: send the message again as a new one to act on it."


def on_behalf(user_id: int, username: str | None) -> str:
    """Who the bot acts for, as the hub records it: "telegram:42 @alice" ("telegram:42" without a username)."""
    return f"telegram:{user_id} @{username}" if username else f"telegram:{user_id}"


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
        owner = filters.User(user_id=settings.user_id)
        # New messages only: an edit of an old "web-1 reboot" or "/mute ..." must not act again.
        only_owner = owner & filters.UpdateType.MESSAGE
        self.app.add_handler(MessageHandler(~owner, self.on_stranger), group=0)
        self.app.add_handler(CommandHandler(["start", "help"], self.on_help, filters=only_owner), group=1)
        self.app.add_handler(CommandHandler("list", self.on_list, filters=only_owner), group=1)
        self.app.add_handler(CommandHandler("mute", self.on_mute, filters=only_owner), group=1)
        self.app.add_handler(CommandHandler("unmute", self.on_unmute, filters=only_owner), group=1)
        self.app.add_handler(CommandHandler("mutes", self.on_mutes, filters=only_owner), group=1)
        self.app.add_handler(MessageHandler(only_owner & filters.TEXT & ~filters.COMMAND, self.on_text), group=1)
        # After group 1, so an answer to an edit comes once every other handler has passed it by.
        self.app.add_handler(MessageHandler(owner & filters.UpdateType.EDITED_MESSAGE, self.on_edit), group=2)

    async def reply(self, text: str) -> None:
        await self.outbox.send(self.settings.user_id, text)

    async def on_stranger(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        user = update.effective_user
        user_id = user.id if user else 0
        if user_id not in self._strangers:
            self._strangers.add(user_id)
            log.warning("ignoring messages from user %d (only %d is answered)", user_id, self.settings.user_id)

    async def on_edit(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """An edited message does nothing: say so, rather than leave the owner to wonder."""
        await self.reply(EDIT_IGNORED)

    async def on_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        extra = []
        if self.updates:
            extra.append(
                "Pushing ssh, su and sudo events and the hub's notices (node down, mute changes, commands run)."
            )
            quiet = self.settings.quiet_hours
            if quiet is not None:
                extra.append(f"Quiet hours {fmt.escape(quiet.text)}: only critical pushes, then one digest.")
        else:
            extra.append("Event pushes are off (start with upd).")
        extra.append("Commands are enabled." if self.execute else "Commands are off (start with exec).")
        await self.reply(fmt.HELP + "\n\n" + " ".join(extra))

    async def on_list(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._answer(["list"], _acting_for(update))

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None and message.text is not None  # the handler's filters.TEXT lets only text in
        await self._answer(message.text.split(), _acting_for(update))

    async def on_mute(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            request = parse_mute(list(context.args or []))
            async with HubClient.connect() as hub:
                rule = await hub.add_mute(**request.arguments(), on_behalf=_acting_for(update))
            await self.reply("🔇 Mute rule added: " + fmt.mute_rule(rule, self.settings.timezone))
        except (MuteWordsError, HubError) as exc:
            await self.reply(f"⚠️ {fmt.escape(str(exc))}")

    async def on_unmute(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            rule_id = parse_rule_id(list(context.args or []))
            async with HubClient.connect() as hub:
                rule = await hub.remove_mute(rule_id, on_behalf=_acting_for(update))
            await self.reply("🔊 Mute rule removed: " + fmt.mute_rule(rule, self.settings.timezone))
        except (MuteWordsError, HubError) as exc:
            await self.reply(f"⚠️ {fmt.escape(str(exc))}")

    async def on_mutes(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            async with HubClient.connect() as hub:
                await self.reply(fmt.mute_list(await hub.mutes(), self.settings.timezone))
        except HubError as exc:
            await self.reply(f"⚠️ {fmt.escape(str(exc))}")

    async def _answer(self, words: list[str], behalf: str) -> None:
        try:
            if words in (["list"], ["-"]):
                async with HubClient.connect() as hub:
                    await self.reply(fmt.node_list(await hub.list_nodes()))
            elif len(words) == 1:
                async with HubClient.connect() as hub:
                    await self.reply(fmt.node_details(await hub.find_node(words[0]), self.settings.timezone))
            elif len(words) == 2:
                await self._run(words[0], words[1], behalf)
            else:
                await self.reply(fmt.HELP)
        except HubError as exc:
            await self.reply(f"⚠️ {fmt.escape(str(exc))}")

    async def _run(self, target: str, label: str, behalf: str) -> None:
        if not self.execute:
            await self.reply("Commands are off: start the bot with <code>exec</code> to allow them.")
            return
        if label not in read_labels(self.settings.allowlist):
            await self.reply(f"⛔ <code>{fmt.escape(label)}</code> is not in this bot's allowlist.")
            return
        await self.reply(f"⏳ running <code>{fmt.escape(label)}</code> on <b>{fmt.escape(target)}</b>…")
        async with HubClient.connect() as hub:
            names = {n.serial: n.hostname for n in await hub.list_nodes()}
            items = hub.execute(target, label, stream=False, wait=self.settings.node_wait, on_behalf=behalf)
            async for item in items:
                if type(item) is m.Started and not item.serials:
                    await self.reply("No node is connected.")
                elif type(item) is m.CommandResult:
                    await self.reply(fmt.command_result(item, names.get(item.serial, f"node {item.serial}")))

    async def push(self, item: Outgoing) -> None:
        await self.reply(fmt.message(item, self.settings.timezone))

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
                        tg.start_soon(
                            lambda: relay_updates(
                                self.push, window=self.settings.fold_window, quiet=self.settings.quiet_hours
                            )
                        )
                    await cancel_on_signal(tg.cancel_scope, log)
            finally:
                await updater.stop()
                await self.app.stop()


def _acting_for(update: Update) -> str:
    user = update.effective_user
    return on_behalf(user.id, user.username) if user is not None else "telegram"
