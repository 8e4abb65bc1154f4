"""The hub's TCP side: one connection per node.

A node must say hello (right version, right token) before the handshake
deadline; then its state updates and auth events are applied and broadcast,
its command output is relayed to the client that asked, and everything it
sends that is not meant for a hub ends the connection with an error.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, field
from typing import Any

from ..link import HandshakeFailed
from ..protocol import messages as m
from ..protocol.batches import EventOrigin, EventRun
from ..protocol.codec import Decoded
from .hub import Hub, Relay
from .registry import FLAP_WINDOW, NodeEntry, Takeover
from .wire import HubLink

log = logging.getLogger("secmon.hub")

# A node sends little; its queue holds commands and acks. 1,000 frames is far past normal.
NODE_QUEUE = 1_000
# Acks go out every this many events, and otherwise once a second: an ack per event would cost
# a frame and a wake-up per event, and the node's journal holds a second's worth easily.
ACK_EVERY = 1_000


@dataclass(eq=False)
class NodeConnection:
    hub: Hub
    link: HubLink
    entry: NodeEntry
    relays: set[Relay] = field(default_factory=set)
    unacknowledged: int = 0  # events taken since the last Ack
    origin: EventOrigin = field(init=False)  # what subscribers are told about where the events come from

    def __post_init__(self) -> None:
        entry = self.entry  # its serial, hostname and address stay as they are while this connection holds it
        self.origin = EventOrigin(entry.serial, entry.hostname, entry.address)

    def on_event_run(self, run: EventRun) -> None:
        """A read that brought only auth events (the steady state: one event): dedup, broadcast, ack.

        Does exactly what ``on_messages([run])`` does; one new event skips its loop.
        """
        events = run.events
        entry = self.entry
        if len(events) == 1 and (seq := events[0]["seq"]) > entry.last_event_seq:
            entry.last_event_seq = seq
            if self.hub.outages.returning:  # back after node_down: its node_back counts what it kept
                self.hub.returning_events(entry.serial, events)
            self.hub.publish_events(entry, run, self.origin)
            self.unacknowledged += 1
            if self.unacknowledged >= ACK_EVERY:
                self.acknowledge()
        else:
            self._on_batch([run])

    def on_messages(self, batch: list[Decoded]) -> None:
        """What a node sent in one read, in order; the connection has let through only what a node may send."""
        if len(batch) == 1 and type(batch[0]) is EventRun:
            self.on_event_run(batch[0])
        else:
            self._on_batch(batch)

    def _on_batch(self, batch: list[Decoded]) -> None:
        hub = self.hub
        entry = self.entry
        fresh: list[dict[str, Any]] = []  # this read's new events
        pieces: list[tuple[int, bytes]] | None = []  # their bytes (see EventRun), while all are known
        events_seen = False
        for message in batch:
            if type(message) is EventRun:  # narrowed on the variable itself, so mypy follows it
                events_seen = True
                taken = len(fresh)
                for event in message.events:
                    seq = event["seq"]
                    if seq > entry.last_event_seq:  # a resend repeats what we hold; order is enforced
                        entry.last_event_seq = seq
                        fresh.append(event)
                if pieces is not None:
                    if message.pieces is not None and len(fresh) - taken == len(message.events):
                        pieces += message.pieces
                    else:
                        pieces = None
            elif type(message) is m.StateUpdate:
                hub.node_state(entry, message)
            elif type(message) is m.CommandOutput:
                relay = self._relay(message.request_id)
                if relay is not None:
                    relay.answered = True
                    relay.client.link.send(m.CommandOutput(relay.request_id, message.data, relay.serial))
            elif type(message) is m.CommandResult:
                relay = self._relay(message.request_id)
                if relay is not None:
                    result = m.CommandResult(
                        relay.request_id,
                        message.status,
                        message.exit_code,
                        message.output,
                        message.message,
                        relay.serial,
                    )
                    hub.finish_relay(relay, result)
        if fresh:
            if hub.outages.returning:
                hub.returning_events(entry.serial, fresh)
            hub.publish_events(entry, EventRun(fresh, pieces), self.origin)
        if events_seen:
            self.unacknowledged += len(fresh) or 1
            if self.unacknowledged >= ACK_EVERY:
                self.acknowledge()

    def acknowledge(self) -> None:
        """Tell the node what the hub now holds; the hub also calls this about once a second."""
        if self.unacknowledged:
            self.unacknowledged = 0
            self.link.send(m.Ack(self.entry.last_event_seq))

    def _relay(self, hub_id: int) -> Relay | None:
        relay = self.hub.relays.get(hub_id)
        return relay if relay is not None and relay.node is self else None

    def fail_relays(self, why: str) -> None:
        for relay in list(self.relays):
            result = m.CommandResult(relay.request_id, m.ERROR, message=why, serial=relay.serial)
            self.hub.finish_relay(relay, result)


def check_node_hello(hub: Hub, hello: m.Hello) -> str | None:
    """Why the hub will not serve the node of this hello (the connection has checked its form), or None."""
    if hub.token is not None and not hmac.compare_digest(hello.token.encode(), hub.token.encode()):
        return "wrong or missing token"
    if len(hub.nodes) >= hub.settings.max_nodes:
        return f"the hub already serves its limit of {hub.settings.max_nodes} nodes"
    return hub.join_refusal(hello)


def report_takeover(serial: int, takeover: Takeover) -> None:
    """Log a node pushing another out of its hostname: a warning with the remedy when they flap."""
    if takeover.report:
        log.warning(
            "hostname %r is used by two nodes (%s, node id %.8s, and %s, node id %.8s) that keep replacing each "
            "other as node %d; set SECMON_HOSTNAME on one of them, or ASSUME_HOSTNAME_UNIQUE=false on the hub "
            "(reported once per %.0f minutes)",
            takeover.hostname,
            takeover.old_address,
            takeover.old_node_id,
            takeover.new_address,
            takeover.new_node_id,
            serial,
            FLAP_WINDOW / 60,
        )
    elif not takeover.flapping:
        log.info(
            "node %d (%s): a node with another id (from %s) took over from the one at %s",
            serial,
            takeover.hostname,
            takeover.new_address,
            takeover.old_address,
        )


async def serve_node(hub: Hub, link: HubLink) -> None:
    """Serve one node connection to its end; never raises."""
    address = link.peer
    try:
        try:
            hello = await link.handshake()
        except HandshakeFailed as exc:
            log.warning("node %s: %s", address, exc)
            await link.finish()
            return
        refusal = check_node_hello(hub, hello)
        if refusal is not None:
            log.warning("node %s refused: %s", address, refusal)
            await link.refuse("refused", refusal)
            return
        entry = await hub.join_node(hello, address)
        if entry.takeover is not None:
            report_takeover(entry.serial, entry.takeover)
        conn = (hub.node_connection_type or NodeConnection)(hub, link, entry)
        link.send(m.Welcome(m.PROTOCOL_VERSION, entry.serial, entry.last_event_seq, link.keepalive))
        hub.node_connected(conn)
        log.info("node %d (%s) connected from %s", entry.serial, entry.hostname, address)
        try:
            reason = await link.run(conn.on_messages, conn.on_event_run)
        finally:
            hub.node_disconnected(conn)
        log.info("node %d (%s) disconnected: %s", entry.serial, entry.hostname, reason)
    except Exception as exc:  # a bug in one connection must not take the hub down
        log.error("node %s: internal error: %r", address, exc, exc_info=log.isEnabledFor(logging.DEBUG))
        link.abort("internal error")  # whatever state it was left in, it ends
