"""The line splitter, with plain calls: chunk boundaries, over-long lines, CRLF, the last line."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from secmon.lines import LineSplitter

LIMIT = 8


def log_splitter() -> LineSplitter:
    return LineSplitter(LIMIT, drop_long=True)


def output_splitter() -> LineSplitter:
    return LineSplitter(LIMIT, drop_long=False)


def test_lines_cut_anywhere_by_chunks_come_out_whole():
    splitter = log_splitter()
    assert splitter.feed(b"ab") == []
    assert splitter.feed(b"c\nde") == [b"abc"]
    assert splitter.feed(b"\n") == [b"de"]
    assert splitter.feed(b"\n\nx\ny") == [b"", b"", b"x"]
    assert splitter.pending == 1


def test_a_crlf_line_keeps_its_cr_for_the_reader():
    splitter = log_splitter()
    assert splitter.feed(b"one\r") == []
    assert splitter.feed(b"\ntwo\r\n") == [b"one\r", b"two\r"]


def test_a_followed_log_drops_over_long_lines_and_keeps_going():
    splitter = log_splitter()
    assert splitter.feed(b"a\nb") == [b"a"]
    assert splitter.feed(b"x" * (LIMIT + 10)) == []  # held past the bound: dropped, not kept growing
    assert splitter.feed(b"yyy\nc\n") == [b"c"]  # the rest of the long line is dropped too
    assert splitter.feed(b"z" * (LIMIT + 1) + b"\nd\n") == [b"d"]  # whole in one chunk, still too long
    assert splitter.feed(b"e" * LIMIT + b"\n") == [b"e" * LIMIT]  # at the bound is fine


def test_a_followed_log_counts_the_bytes_of_the_unfinished_line():
    """What a reader keeping its position subtracts: the offset stays before an unfinished line."""
    splitter = log_splitter()
    splitter.feed(b"a\nbc")
    assert splitter.pending == 2
    splitter.feed(b"d")
    assert splitter.pending == 3
    splitter.feed(b"x" * (LIMIT + 10))  # dropped, but not yet ended: a position stays before it
    assert splitter.pending == 3 + LIMIT + 10
    splitter.feed(b"y\nz")
    assert splitter.pending == 1


def test_a_followed_log_has_no_last_line_while_one_is_dropped():
    splitter = log_splitter()
    splitter.feed(b"x" * (LIMIT + 1))
    assert splitter.finish() is None
    splitter.feed(b"tail")
    assert splitter.finish() == b"tail"
    assert splitter.finish() is None


def test_command_output_passes_an_unended_line_on_in_pieces():
    splitter = output_splitter()
    assert splitter.feed(b"x" * LIMIT) == []  # at the bound it is still held
    assert splitter.feed(b"yy") == [b"x" * LIMIT + b"yy"]  # past it, handed over as it is
    assert splitter.pending == 0
    assert splitter.feed(b"zz\n" + b"w" * (LIMIT + 5) + b"\n") == [b"zz", b"w" * (LIMIT + 5)]  # whole: kept
    assert splitter.feed(b"last") == []
    assert splitter.finish() == b"last"  # the stream ended without a line end


@given(st.binary(max_size=200), st.lists(st.integers(1, 30), max_size=40))
def test_a_followed_log_gives_the_same_lines_however_the_stream_is_cut(data, cuts):
    splitter = log_splitter()
    lines, position = [], 0
    for size in [*cuts, len(data)]:
        lines += splitter.feed(data[position : position + size])
        position = min(position + size, len(data))
        assert splitter.pending == position - (data.rfind(b"\n", 0, position) + 1)
    whole = data.split(b"\n")
    assert lines == [line for line in whole[:-1] if len(line) <= LIMIT]
    assert splitter.finish() == (whole[-1] if 0 < len(whole[-1]) <= LIMIT else None)


@given(st.binary(max_size=200), st.lists(st.integers(1, 30), max_size=40))
def test_command_output_loses_no_byte_however_the_stream_is_cut(data, cuts):
    splitter = output_splitter()
    out, position = [], 0
    for size in [*cuts, len(data)]:
        out += splitter.feed(data[position : position + size])
        position = min(position + size, len(data))
    last = splitter.finish()
    out += [last] if last is not None else []
    assert all(b"\n" not in piece for piece in out)
    assert b"".join(out) == data.replace(b"\n", b"")
    assert len(out) >= data.count(b"\n")
