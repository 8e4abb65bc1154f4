"""The vocabulary of notices: what the hub tells beyond auth events, how urgent each is, one label each.

A notice (messages.NoticeUpdate) is decided once, on the hub, and shown by
every medium in its own words; like ``kinds``, this module is the one place
those words and the urgency come from. ``critical`` is what quiet hours never
hold back: a node gone silent, and the auth events an operator must see at
once (an accepted login from somewhere new for that user, a success after
failures from its source).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from . import messages as m
from .kinds import FAILURE_KINDS

NODE_DOWN = "node_down"
NODE_BACK = "node_back"
COLLECTOR_FAILED = "collector_failed"
COLLECTOR_OK = "collector_ok"
MUTE_ADDED = "mute_added"
MUTE_REMOVED = "mute_removed"
MUTE_EXPIRED = "mute_expired"
SOURCE_FAILING = "source_failing"
COMMAND_RUN = "command_run"

NOTICE_KINDS = frozenset(
    {NODE_DOWN, NODE_BACK, COLLECTOR_FAILED, COLLECTOR_OK, MUTE_ADDED, MUTE_REMOVED, MUTE_EXPIRED,
     SOURCE_FAILING, COMMAND_RUN}
)  # fmt: skip

# What an accepted login was the first of, for its user (EventContext.new).
NEW_HOST = "host"
NEW_ASN = "asn"
NEW_COUNTRY = "country"

# Seconds a mute rule may last at most: ten years. Longer is a typo (and a time no JSON form can
# write); a rule that never expires leaves its duration out.
MAX_MUTE_DURATION = 3_650 * 86_400.0

# Names and users a notice lists at most (SourceFailures.nodes, .users); its counts say the rest.
MAX_LISTED = 10

CRITICAL = "critical"
WARNING = "warning"
INFO = "info"

SEVERITY: Mapping[str, str] = MappingProxyType(
    {
        NODE_DOWN: CRITICAL,
        NODE_BACK: INFO,
        COLLECTOR_FAILED: WARNING,
        COLLECTOR_OK: INFO,
        MUTE_ADDED: INFO,
        MUTE_REMOVED: INFO,
        MUTE_EXPIRED: INFO,
        SOURCE_FAILING: WARNING,
        COMMAND_RUN: INFO,
    }
)

LABELS: Mapping[str, str] = MappingProxyType(
    {
        NODE_DOWN: "Node down",
        NODE_BACK: "Node back",
        COLLECTOR_FAILED: "Collector failing",
        COLLECTOR_OK: "Collector working again",
        MUTE_ADDED: "Mute rule added",
        MUTE_REMOVED: "Mute rule removed",
        MUTE_EXPIRED: "Mute rule expired",
        SOURCE_FAILING: "Failures from one source across the fleet",
        COMMAND_RUN: "Command run",
    }
)


def requester_text(requester: m.Requester) -> str:
    """Who asked, in words every medium shows: "alice (uid 1000)", "telegram:42 @alice via secmon (uid 998)"."""
    user = f"{requester.user} (uid {requester.uid})" if requester.user else f"uid {requester.uid}"
    return f"{requester.on_behalf} via {user}" if requester.on_behalf else user


def label(kind: str) -> str:
    """The human label of a notice kind; one this version does not know, in words."""
    return LABELS.get(kind) or kind.replace("_", " ")


def severity(kind: str) -> str:
    """How urgent a notice of ``kind`` is; an unknown kind is a warning."""
    return SEVERITY.get(kind, WARNING)


def is_critical(update: m.AuthUpdate | m.NoticeUpdate) -> bool:
    """Whether quiet hours must let this through: a node down (and its node back: an operator woken
    by the one must not wait for the morning to learn of the other), a login from somewhere new for
    its user, or a success after failures from its source."""
    if type(update) is m.NoticeUpdate:
        return severity(update.kind) == CRITICAL or update.kind == NODE_BACK
    assert type(update) is m.AuthUpdate
    context = update.context
    if context is None or update.event.kind in FAILURE_KINDS:
        return False
    return bool(context.new) or context.after_failures > 0


def for_notifiers(update: m.AuthUpdate) -> bool:
    """Whether chat notifiers tell this auth event at all: not when a mute rule matches it,
    nor when a source_failing notice already covers it."""
    context = update.context
    return context is None or (not context.muted and not context.summarized)
