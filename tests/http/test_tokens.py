"""The bridge's token file as plain function calls (tokens.py has no I/O), hostile files included,
and HttpSettings reading a real file."""

from __future__ import annotations

import os
import secrets

import pytest

from secmon.errors import ConfigError
from secmon_http import tokens
from secmon_http.config import HttpSettings

A = "a" * 16 + "-first-token"
B = "b" * 16 + "_second.token"


def parsed(text: str) -> dict[str, str]:
    return dict(tokens.parse_token_file(text, "FILE").by_name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{A}\n", {"default": A}),
        (f"  {A}  ", {"default": A}),
        (f"# made by hand\n\n{A}\n\n", {"default": A}),
        (f"alice {A}\n", {"alice": A}),
        (f"# who\nalice {A}\n\n  # the deploy script\nci.deploy-1\t{B}\n", {"alice": A, "ci.deploy-1": B}),
        (f"{'n' * 32} {A}", {"n" * 32: A}),
        (f"default {A}", {"default": A}),
    ],
)
def test_readable_files(text, expected):
    assert parsed(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "FILE holds no token"),
        ("# only a comment\n\n", "FILE holds no token"),
        (f"alice {A}\n{B}\n", "FILE, line 2: expected NAME TOKEN"),
        (f"alice {A} extra\n", "FILE, line 1: expected NAME TOKEN (or a single token alone in the file), got 3"),
        (f"al ice {A}\n", "line 1: expected NAME TOKEN"),
        (f"{'n' * 33} {A}", "line 1: a NAME is 1 to 32 of"),
        (f"al/ice {A}", "line 1: a NAME is 1 to 32 of"),
        (f"<script> {A}", "line 1: a NAME is 1 to 32 of"),
        (f"alice {A}\n\nalice {B}\n", "line 3: the name 'alice' is given twice"),
        (f"alice {A}\nbob {A}\n", "line 2: the same token as line 1"),
        ("alice short", "line 1: a token of 5 characters is too short; at least 16"),
        ("short", "line 1: a token of 5 characters is too short"),
        (f"alice {A};x", "line 1: a token is printable ASCII without spaces"),
        (f'alice {A}"', "printable ASCII"),
        (f"alice {A}\\", "printable ASCII"),
        (f"alice {A},", "printable ASCII"),
        (f"alice {A}é", "printable ASCII"),
        (f"alice {A}\x00", "printable ASCII"),
        (f"alice {A}\x1b[31m", "printable ASCII"),
    ],
)
def test_hostile_or_broken_files_are_one_line_naming_the_line(text, words):
    with pytest.raises(ConfigError) as refused:
        parsed(text)
    message = str(refused.value)
    assert words in message and "\n" not in message


def test_a_reversed_line_does_not_put_the_token_in_the_error():
    token = secrets.token_urlsafe(32)  # 43 characters: no name, so it is refused as one
    with pytest.raises(ConfigError) as refused:
        parsed(f"{token} alice\n")
    assert token not in str(refused.value)


def test_too_many_tokens_are_refused():
    text = "".join(f"n{i} {i:020d}\n" for i in range(tokens.MAX_TOKENS + 1))
    with pytest.raises(ConfigError, match="at most 1000"):
        parsed(text)
    assert len(parsed("".join(f"n{i} {i:020d}\n" for i in range(tokens.MAX_TOKENS)))) == tokens.MAX_TOKENS


def test_identify_names_the_token_and_nothing_else():
    found = tokens.parse_token_file(f"alice {A}\nbob {B}\n", "FILE")
    assert found.identify(A) == "alice" and found.identify(B) == "bob"
    for wrong in ("", A[:-1], A + "x", A.upper(), f"{A} ", "\udcff\udcfe", "alice"):
        assert found.identify(wrong) is None, wrong
    assert found.first == ("alice", A)
    assert tokens.single(A).identify(A) == "default"


def settings(env: dict[str, str]) -> HttpSettings:
    return HttpSettings.from_env({"SERVER_IP": "127.0.0.1", **env})


def test_settings_read_a_named_token_file(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"# people\nalice {A}\nbob {B}\n")
    path.chmod(0o600)
    read = settings({"HTTP_TOKEN_FILE": str(path)})
    assert read.tokens is not None and dict(read.tokens.by_name) == {"alice": A, "bob": B}
    assert read.token_file == path


@pytest.mark.parametrize(
    ("content", "mode", "words"),
    [
        (b"\xff\xfe\x00binary", 0o600, "is not UTF-8 text"),
        (f"alice {A}\nbob\n".encode(), 0o600, "line 2: expected NAME TOKEN"),
        (f"\n# ops\nalice {A}\nbob\n".encode(), 0o600, "line 4: expected NAME TOKEN"),  # the file's own numbers
        (f"alice {A}\n".encode(), 0o644, "readable by others"),
        (b"\n\n", 0o600, "is empty"),
    ],
)
def test_settings_refuse_a_bad_token_file_in_one_line(tmp_path, content, mode, words):
    path = tmp_path / "tokens"
    path.write_bytes(content)
    path.chmod(mode)
    with pytest.raises(ConfigError) as refused:
        settings({"HTTP_TOKEN_FILE": str(path)})
    assert words in str(refused.value) and "\n" not in str(refused.value)
    assert refused.value.exit_code == 2 and refused.value.variable == "HTTP_TOKEN_FILE"


def test_settings_refuse_a_token_file_that_is_a_directory(tmp_path):
    os.chmod(tmp_path, 0o700)
    with pytest.raises(ConfigError, match="cannot read"):
        settings({"HTTP_TOKEN_FILE": str(tmp_path)})
