"""A cluster hub's own rules, with plain calls on a stand-in hub: no NATS, no daemon."""

from __future__ import annotations

from types import SimpleNamespace

import nats.errors

from secmon.hub.cluster import ClusterHub, publish_failure
from secmon.hub.outbox import Outbox, Pending
from secmon.protocol import messages as m


def hello(node_id: str) -> m.Hello:
    return m.Hello(1, "node", "web1", node_id)


def test_a_node_without_a_node_id_is_refused_and_a_full_outbox_refuses_joins():
    hub = SimpleNamespace(outbox=Outbox(4))
    assert ClusterHub.join_refusal(hub, hello("id-1")) is None
    assert "needs a node id" in ClusterHub.join_refusal(hub, hello(""))
    while hub.outbox.put(Pending("x", b"")):
        pass
    assert "outbox is full" in ClusterHub.join_refusal(hub, hello("id-1"))


def test_a_publish_nats_denied_is_said_as_such_not_as_a_timeout():
    violation = nats.errors.Error('nats: permissions violation for publish to "secmon.up.a"')
    said = publish_failure(TimeoutError(), violation, 2.0)
    assert said.startswith("NATS denied the publish:") and "permissions violation" in said
    assert publish_failure(TimeoutError(), None, 2.0) == "no publish acknowledgement within 2 s"
    assert publish_failure(TimeoutError(), ConnectionResetError(), 2.0) == "no publish acknowledgement within 2 s"
