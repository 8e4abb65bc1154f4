"""The hub's Unix socket on the file system: its directory, its permissions, a stale one left behind.

Start-up only (server.py calls these before and after binding): the socket
must be reachable by the hub's own user, root and, with SECMON_SOCKET_GROUP,
that group's members, and by no one else, and a hub must not start over a
live one.
"""

from __future__ import annotations

import errno
import grp
import logging
import os
import socket
import stat
from pathlib import Path

from ..errors import ConfigError, SecmonError

log = logging.getLogger("secmon.hub")


def socket_group_id(group: str | None) -> int | None:
    """The gid of SECMON_SOCKET_GROUP, or None without one; ConfigError when no such group exists."""
    if group is None:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f"SECMON_SOCKET_GROUP: no group named {group!r}") from None


def check_socket_directory(path: Path) -> None:
    """The socket's directory must not let others replace the socket."""
    info = path.parent.stat()
    if info.st_mode & 0o022 and info.st_uid != 0 and not info.st_mode & 0o1000:
        raise SecmonError(f"{path.parent} is writable by others; put SECMON_SOCKET in a private directory")
    if info.st_mode & 0o002 and not info.st_mode & 0o1000:
        raise SecmonError(f"{path.parent} is writable by everyone; put SECMON_SOCKET in a private directory")


def make_socket_directory(directory: Path, gid: int | None) -> None:
    """Create the socket's directory if it is missing: 0700, or 0750 owned by SECMON_SOCKET_GROUP.

    An existing directory is left as it is (systemd's RuntimeDirectory= makes its own), but
    a group that could not pass through it is told about at start-up.
    """
    try:
        directory.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        info = directory.stat()
        if gid is not None and not group_may_enter(info, gid):
            log.warning(
                "members of SECMON_SOCKET_GROUP cannot reach the socket: %s is mode %04o, group %d; "
                "make it 0750 with that group (RuntimeDirectoryMode=0750 and Group= in a systemd unit)",
                directory,
                stat.S_IMODE(info.st_mode),
                info.st_gid,
            )
        return
    if gid is not None:
        try:
            os.chown(directory, -1, gid)
        except OSError as exc:
            raise SecmonError(f"cannot give {directory} to SECMON_SOCKET_GROUP: {os_reason(exc)}") from None
        directory.chmod(0o750)


def group_may_enter(info: os.stat_result, gid: int) -> bool:
    """Whether members of ``gid`` may pass through a directory with this stat."""
    return bool(info.st_mode & 0o001 or (info.st_gid == gid and info.st_mode & 0o010))


def share_with_group(path: Path, gid: int | None) -> None:
    """With SECMON_SOCKET_GROUP, the group may connect too (0660); its members pass the uid check."""
    if gid is not None:
        os.chown(path, -1, gid)
        path.chmod(0o660)


def os_reason(exc: OSError) -> str:
    """The system's short text for an error (loops wrap bind errors in longer sentences)."""
    return os.strerror(exc.errno) if exc.errno else str(exc)


def check_existing_socket(path: Path) -> None:
    """Refuse to start over a live hub; remove a stale socket."""
    if not path.exists() and not path.is_symlink():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK):
            path.unlink(missing_ok=True)
            log.info("removed stale socket %s", path)
            return
        raise SecmonError(f"cannot use socket {path}: {exc.strerror}") from None
    finally:
        probe.close()
    raise SecmonError(f"a hub is already running on {path}")
