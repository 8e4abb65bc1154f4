"""`secmon-http`: serve the HTTP bridge and dashboard until stopped."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING
from urllib.parse import quote

from secmon.config import configure_logging
from secmon.errors import SecmonError

from .tokens import DEFAULT_NAME

if TYPE_CHECKING:
    from .config import HttpSettings

USAGE = """\
usage: secmon-http           serve the HTTP API and dashboard on SERVER_IP:SERVER_PORT
       secmon-http help      show this help

environment:
  SERVER_IP, SERVER_PORT   listen address (default 127.0.0.1:9993)
  HTTP_TOKEN_FILE          file holding the token, or lines "NAME TOKEN", one per person or
                           script (default: one made at first start, kept in
                           SECMON_STATE_DIR or ~/.config/secmon/http-token)
  HTTP_NO_TOKEN            true: no token, on loopback only (any local user and page can use it)
  SERVER_NAMES             host names the bridge answers to besides localhost and IP addresses
  SERVER_ORIGINS           origins besides its own allowed to run commands (a proxy's https://name)
  SECMON_SOCKET            the hub's socket (default: /run/secmon.sock for root)

The start-up log prints the dashboard's URL with its (first) token once; scripts
send a token as "Authorization: Bearer TOKEN". A token's name is who acts in the
hub's command audit and mute rules: http:NAME ("default" for a lone token).
"""


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("help", "-h", "--help"):
        print(USAGE, end="")
        return
    if args:
        print(f"secmon-http: unknown argument {args[0]!r}; see `secmon-http help`", file=sys.stderr)
        sys.exit(2)
    from .config import HttpSettings

    try:
        configure_logging()
        settings = HttpSettings.from_env()
    except SecmonError as exc:
        print(f"secmon-http: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    try:
        asyncio.run(serve(settings))
    except OSError as exc:
        print(
            f"secmon-http: cannot listen on {settings.server_ip}:{settings.server_port}: {exc.strerror}",
            file=sys.stderr,
        )
        sys.exit(1)


async def serve(settings: HttpSettings) -> None:
    """Serve until SIGTERM or SIGINT; logs the bound address (SERVER_PORT=0 picks a free one)."""
    from aiohttp import web

    from .app import make_app

    runner = web.AppRunner(make_app(settings), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.server_ip, settings.server_port)
        await site.start()
        host, port = runner.addresses[0][:2]
        log = logging.getLogger("secmon.http")
        log.info("serving on http://%s", _netloc(host, port))
        shown = _netloc("127.0.0.1" if host in ("0.0.0.0", "::") else host, port)
        tokens = settings.tokens
        if tokens is None:
            log.warning("HTTP_NO_TOKEN is set: every local user and every page this browser opens can use the bridge")
            log.info("dashboard: http://%s/", shown)
        else:
            name, token = tokens.first
            where = (
                f"the token is in {settings.token_file}"
                if len(tokens.by_name) == 1 and name == DEFAULT_NAME
                else f"token {name!r} of the {len(tokens.by_name)} in {settings.token_file}"
            )
            log.info("dashboard: http://%s/?token=%s (%s)", shown, quote(token, safe=""), where)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


if __name__ == "__main__":
    main()
