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
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import state_directory
from ..errors import ConfigError
from ..protocol import messages as m
from ..protocol.errors import InvalidMessage
from ..protocol.kinds import LABELS as KIND_LABELS
from ..protocol.notices import MAX_MUTE_DURATION
from ..protocol.queries import time_problem
from ..protocol.schema import record_converter

log = logging.getLogger("secmon.hub")

FILE = "mutes.json"
MAX_MUTES = 1_000  # rules in force at most: a runaway script is stopped (an event checks only the rules indexed for it)
MAX_REASON = 500  # characters of a reason: a sentence, not a document
MAX_FIELD = 256  # characters of a user or node matcher: longer matches nothing a node sends
MAX_BY = 1_000  # characters of who made a rule: a cut on_behalf and a user name, with room to spare

# C0 (newline, tab, escape, ...), DEL and C1: no node sends a user or host name with one, and a matcher or
# reason is shown on one line in every chat and terminal
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_TEXT = "must not hold control characters (newline, tab, escapes)"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
NodeNames = tuple[str, str, str]  # an event's node: serial as text, hostname, address


class BadMute(ValueError):
    """An AddMute the book refuses; the text names the field."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A rule with its source parsed once."""

    rule: m.MuteRule
    network: Network | None


def _network(source: str) -> Network:
    """The network ``source`` names; an IPv4-mapped one (``::ffff:192.0.2.0/120``) as the IPv4 network
    it is, since events from such hosts are matched by their IPv4 address."""
    try:
        network = ipaddress.ip_network(source.strip(), strict=False)
    except ValueError:
        raise BadMute(f"source: {source[:100]!r} is not an IP address or CIDR network") from None
    if network.version == 6 and network.prefixlen >= 96 and network.network_address.ipv4_mapped is not None:
        return ipaddress.ip_network(f"{network.network_address.ipv4_mapped}/{network.prefixlen - 96}")
    return network


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
        if value is not None and _CONTROL.search(value):
            raise BadMute(f"{name}: {_CONTROL_TEXT}")
    if request.kind is not None and request.kind not in KIND_LABELS:
        raise BadMute(f"kind: {request.kind[:100]!r} is not a known event kind")
    if request.duration is not None and not 0 < request.duration <= MAX_MUTE_DURATION:
        raise BadMute(f"duration: must be more than 0 s and at most ten years, got {request.duration!r}")
    if len(request.reason) > MAX_REASON:
        raise BadMute(f"reason: at most {MAX_REASON} characters, got {len(request.reason)}")
    if _CONTROL.search(request.reason):
        raise BadMute(f"reason: {_CONTROL_TEXT}")


