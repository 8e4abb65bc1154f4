"""The mute rules book: the rules in force, how one is checked and added, which match an event.

A rule matches an auth event when every field it sets matches (``source``: the
event's host is an address inside the rule's address or network; ``user`` and
``kind`` exactly; ``node``: the serial, hostname or address of the event's
node). A success flagged new for its user is muted only by a rule that names its
kind. A rule stops matching at its expiry at once (the caller's clock);
``expire`` takes it out of the book so the hub can say so. Ids increase and are
never used twice, across restarts: the book is ``mutes.json`` in the state
directory when the hub has one (written whole, then renamed), in memory otherwise.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import state_directory
from ..errors import ConfigError
from ..protocol import messages as m
from ..protocol.kinds import LABELS as KIND_LABELS

log = logging.getLogger("secmon.hub")

FILE = "mutes.json"
MAX_MUTES = 1_000  # rules in force at most: each is checked against every event, so a runaway script is stopped
MAX_REASON = 500  # characters of a reason: a sentence, not a document
MAX_FIELD = 256  # characters of a user or node matcher: longer matches nothing a node sends

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BadMute(ValueError):
    """An AddMute the book refuses; the text names the field."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A rule with its source parsed once."""

    rule: m.MuteRule
    network: Network | None


def _network(source: str) -> Network:
    try:
        return ipaddress.ip_network(source.strip(), strict=False)
    except ValueError:
        raise BadMute(f"source: {source[:100]!r} is not an IP address or CIDR network") from None


def check_request(request: m.AddMute) -> None:
    """Raise BadMute naming the first field of ``request`` that a rule cannot have."""
    if request.source is None and request.user is None and request.node is None and request.kind is None:
        raise BadMute("a mute rule needs at least one of source, user, node, kind")
    if request.source is not None:
        _network(request.source)
    for name in ("user", "node"):
        value = getattr(request, name)
        if value is not None and not 0 < len(value) <= MAX_FIELD:
            raise BadMute(f"{name}: must be 1 to {MAX_FIELD} characters")
    if request.kind is not None and request.kind not in KIND_LABELS:
        raise BadMute(f"kind: {request.kind[:100]!r} is not a known event kind")
    if request.duration is not None and not (request.duration > 0 and math.isfinite(request.duration)):
        raise BadMute(f"duration: must be a finite number of seconds above 0, got {request.duration!r}")
    if len(request.reason) > MAX_REASON:
        raise BadMute(f"reason: at most {MAX_REASON} characters, got {len(request.reason)}")


class MuteBook:
    """The mute rules in force; persisted in ``directory`` when given."""

    def __init__(self, directory: Path | None) -> None:
        """Load the book (ConfigError with one line when its file cannot be read)."""
        self.path = state_directory(directory) / FILE if directory is not None else None
        self.next_id = 1
        self.by_id: dict[int, _Compiled] = {}  # the rules in force, compiled (others only read it)
        if self.path is not None and self.path.exists():
            self._load(self.path)

    def _load(self, path: Path) -> None:
        try:
            saved = json.loads(path.read_text())
            self.next_id = int(saved["next_id"])
            for raw in saved["rules"]:
                rule = m.MuteRule(**raw)
                self.by_id[rule.id] = _Compiled(rule, _network(rule.source) if rule.source is not None else None)
        except (OSError, ValueError, KeyError, TypeError, BadMute) as exc:
            raise ConfigError(f"SECMON_STATE_DIR: cannot read the mute rules in {path}: {exc}") from None

    def _save(self) -> None:
        if self.path is None:
            return
        body = {"next_id": self.next_id, "rules": [dataclasses.asdict(c.rule) for c in self.by_id.values()]}
        tmp = self.path.with_name(FILE + ".tmp")
        with open(tmp, "w") as file:
            json.dump(body, file)
            file.flush()
            os.fsync(file.fileno())
        tmp.replace(self.path)

    def __bool__(self) -> bool:
        return bool(self.by_id)

    def rules(self) -> list[m.MuteRule]:
        """Every rule in the book, by id."""
        return [self.by_id[rule_id].rule for rule_id in sorted(self.by_id)]

    def add(self, request: m.AddMute, by: str, now: float) -> m.MuteRule:
        """Add the rule ``request`` asks for, made by ``by`` at ``now``; BadMute names what is wrong."""
        check_request(request)
        if len(self.by_id) >= MAX_MUTES:
            raise BadMute(f"at most {MAX_MUTES} mute rules; remove one first")
        source = str(_network(request.source)) if request.source is not None else None
        if source is not None and source.endswith(("/32", "/128")):
            source = source.rsplit("/", 1)[0]  # one address reads as one
        expires = now + request.duration if request.duration is not None else None
        rule = m.MuteRule(self.next_id, source, request.user, request.node, request.kind, now, expires,
                          request.reason, by)  # fmt: skip
        self.next_id += 1
        self.by_id[rule.id] = _Compiled(rule, _network(source) if source is not None else None)
        self._save_or_undo(rule.id)
        return rule

    def _save_or_undo(self, rule_id: int) -> None:
        try:
            self._save()
        except OSError as exc:
            self.by_id.pop(rule_id, None)
            raise BadMute(f"the rule could not be saved: {exc.strerror or exc}") from None

    def remove(self, rule_id: int) -> m.MuteRule | None:
        """Take rule ``rule_id`` out; None when there is none."""
        compiled = self.by_id.pop(rule_id, None)
        if compiled is None:
            return None
        self._save_or_log()
        return compiled.rule

    def _save_or_log(self) -> None:
        """Save after a rule left: it is out of force at once, whether or not the disk takes it."""
        try:
            self._save()
        except OSError as exc:
            log.error("mute rules: could not save %s: %s", self.path, exc.strerror or exc)

    def expire(self, now: float) -> list[m.MuteRule]:
        """Take out and return the rules whose expiry is ``now`` or before."""
        gone = [c.rule for c in self.by_id.values() if c.rule.expires is not None and c.rule.expires <= now]
        if gone:
            for rule in gone:
                del self.by_id[rule.id]
            self._save_or_log()
        return gone

    def matching(self, event: Mapping[str, Any], node: tuple[str, str, str], new: bool, now: float) -> list[int]:
        """The ids of the rules in force at ``now`` that match ``event`` (an AuthEvent's map) from
        ``node`` (its serial as text, hostname, address); ``new``: a success new for its user."""
        found: list[int] = []
        host_address: Any = False  # not parsed yet
        kind = event["kind"]
        for rule_id, compiled in self.by_id.items():
            rule = compiled.rule
            if rule.expires is not None and rule.expires <= now:
                continue
            if new and rule.kind is None:
                continue
            if rule.kind is not None and rule.kind != kind:
                continue
            if rule.user is not None and rule.user != event.get("user"):
                continue
            if rule.node is not None and rule.node not in node:
                continue
            if compiled.network is not None:
                if host_address is False:
                    host_address = _address(event.get("host"))
                if host_address is None or host_address not in compiled.network:
                    continue
            found.append(rule_id)
        return found


def _address(host: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not isinstance(host, str):
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
