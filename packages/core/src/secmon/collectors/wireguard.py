"""WireGuard peers from one `wg show all dump` per poll.

The dump is tab-separated: an interface line has 5 fields (name, private
key, public key, listen port, fwmark); a peer line has 9 (interface, public
key, preshared key, endpoint, allowed ips, latest handshake, rx, tx,
persistent keepalive). Endpoint "(none)" and handshake 0 mean none/never.
"""

from __future__ import annotations

from ..protocol.messages import WgPeer

PEER_FIELDS = 9


def parse_dump(text: str) -> list[WgPeer]:
    """Peers in `wg show all dump` output, in order; lines of other shapes are skipped."""
    peers = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) != PEER_FIELDS:
            continue
        interface, public_key, _psk, endpoint, _ips, handshake = fields[:6]
        stamp = int(handshake) if handshake.isdigit() else 0
        peers.append(WgPeer(interface, public_key, None if endpoint == "(none)" else endpoint, float(stamp) or None))
    return peers
