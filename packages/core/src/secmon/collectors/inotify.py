"""Being told when a file changes, instead of looking: Linux inotify through libc.

The node follows the auth log and reads utmp. Polling them costs a wake-up
many times a second on every server and still reports late. A watch on the
file wakes the node when it is written; a watch on its directory, for names
appearing, moving and disappearing only (so a busy neighbour such as syslog
does not wake us), sees rotation and creation. Where inotify is unavailable
(another OS, no libc symbol, the watch limit reached, a missing directory)
``FileWatch.open`` returns None and the caller polls as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import struct
from pathlib import Path

import anyio

log = logging.getLogger("secmon.node")

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
# On the directory: entries appearing, going, or changing permissions (filtered by our name).
DIRECTORY_EVENTS = IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
# On the file itself (whichever inode has its name now): its content and permissions.
FILE_EVENTS = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE
# Something happened that may concern our file without naming it: the queue overflowed,
# or the directory itself went away.
UNNAMED = IN_Q_OVERFLOW | IN_DELETE_SELF | IN_MOVE_SELF
EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name
READ_SIZE = 64 * 1024


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    except (OSError, AttributeError):
        return None
    return libc


class FileWatch:
    """Wakes when one file changes: a watch on the file and one on its directory's entries."""

    def __init__(self, libc: ctypes.CDLL, fd: int, directory: int, path: Path) -> None:
        self._libc = libc
        self._fd = fd
        self._directory = directory  # the directory's watch descriptor; any other is the file's
        self._path = os.fsencode(path)
        self._name = os.fsencode(path.name)
        self._watch_file()

    @classmethod
    def open(cls, path: Path) -> FileWatch | None:
        """A watch for ``path`` (which need not exist yet), or None where inotify cannot serve."""
        libc = _libc()
        if libc is None:
            return None
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            log.info("inotify unavailable (%s); polling %s", os.strerror(ctypes.get_errno()), path)
            return None
        directory = libc.inotify_add_watch(fd, os.fsencode(path.parent), DIRECTORY_EVENTS)
        if directory < 0:
            log.info("cannot watch %s (%s); polling it", path.parent, os.strerror(ctypes.get_errno()))
            os.close(fd)
            return None
        return cls(libc, fd, directory, path)

    def _watch_file(self) -> None:
        """Watch the inode the name points at now (the same one again is a no-op; absent is fine)."""
        self._libc.inotify_add_watch(self._fd, self._path, FILE_EVENTS)

    def fileno(self) -> int:
        return self._fd

    async def changed(self, timeout: float) -> bool:
        """Wait until the file changes (True) or ``timeout`` passes (False)."""
        with anyio.move_on_after(timeout):
            while True:
                await anyio.wait_readable(self._fd)
                if self._drain():
                    self._watch_file()  # after a rotation, the new file
                    return True
        return False

    def _drain(self) -> bool:
        """Read every queued event; whether any concerns our file."""
        hit = False
        while True:
            try:
                data = os.read(self._fd, READ_SIZE)
            except BlockingIOError:
                return hit
            offset = 0
            while offset + EVENT.size <= len(data):
                wd, mask, _cookie, length = EVENT.unpack_from(data, offset)
                start = offset + EVENT.size
                offset = start + length
                if wd != self._directory or mask & UNNAMED or data[start:offset].rstrip(b"\0") == self._name:
                    hit = True

    def close(self) -> None:
        if self._fd >= 0:
            anyio.notify_closing(self._fd)
            os.close(self._fd)
            self._fd = -1
