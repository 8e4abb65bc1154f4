"""secmon-tg settings from the environment, with one-line errors."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path

from secmon.config import env_bool, env_float, env_optional, env_path, env_str
from secmon.errors import ConfigError
from secmon.quiet import QuietHours, parse_timezone

DEFAULT_API_URL = "https://api.telegram.org/bot"
_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]{5,}$")


@dataclass(frozen=True, slots=True)
class BotSettings:
    token: str
    user_id: int
    ipv4_only: bool
    timezone: tzinfo | None  # None: the machine's local time
    allowlist: Path | None  # labels the bot may run (one a line); none means no command runs
    api_url: str
    fold_window: float
    node_wait: float
    quiet_hours: QuietHours | None = None  # hold back all but critical pushes within it, then a digest

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BotSettings:
        env = os.environ if env is None else env
        token = env_str(env, "TELEGRAM_BOT_TOKEN", "")
        if not token:
            raise ConfigError("TELEGRAM_BOT_TOKEN is required: the token @BotFather gave you")
        if not _TOKEN.match(token):
            raise ConfigError("TELEGRAM_BOT_TOKEN does not look like a bot token (digits, a colon, then letters)")
        user = env_str(env, "TELEGRAM_USER_ID", "")
        if not user:
            raise ConfigError("TELEGRAM_USER_ID is required: the numeric id of the one user the bot answers")
        if not user.lstrip("-").isdigit():
            raise ConfigError(f"TELEGRAM_USER_ID must be a number, got {user!r}")
        timezone = parse_timezone(env_str(env, "TIMEZONE", "local"))
        quiet = env_optional(env, "QUIET_HOURS")
        return cls(
            token=token,
            user_id=int(user),
            ipv4_only=env_bool(env, "IPV4ONLY", False),
            timezone=timezone,
            allowlist=env_path(env, "COMMAND_ALLOWLIST_FILE"),
            api_url=env_str(env, "TELEGRAM_API_URL", DEFAULT_API_URL),
            fold_window=env_float(env, "SECMON_FOLD_WINDOW", 60.0),
            node_wait=env_float(env, "NODE_WAIT_TIMEOUT", 0.0),
            quiet_hours=QuietHours.parse(quiet, timezone) if quiet else None,
        )


def read_labels(path: Path | None) -> set[str]:
    """The bot-side allowlist: one label a line, # comments; re-read on each request."""
    if path is None:
        return set()
    try:
        text = path.read_text()
    except OSError:
        return set()
    return {line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")}
