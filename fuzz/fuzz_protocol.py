"""A mutation fuzzer for the frame decoder and message validation.

Starts from valid frames of every message type, then flips, inserts, deletes
and splices bytes, rewrites length headers and feeds the result to a
FrameDecoder in random chunks. Every input must end in messages or a
ProtocolError — never another exception — and the decoder must never hold
more than one frame limit of bytes. Deterministic for a given --seed.

    python fuzz/fuzz_protocol.py --cases 200000 --seed 7
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

from secmon.protocol import FrameDecoder, ProtocolError, encode
from secmon.protocol import messages as m

LIMIT = 4096  # a small frame limit, so oversized declarations are common


def seeds() -> list[bytes]:
    session = m.Session("alice", "pts/0", "192.0.2.1", 1.5)
    event = m.AuthEvent(1, 2.0, "ssh_accepted", "sshd", 3, "root", "::1", 22, "publickey")
    node = m.NodeInfo(1, "web", "10.0.0.1", True, 3.0, [session], "err", "ok", ["who"], ["uptime"])
    messages = [
        m.Hello(1, "node", "web", "id", ["who"], "token"),
        m.Welcome(1, 2, 3, 0.5),
        m.Error("code", "text", 4),
        m.Keepalive(),
        m.StateUpdate(sessions=[session], wg_peers=[m.WgPeer("wg0", "k", None, 1.0)], auth="ok", labels=["a"]),
        m.AuthEvents([event, event]),
        m.Ack(9),
        m.RunCommand(1, "uptime", True),
        m.CancelCommand(1),
        m.CommandOutput(1, "line", 2),
        m.CommandResult(1, "success", 0, "out", "", 2),
        m.ListNodes(1),
        m.FindNode(1, "web"),
        m.NodeList(1, [node]),
        m.Subscribe(1, 5),
        m.Subscribed(1, 6, 0),
        m.NodeUpdate(7, node, ["sessions"]),
        m.AuthUpdate(8, 1, "web", "10.0.0.1", event),
        m.Execute(1, "-", "uptime", True, 1.0),
        m.Started(1, [1, 2]),
        m.Cancel(1),
    ]
    return [encode(message) for message in messages]


def mutate(rng: random.Random, corpus: list[bytes]) -> bytes:
    data = bytearray(b"".join(rng.choice(corpus) for _ in range(rng.randint(1, 3))))
    for _ in range(rng.randint(1, 8)):
        action = rng.randrange(6)
        position = rng.randrange(len(data) + 1)
        if action == 0 and data:
            data[min(position, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif action == 1:
            data[position:position] = rng.randbytes(rng.randint(1, 8))
        elif action == 2 and data:
            del data[position : position + rng.randint(1, 8)]
        elif action == 3:
            data[position:position] = rng.choice(corpus)
        elif action == 4 and len(data) >= 4:
            start = rng.randrange(len(data) - 3)
            length = rng.choice([0, 1, LIMIT, LIMIT + 1, 2**32 - 1, rng.randrange(2**32)])
            data[start : start + 4] = length.to_bytes(4, "big")
        elif action == 5 and data:
            data[min(position, len(data) - 1)] = rng.choice([0xC0, 0xC1, 0xC2, 0xD9, 0xDC, 0xDE, 0xFF, 0x80, 0x90])
    return bytes(data)


def run(cases: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    corpus = seeds()
    counts = {"cases": 0, "messages": 0, "protocol_errors": 0, "max_buffered": 0}
    for _ in range(cases):
        data = mutate(rng, corpus)
        decoder = FrameDecoder(max_frame=LIMIT)
        try:
            offset = 0
            while offset < len(data):
                step = rng.randint(1, 64)
                for message in decoder.feed(data[offset : offset + step]):
                    assert type(message) in m.MESSAGE_TYPES.values()
                    counts["messages"] += 1
                offset += step
                counts["max_buffered"] = max(counts["max_buffered"], decoder.buffered)
                assert decoder.buffered <= LIMIT + 4, decoder.buffered
        except ProtocolError:
            counts["protocol_errors"] += 1
        counts["cases"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    started = time.perf_counter()
    counts = run(args.cases, args.seed)
    elapsed = time.perf_counter() - started
    print(f"seed {args.seed}: {counts['cases']} cases in {elapsed:.1f} s, no unexpected exception", file=sys.stderr)
    print(json.dumps({**counts, "seed": args.seed, "seconds": round(elapsed, 2)}))


if __name__ == "__main__":
    main()
