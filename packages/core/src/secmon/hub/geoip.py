"""GeoIP context for event sources: the operator's MaxMind-format databases, read with ``maxminddb``.

``GeoIP`` owns the two optional files (a City and an ASN database), their
re-reading when one changes on disk (its mtime or size, looked at no more than
once every CHECK_EVERY seconds of the clock the caller passes in), and a bounded
cache of answers per address. What it answers is a ``SourceContext``; an address
the databases say nothing of, a host name, and addresses that are nobody's to
locate (loopback, private, link-local, shared) get None. Documentation ranges
are located like any other: the tests' databases use them.

Each file is copied whole into memory of the hub's own (an anonymous memfd the C
reader maps; MODE_MEMORY where there is no C reader), never mapped from the file
itself: a file rewritten in place (``cp new.mmdb GeoLite2-City.mmdb``) cannot pull
pages from under a lookup (SIGBUS), and a half-written one is refused by the
re-read, which keeps the copy it has.

``maxminddb`` is the optional extra ``secmon-core[geoip]``: a missing package, or
a file it cannot read, is a ConfigError with one line.
"""

from __future__ import annotations

import importlib
import ipaddress
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..protocol import messages as m

log = logging.getLogger("secmon.hub")

CHECK_EVERY = 5.0  # seconds between looks at the files' mtime and size: a stat per lookup would cost more than it
CACHE_SIZE = 20_000  # addresses whose answer is kept: a busy fleet's sources for a while, a few MB at most

# Addresses that are nobody's to locate: what a GeoIP database cannot place. Not ``is_global``,
# which also leaves out the documentation ranges the tests use.
_NOWHERE = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8",
    )
)  # fmt: skip


def locatable(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address in ``host`` when a GeoIP database could place it; None for names and local ranges."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in _NOWHERE if network.version == address.version):
        return None
    return address


def _text(record: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(record, dict):
            return None
        record = record.get(key)
    return record


@dataclass(slots=True)
class _Database:
    """One open database file and what its file looked like when it was opened."""

    path: Path
    reader: Any
    stamp: tuple[int, int]
    refused: tuple[int, int] | None = None  # the stamp of a version of the file that could not be read


def _stamp(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_mtime_ns, info.st_size


def _private_reader(maxminddb: Any, path: Path) -> tuple[Any, tuple[int, int]]:
    """A reader of a copy of ``path`` no one else can change, and the stamp of what was copied.

    The C reader (about seven times faster than the pure-Python one) maps a file, so it is
    given an anonymous memfd holding the bytes; a file that changed while it was read is
    refused (OSError), to be tried again at the next check."""
    stamp = _stamp(path)
    data = path.read_bytes()
    if _stamp(path) != stamp or len(data) != stamp[1]:
        raise OSError(0, "it changed while it was read")
    try:
        importlib.import_module("maxminddb.extension")
        memfd = os.memfd_create(f"secmon-{path.name}", os.MFD_CLOEXEC)
    except (ImportError, AttributeError, OSError):  # no C reader, or no memfd: the pure-Python copy
        return maxminddb.open_database(str(path), maxminddb.MODE_MEMORY), stamp
    try:
        with open(memfd, "wb", closefd=False) as file:
            file.write(data)
        return maxminddb.open_database(f"/proc/self/fd/{memfd}", maxminddb.MODE_MMAP_EXT), stamp
    except OSError:  # no /proc to reach the memfd by: the pure-Python copy
        return maxminddb.open_database(str(path), maxminddb.MODE_MEMORY), stamp
    finally:
        os.close(memfd)  # the mapping keeps the copy alive


def _open(path: Path, variable: str) -> _Database:
    """Open a database; ConfigError naming ``variable`` when the package or the file is not there."""
    try:
        import maxminddb
    except ImportError:
        raise ConfigError(
            f"{variable} needs the maxminddb package: pip install 'secmon-core[geoip]'", variable
        ) from None
    try:
        reader, stamp = _private_reader(maxminddb, path)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{variable}: cannot read {path}: {why}", variable) from None
    return _Database(path, reader, stamp)


class GeoIP:
    """The hub's GeoIP databases (either may be absent): lookups per address, cached, re-read on change."""

    def __init__(self, city: Path | None, asn: Path | None, now: float = 0.0) -> None:
        """Open the files given; ConfigError (one line) when one cannot be read. ``now``: the caller's clock."""
        self.city = _open(city, "GEOIP_CITY_DB") if city is not None else None
        self.asn = _open(asn, "GEOIP_ASN_DB") if asn is not None else None
        self._cache: OrderedDict[str, m.SourceContext | None] = OrderedDict()
        self._next_check = now + CHECK_EVERY

    def lookup(self, host: str, now: float) -> m.SourceContext | None:
        """What the databases say of ``host`` (None for nothing); ``now`` paces the look at the files."""
        if now >= self._next_check:
            self.reload_changed(now)
        cache = self._cache
        if host in cache:
            cache.move_to_end(host)
            return cache[host]
        context = self._find(host)
        cache[host] = context
        if len(cache) > CACHE_SIZE:
            cache.popitem(last=False)
        return context

    def _find(self, host: str) -> m.SourceContext | None:
        address = locatable(host)
        if address is None:
            return None
        country = country_name = city = org = None
        asn = None
        try:
            if self.city is not None:
                record = self.city.reader.get(address)
                country = _text(record, "country", "iso_code")
                country_name = _text(record, "country", "names", "en")
                city = _text(record, "city", "names", "en")
            if self.asn is not None:
                record = self.asn.reader.get(address)
                asn = _text(record, "autonomous_system_number")
                org = _text(record, "autonomous_system_organization")
        except Exception as exc:  # a damaged file must not stop the relay: no context for this one
            log.warning("geoip: lookup of %s failed: %s", host, exc)
            return None
        fields = {"country": country, "country_name": country_name, "city": city, "org": org}
        clean: dict[str, Any] = {key: value if isinstance(value, str) else None for key, value in fields.items()}
        clean["asn"] = asn if type(asn) is int and 0 <= asn < 2**32 else None
        if not any(value is not None for value in clean.values()):
            return None
        return m.SourceContext(**clean)

    def reload_changed(self, now: float) -> None:
        """Re-open a file whose mtime or size changed (the cache is emptied); a file that cannot be
        read now keeps the old one in use, and the log says so."""
        self._next_check = now + CHECK_EVERY
        for attribute, variable in (("city", "GEOIP_CITY_DB"), ("asn", "GEOIP_ASN_DB")):
            database: _Database | None = getattr(self, attribute)
            if database is None:
                continue
            stamp = (-1, -1)  # the file is gone
            try:
                stamp = _stamp(database.path)
                if stamp in (database.stamp, database.refused):
                    continue
                fresh = _open(database.path, variable)
            except (OSError, ConfigError) as exc:
                if database.refused != stamp:  # said once per change of the file, not at every look
                    log.warning("geoip: keeping the loaded %s: %s", variable, exc)
                database.refused = stamp
                continue
            log.info("geoip: %s changed on disk; re-read %s", variable, database.path)
            database.reader.close()
            setattr(self, attribute, fresh)
            self._cache.clear()

    def close(self) -> None:
        """Close the files."""
        for database in (self.city, self.asn):
            if database is not None:
                database.reader.close()
