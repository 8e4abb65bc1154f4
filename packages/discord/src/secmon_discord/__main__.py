"""`secmon-dc`: push auth events and the hub's notices to a Discord channel through a webhook."""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
import time
from collections.abc import Mapping
from datetime import tzinfo
from functools import partial
from urllib.parse import urlsplit

import aiohttp
import anyio

from secmon.config import configure_logging, env_float, env_optional, env_str
from secmon.errors import ConfigError, SecmonError, single_error
from secmon.folding import Notice
from secmon.notify import Outgoing, relay_updates
from secmon.protocol import messages as m
from secmon.quiet import QuietHours, parse_timezone
from secmon.signals import cancel_on_signal

from .format import embed, embed_for, payload
from .webhook import Webhook, WebhookRejected, WebhookUnreachable

log = logging.getLogger("secmon.discord")

TEST_PATIENCE = 6.0  # seconds `secmon-dc test` waits for Discord: someone is watching the terminal

USAGE = """\
usage: secmon-dc          push ssh, su and sudo events and the hub's notices to Discord
       secmon-dc test     send a test message and show Discord's answer
       secmon-dc help     show this help

pushed: auth events (with GeoIP, 🆕 new-source and ⚠️ after-failures flags), unless a
mute rule or a fleet-wide failure summary covers them; notices: node down/back,
collector failing/ok, mute rule added/removed/expired, failures from one source
across the fleet, command run; with QUIET_HOURS, one digest when the window ends.

environment:
  DISCORD_WEBHOOK_URL       the channel's webhook (required)
  DISCORD_MESSAGE_CONTENT   text above each embed (default: none)
  SECMON_FOLD_WINDOW        seconds over which failures from one source fold into one embed (60)
  QUIET_HOURS               e.g. 22:00-07:00: hold back all but critical pushes, then one digest (none)
  TIMEZONE                  IANA zone for QUIET_HOURS and times shown, or local (local)
  SECMON_SOCKET             the hub's socket
"""


def webhook_url(env: Mapping[str, str]) -> str:
    url = env_optional(env, "DISCORD_WEBHOOK_URL")
    if url is None:
        raise ConfigError("DISCORD_WEBHOOK_URL is required: the webhook URL from the channel's integrations")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or "/webhooks/" not in parts.path:
        raise ConfigError(
            "DISCORD_WEBHOOK_URL must be a webhook URL like https://discord.com/api/webhooks/ID/TOKEN, "
            f"got {url[:80]!r}"
        )
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ConfigError("DISCORD_WEBHOOK_URL must use https (plain http is allowed only to loopback)")
    return url


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def send_test(url: str, content: str) -> int:
    event = m.AuthEvent(0, time.time(), "ssh_accepted", "secmon-dc", None, "test", None, None, "test")
    notice = Notice(m.AuthUpdate(0, 0, "secmon-dc", "test", event))
    body = payload([{**embed(notice), "title": "✅ SecMon test message"}], content)
    async with aiohttp.ClientSession() as session:
        answer = await Webhook(url, session).post_within(body, TEST_PATIENCE)
    print(f"Discord accepted the test message (id {answer.get('id', '?')} in channel {answer.get('channel_id', '?')})")
    return 0


async def run(url: str, content: str, window: float, quiet: QuietHours | None, tz: tzinfo | None) -> None:
    async with aiohttp.ClientSession() as session:
        webhook = Webhook(url, session)

        async def deliver(item: Outgoing) -> None:
            try:
                await webhook.post(payload([embed_for(item, tz)], content))
            except WebhookRejected as exc:
                log.error("%s (%s not delivered)", exc, _what(item))

        log.info("pushing auth events and notices to Discord")
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(relay_updates, deliver, window=window, quiet=quiet))
            await cancel_on_signal(tg.cancel_scope, log)


def _what(item: Outgoing) -> str:
    if type(item) is Notice:
        return f"event seq {item.update.seq}"
    if type(item) is m.NoticeUpdate:
        return f"notice seq {item.seq}"
    return "the quiet hours digest"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("help", "-h", "--help"):
        print(USAGE, end="")
        return
    if args not in ([], ["test"]):
        print(f"secmon-dc: unknown argument {args[0]!r}; see `secmon-dc help`", file=sys.stderr)
        sys.exit(2)
    # The test's own answer is its one line; its retries are logged only when asked for.
    default_level = "ERROR" if args == ["test"] else "INFO"
    try:
        configure_logging(default_level=default_level)
        url = webhook_url(os.environ)
        content = env_str(os.environ, "DISCORD_MESSAGE_CONTENT", "")
        window = env_float(os.environ, "SECMON_FOLD_WINDOW", 60.0)
        tz = parse_timezone(env_str(os.environ, "TIMEZONE", "local"))
        quiet_text = env_optional(os.environ, "QUIET_HOURS")
        quiet = QuietHours.parse(quiet_text, tz) if quiet_text else None
        try:
            if args == ["test"]:
                sys.exit(anyio.run(send_test, url, content))
            anyio.run(run, url, content, window, quiet, tz)
        except BaseExceptionGroup as group:
            raise single_error(group) from None
    except (SecmonError, WebhookRejected, WebhookUnreachable) as exc:
        print(f"secmon-dc: {exc}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 1))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