class MuteBook:
    """The mute rules in force; persisted in ``directory`` when given."""

    def __init__(self, directory: Path | None) -> None:
        """Load the book (ConfigError with one line when its file cannot be read)."""
        self.path = state_directory(directory) / FILE if directory is not None else None
        self.next_id = 1
        self.by_id: dict[int, _Compiled] = {}  # the rules in force, compiled (others only read it)
        self._index: _RuleIndex | None = None  # of by_id, built at the first match after a change
        if self.path is not None and self.path.exists():
            self._load(self.path)

    def _load(self, path: Path) -> None:
        """Read the book: every rule is checked as a MuteRule from the wire and as an AddMute, so a
        hand-edited file the hub cannot trust stops it at start with one line, not later."""
        try:
            saved = json.loads(path.read_text())
            if not isinstance(saved, dict) or not isinstance(saved.get("rules"), list):
                raise BadMute('expected {"next_id": N, "rules": [...]}')
            next_id = saved.get("next_id")
            if type(next_id) is not int or next_id < 1:
                raise BadMute(f"next_id: expected a whole number above 0, got {next_id!r}"[:200])
            self.next_id = next_id
            convert = record_converter(m.MuteRule)
            for index, raw in enumerate(saved["rules"]):
                rule = convert(raw, f"rules[{index}]")
                try:
                    self._check_saved(rule)
                except BadMute as exc:
                    raise BadMute(f"rules[{index}].{exc}") from None
                self.by_id[rule.id] = _Compiled(rule, _network(rule.source) if rule.source is not None else None)
        except (OSError, ValueError, InvalidMessage) as exc:  # BadMute is a ValueError
            raise ConfigError(f"SECMON_STATE_DIR: cannot read the mute rules in {path}: {exc}") from None

    def _check_saved(self, rule: m.MuteRule) -> None:
        """What ``add`` would have made: BadMute naming the field when ``rule`` is not."""
        if not 0 < rule.id < self.next_id or rule.id in self.by_id:
            raise BadMute(f"id: {rule.id} is not a new id below next_id {self.next_id}")
        check_request(m.AddMute(0, rule.source, rule.user, rule.node, rule.kind, None, rule.reason))
        for problem in (
            time_problem(rule.created, "created"),
            None if rule.expires is None else time_problem(rule.expires, "expires"),
        ):
            if problem is not None:
                raise BadMute(problem)
        if len(rule.by) > MAX_BY:
            raise BadMute(f"by: at most {MAX_BY} characters, got {len(rule.by)}")

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
        self._index = None
        self._save_or_undo(rule.id)
        return rule

    def _save_or_undo(self, rule_id: int) -> None:
        try:
            self._save()
        except OSError as exc:
            self.by_id.pop(rule_id, None)
            self._index = None
            raise BadMute(f"the rule could not be saved: {exc.strerror or exc}") from None

    def remove(self, rule_id: int) -> m.MuteRule | None:
        """Take rule ``rule_id`` out; None when there is none."""
        compiled = self.by_id.pop(rule_id, None)
        if compiled is None:
            return None
        self._index = None
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
            self._index = None
            self._save_or_log()
        return gone

    def matching(self, event: Mapping[str, Any], node: tuple[str, str, str], new: bool, now: float) -> list[int]:
        """The ids of the rules in force at ``now`` that match ``event`` (an AuthEvent's map) from
        ``node`` (its serial as text, hostname, address); ``new``: a success new for its user.

        Only the rules the index finds for the event's user, node names, source and kind are
        checked: a few dictionary looks per event, however many rules there are."""
        index = self._index
        if index is None:
            index = self._index = _RuleIndex(self.by_id.values())
        host_address: Any = _address(event.get("host")) if index.by_network else False  # False: not parsed yet
        found: list[int] = []
        for compiled in index.candidates(event, node, host_address if host_address is not False else None):
            rule = compiled.rule
            if rule.expires is not None and rule.expires <= now:
                continue
            if new and rule.kind is None:
                continue
            if rule.kind is not None and rule.kind != event["kind"]:
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
            found.append(rule.id)
        return found


class _RuleIndex:
    """The rules by the one field each is looked up by: its user, else its node, else its source
    network, else its kind (every rule sets one). An event's candidates are the rules under its user,
    its node's three names, each network that holds its source, and its kind; the full check follows."""

    def __init__(self, rules: Iterable[_Compiled]) -> None:
        self.by_user: dict[str, list[_Compiled]] = {}
        self.by_node: dict[str, list[_Compiled]] = {}
        self.by_kind: dict[str, list[_Compiled]] = {}
        # (IP version, prefix length) → the network's leading bits → its rules: one look per length in use
        self.by_network: dict[tuple[int, int], dict[int, list[_Compiled]]] = {}
        for compiled in rules:
            rule, network = compiled.rule, compiled.network
            if rule.user is not None:
                self.by_user.setdefault(rule.user, []).append(compiled)
            elif rule.node is not None:
                self.by_node.setdefault(rule.node, []).append(compiled)
            elif network is not None:
                shift = network.max_prefixlen - network.prefixlen
                buckets = self.by_network.setdefault((network.version, network.prefixlen), {})
                buckets.setdefault(int(network.network_address) >> shift, []).append(compiled)
            elif rule.kind is not None:
                self.by_kind.setdefault(rule.kind, []).append(compiled)

    def candidates(self, event: Mapping[str, Any], node: NodeNames, address: Address | None) -> list[_Compiled]:
        """The rules that may match ``event``, by id (one rule at most once)."""
        found: list[_Compiled] = []
        user = event.get("user")
        if user is not None and self.by_user:
            found += self.by_user.get(user, ())
        if self.by_node:
            for name in dict.fromkeys(node):
                found += self.by_node.get(name, ())
        if address is not None:
            bits = int(address)
            for (version, prefixlen), buckets in self.by_network.items():
                if version == address.version:
                    found += buckets.get(bits >> (address.max_prefixlen - prefixlen), ())
        if self.by_kind:
            found += self.by_kind.get(event["kind"], ())
        if len(found) > 1:
            found.sort(key=_by_id)
        return found


def _by_id(compiled: _Compiled) -> int:
    return compiled.rule.id


def _address(host: Any) -> Address | None:
    if not isinstance(host, str):
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
