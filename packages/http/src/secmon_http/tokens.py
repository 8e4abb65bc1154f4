"""The bridge's tokens and the names they carry, without I/O.

``HTTP_TOKEN_FILE`` holds either one token, named ``default``, or one
``NAME TOKEN`` pair a line (blank lines and ``#`` comments allowed), one per
person or script. Any of them opens the bridge; the name is who acts, so the
hub's audit and its mute rules say ``http:NAME``. A file that is neither form
is refused with one line naming the line at fault: a half-read token file
would lock someone out, or in, without a word.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from secmon.errors import ConfigError

DEFAULT_NAME = "default"
NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")
MIN_TOKEN_LENGTH = 16  # characters; shorter ones fall to guessing over a fast loopback link
MAX_TOKENS = 1_000  # pairs one file may hold: one per person or script, not a user database
COOKIE_UNSAFE = frozenset(' ",;\\')  # what a cookie value may not hold (RFC 6265 cookie-octet)
ANONYMOUS = "http"  # who acts when the operator turned the token off (loopback only)


@dataclass(frozen=True, slots=True)
class TokenSet:
    """The accepted tokens by name, in the file's order."""

    by_name: Mapping[str, str]

    def __post_init__(self) -> None:
        if not self.by_name:
            raise ValueError("a TokenSet holds at least one token")

    def identify(self, offered: str) -> str | None:
        """The name of the token ``offered`` is, or None. Every token is compared, in constant
        time each, so how long the answer takes says nothing about which one came close."""
        # surrogateescape: a header of undecodable bytes is a wrong token, not a 500
        offered_bytes = offered.encode("utf-8", "surrogateescape")
        found = None
        for name, token in self.by_name.items():
            if hmac.compare_digest(offered_bytes, token.encode()) and found is None:
                found = name
        return found

    @property
    def first(self) -> tuple[str, str]:
        """The first name and token of the file: the one the start-up log's dashboard URL carries."""
        return next(iter(self.by_name.items()))


def single(token: str) -> TokenSet:
    """One token, named ``default`` (a generated one)."""
    return TokenSet(MappingProxyType({DEFAULT_NAME: token}))


def parse_token_file(text: str, where: str) -> TokenSet:
    """The tokens of a token file's ``text``; ConfigError (one line, naming ``where`` and the line) otherwise."""
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line and not line.startswith("#"):
            lines.append((number, line))
    if not lines:
        raise ConfigError(f"{where} holds no token")
    if len(lines) == 1 and len(lines[0][1].split()) == 1:
        number, token = lines[0]
        _check_token(token, where, number)
        return single(token)
    if len(lines) > MAX_TOKENS:
        raise ConfigError(f"{where} holds {len(lines)} tokens; at most {MAX_TOKENS}")
    tokens: dict[str, str] = {}
    seen: dict[str, int] = {}
    for number, line in lines:
        fields = line.split()
        if len(fields) != 2:
            raise ConfigError(
                f"{where}, line {number}: expected NAME TOKEN (or a single token alone in the file), "
                f"got {len(fields)} fields"
            )
        name, token = fields
        if not NAME.fullmatch(name):
            raise ConfigError(  # not echoed: a line written TOKEN NAME would put the token in the log
                f"{where}, line {number}: a NAME is 1 to 32 of A-Z a-z 0-9 _ . - and comes before its TOKEN"
            )
        if name in tokens:
            raise ConfigError(f"{where}, line {number}: the name {name!r} is given twice")
        _check_token(token, where, number)
        if token in seen:
            raise ConfigError(f"{where}, line {number}: the same token as line {seen[token]}; each name needs its own")
        tokens[name] = token
        seen[token] = number
    return TokenSet(MappingProxyType(tokens))


def _check_token(token: str, where: str, number: int) -> None:
    # the token is never echoed: the error line goes to logs others may read
    if not (token.isascii() and token.isprintable()) or set(token) & COOKIE_UNSAFE:
        raise ConfigError(
            f"{where}, line {number}: a token is printable ASCII without spaces, quotes, commas, "
            "semicolons or backslashes (it travels in a cookie)"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"{where}, line {number}: a token of {len(token)} characters is too short; "
            f"at least {MIN_TOKEN_LENGTH} (e.g. openssl rand -hex 32)"
        )
