"""Errors a SecMon user or integration can see, each with one clear line of text.

    SecmonError
    ├── ConfigError          an environment variable, argument or file is unusable (exit 2)
    │   └── StateCorrupt     a state database cannot be read; the text says how to move it aside
    └── HubError             something went wrong talking to the hub
        ├── HubUnavailable   no hub answers on the socket, or it went away
        │   └── HubRefused   we may not use it: the socket's permissions, or the hub's uid check
        ├── RequestFailed    the hub answered a request with an error
        │   ├── UnknownNode  no node matches the query
        │   └── NotAllowed   the node's allowlist has no such label
        └── SubscriptionLost the hub ended our subscription (e.g. we read too slowly)

Protocol faults live in ``secmon.protocol.errors``; the client library maps
them to HubError at its edge.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from shlex import quote


class SecmonError(Exception):
    """Base of every error meant for a user; ``str()`` is the line to show."""

    exit_code = 1


class ConfigError(SecmonError):
    """Raised when an environment variable or argument is malformed, or a file it names is unusable.

    ``variable`` is the environment variable at fault when there is one: `secmon check`
    unsets it and parses again, so one run lists every malformed variable.
    """

    exit_code = 2

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


class StateCorrupt(ConfigError):
    """Raised when a database under SECMON_STATE_DIR is not one SQLite can read."""

    def __init__(self, path: Path, reason: str) -> None:
        # SQLite's -wal and -shm files belong to the database: left behind, they would be replayed into a new one.
        files = [path, *(p for p in (Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())]
        moves = " && ".join(f"mv {quote(str(p))} {quote(f'{p}.corrupt')}" for p in files)
        super().__init__(
            f"state database {path} is unreadable ({reason}); move it aside ({moves}) to start with an empty store"
        )
        self.path = path


class HubError(SecmonError):
    """Raised when talking to the hub fails."""


class HubUnavailable(HubError):
    """Raised when the hub's socket cannot be reached or the connection drops."""


class HubRefused(HubUnavailable):
    """Raised when this user may not use the hub: the socket denies access, or the hub refused us."""


class RequestFailed(HubError):
    """Raised when the hub answers a request with an error message; ``code`` says which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class UnknownNode(RequestFailed):
    """Raised when no node matches a serial, hostname or address."""


class NotAllowed(RequestFailed):
    """Raised when a command label is refused."""


class BadQuery(RequestFailed):
    """Raised when the hub cannot answer a history query as asked; the text names the parameter."""


class SubscriptionLost(HubError):
    """Raised when the hub ends a subscription; ``last_seq`` is where to resume."""

    def __init__(self, message: str, last_seq: int) -> None:
        super().__init__(message)
        self.last_seq = last_seq


def single_error(group: BaseExceptionGroup) -> BaseException:
    """The one exception a task group wrapped, or the group itself if there are several.

    anyio wraps even a lone error from a task group body in an ExceptionGroup;
    APIs unwrap it so callers can catch the documented types.
    """
    leaves = list(_leaves(group))
    return leaves[0] if len(leaves) == 1 else group


def _leaves(group: BaseExceptionGroup) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc
