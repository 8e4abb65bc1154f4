"""The messages of commands across hubs: encoded and checked like wire messages, and cut to fit NATS."""

from __future__ import annotations

import pytest

from secmon.protocol.errors import InvalidMessage, MalformedFrame
from secmon.protocol.remote import (
    MAX_PIECE,
    RemoteAlive,
    RemoteBeat,
    RemoteCancel,
    RemoteOutput,
    RemoteResult,
    RemoteResultPart,
    RemoteRun,
    RemoteStarted,
    decode_reply,
    decode_request,
    encode_remote,
    output_messages,
    result_messages,
)

NATS_MAX_PAYLOAD = 1024 * 1024  # nats-server's default

REQUESTS = [
    RemoteRun("web1:9992", "a1b2", 7, "node-id", "uptime", True, 3, 0.5),
    RemoteCancel("web1:9992", "a1b2", 7),
    RemoteAlive("web1:9992", "a1b2", [7, 8, 9]),
]
REPLIES = [
    RemoteStarted(1, 3),
    RemoteOutput(2, ["one", "two"]),
    RemoteResultPart(3, "x" * 10),
    RemoteResult(4, "failure", 7, "out", "why"),
    RemoteBeat(5),
]


@pytest.mark.parametrize("message", REQUESTS)
def test_a_request_round_trips_and_is_not_a_reply(message):
    data = encode_remote(message)
    assert decode_request(data) == message
    with pytest.raises(InvalidMessage, match="unknown type"):
        decode_reply(data)


@pytest.mark.parametrize("message", REPLIES)
def test_a_reply_round_trips_and_is_not_a_request(message):
    data = encode_remote(message)
    assert decode_reply(data) == message
    with pytest.raises(InvalidMessage, match="unknown type"):
        decode_request(data)


def test_what_does_not_decode_is_a_remote_protocol_error_naming_the_fault():
    with pytest.raises(MalformedFrame):
        decode_reply(b"\xc1")
    bad = encode_remote(RemoteRun("a", "r", 1, "n", "l"))
    bad = bad.replace(b"\xa2id\x01", b"\xa2id\xa1x")  # the id as a string
    with pytest.raises(InvalidMessage, match=r"x_run\.id: expected int"):
        decode_request(bad)


def test_output_lines_are_batched_in_order_and_each_batch_fits():
    lines = [f"line {i} " + "é" * (i * 997 % 16000) for i in range(400)]
    messages = output_messages(5, lines)
    assert [message.seq for message in messages] == list(range(5, 5 + len(messages)))
    assert [line for message in messages for line in message.lines] == lines
    assert len(messages) > 1
    for message in messages:
        assert sum(len(line) for line in message.lines) <= MAX_PIECE or len(message.lines) == 1
        assert len(encode_remote(message)) < NATS_MAX_PAYLOAD


def test_one_line_longer_than_a_piece_goes_alone():
    messages = output_messages(1, ["a", "b" * (MAX_PIECE + 1), "c"])
    assert [message.lines for message in messages] == [["a"], ["b" * (MAX_PIECE + 1)], ["c"]]


def test_a_large_result_is_cut_into_pieces_that_join_back_whole():
    output = "".join(chr(0x4E00 + i % 500) for i in range(3 * MAX_PIECE + 17))  # 3 bytes a character in UTF-8
    parts = result_messages(10, "success", 0, output, "")
    *pieces, last = parts
    assert [p.seq for p in parts] == [10, 11, 12, 13]
    assert all(type(p) is RemoteResultPart for p in pieces) and type(last) is RemoteResult
    assert "".join(p.output for p in pieces) + last.output == output
    assert (last.status, last.exit_code) == ("success", 0)
    assert all(len(encode_remote(p)) < NATS_MAX_PAYLOAD for p in parts)


def test_a_small_result_is_one_message():
    assert result_messages(1, "timeout", None, "out", "killed after 2 s") == [
        RemoteResult(1, "timeout", None, "out", "killed after 2 s")
    ]
