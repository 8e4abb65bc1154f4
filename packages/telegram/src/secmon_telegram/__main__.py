"""`secmon-tg [upd] [exec]`: a single-user Telegram bot for the fleet."""

from __future__ import annotations

import logging
import sys

USAGE = """\
usage: secmon-tg [upd] [exec]   run the bot; upd pushes ssh/su/sudo events and the hub's notices,
                                exec allows commands
       secmon-tg help           show this help

messages from the user:
  list, -, /list           all nodes
  NODE                     one node (serial, hostname or address)
  NODE LABEL, - LABEL      run an allowed command (with exec)
  /mute MATCHERS [for DURATION] [reason TEXT]
                           a mute rule on the hub: CIDR, user:U, node:N, kind:K (all must match)
  /mutes, /unmute ID       the rules in force; remove one

environment:
  TELEGRAM_BOT_TOKEN       the bot's token (required)
  TELEGRAM_USER_ID         the one user the bot answers (required)
  COMMAND_ALLOWLIST_FILE   labels the bot may run, one a line (default: none)
  TIMEZONE                 IANA zone for times shown and QUIET_HOURS, or local (default: local)
  QUIET_HOURS              e.g. 22:00-07:00: hold back all but critical pushes, then one digest (default: none)
  IPV4ONLY                 true to reach Telegram over IPv4 only (default: false)
  TELEGRAM_API_URL         Bot API base URL, {token} allowed (default: Telegram's)
  SECMON_FOLD_WINDOW       seconds over which failures from one source fold (default: 60)
  NODE_WAIT_TIMEOUT        seconds a command waits for its node (default: 0)
  SECMON_SOCKET            the hub's socket
"""


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("help", "-h", "--help"):
        print(USAGE, end="")
        return
    unknown = [a for a in args if a not in ("upd", "exec")]
    if unknown:
        print(f"secmon-tg: unknown argument {unknown[0]!r}; see `secmon-tg help`", file=sys.stderr)
        sys.exit(2)
    from secmon.config import configure_logging
    from secmon.errors import SecmonError, single_error

    from .config import BotSettings

    try:
        configure_logging()
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
        settings = BotSettings.from_env()
        import anyio

        from .bot import SecmonBot

        bot = SecmonBot(settings, updates="upd" in args, execute="exec" in args)
        try:
            anyio.run(bot.run)
        except BaseExceptionGroup as group:
            raise single_error(group) from None
    except SecmonError as exc:
        print(f"secmon-tg: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception as exc:  # python-telegram-bot's errors at start-up (bad token, no network)
        from telegram.error import TelegramError

        if not isinstance(exc, TelegramError):
            raise
        print(f"secmon-tg: Telegram: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
