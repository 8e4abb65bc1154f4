"""What the node and the hub say when something is wrong: each message names the cause and the remedy.

Real hubs and nodes as processes; every wait is on a log line or the hub's state, with a timeout.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import WAIT, Daemon, free_port, secmon_argv, wait_until

NODE_CONNECTED = r"connected to hub .* as node \d+"
RECONNECT_BOUND = 3.0  # seconds; the old backoff, never reset, took 14 and 22 s by the fourth restart


def node_tls(pki: Path, cert: str | None = "node") -> dict[str, str]:
    env = {"SECMON_TLS_CA": str(pki / "ca.pem")}
    if cert:
        env.update(SECMON_TLS_CERT=str(pki / f"{cert}.pem"), SECMON_TLS_KEY=str(pki / f"{cert}.key"))
    return env


def hub_tls(pki: Path, mutual: bool) -> dict[str, str]:
    env = {"SECMON_TLS_CERT": str(pki / "hub.pem"), "SECMON_TLS_KEY": str(pki / "hub.key")}
    if mutual:
        env["SECMON_TLS_CA"] = str(pki / "ca.pem")
    return env


def shown(cluster, node: str) -> dict:
    result = cluster.cli(node, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# --- the node's link to the hub ------------------------------------------------------------


def test_every_hub_restart_is_noticed_and_logged_and_the_backoff_starts_again(cluster):
    cluster.start_hub()
    node = cluster.start_node("--reconnect", hostname="alpha", SECMON_RECONNECT_MAX="30")
    for restart in range(1, 5):
        # The hub serves the link (a command for the node: refused, as it has no allowlist) before
        # it goes: a link that only saw a welcome would not reset the backoff.
        assert "allowlist" in cluster.cli("alpha", "ping").stderr
        mark = len(node.lines)
        cluster.restart_hub()  # returns once the new hub listens
        listening = time.monotonic()
        node.wait_for(NODE_CONNECTED, start=mark, timeout=WAIT + 30)
        took = time.monotonic() - listening
        assert took < RECONNECT_BOUND, f"restart {restart}: the node came back {took:.1f} s after the hub did"
        assert node.count(r"hub link down: lost the hub at 127\.0\.0\.1:\d+ after") == restart
    assert node.count("cannot reach the hub") >= 1  # the refusals while the hub was away are told apart


def test_a_hub_that_welcomes_and_dies_at_once_is_not_healthy(cluster):
    """A hub that says nothing after its welcome and dies before a keepalive interval: back off more."""
    cluster.start_hub(SECMON_KEEPALIVE_INTERVAL="30")
    node = cluster.start_node("--reconnect", hostname="alpha", SECMON_RECONNECT_MAX="30")
    delays = []
    for _ in range(3):
        mark = len(node.lines)
        cluster.restart_hub()
        node.wait_for(NODE_CONNECTED, start=mark, timeout=WAIT + 30)
        line = node.wait_for(r"hub link down: lost the hub .* reconnecting in ([\d.]+) s", start=mark)
        delays.append(float(line[1]))
    # back at the minimum every time, each wait would be at most 0.5 s; growing, the third is at least 1 s
    assert delays[-1] > 0.5, delays


def test_a_hub_that_is_not_there_is_not_a_lost_hub(cluster, hub):
    port = free_port()
    node = cluster.start_node(hostname="alpha", wait=False, HUB_PORT=str(port))
    assert node.process.wait(WAIT) == 1
    node.wait_for(rf"secmon: cannot reach the hub at 127\.0\.0\.1:{port}: connection refused")
    assert node.count("lost the hub") == 0
    waiting = cluster.start_node("--reconnect", hostname="beta", wait=False, HUB_PORT=str(port))
    waiting.wait_for(rf"cannot reach the hub at 127\.0\.0\.1:{port}: connection refused.*; retrying")
    assert waiting.count("lost the hub") == 0 and waiting.count("hub link down") == 0


def test_a_node_without_tls_is_told_the_hub_requires_it(cluster, certificates):
    hub = cluster.start_hub(**hub_tls(certificates, mutual=False))
    node = cluster.start_node(hostname="plain", wait=False)
    assert node.process.wait(WAIT) == 1
    node.wait_for(r"secmon: the hub at 127\.0\.0\.1:\d+ requires TLS.*set SECMON_TLS_CA")
    hub.wait_for(r"node 127\.0\.0\.1: TLS handshake failed: the node does not speak TLS")


def test_a_node_with_tls_is_told_the_hub_does_not_speak_it(cluster, hub, certificates):
    node = cluster.start_node(hostname="tls", wait=False, **node_tls(certificates, cert=None))
    assert node.process.wait(WAIT) == 1
    node.wait_for(r"secmon: the hub at 127\.0\.0\.1:\d+ does not speak TLS")
    hub.wait_for(r"node 127\.0\.0\.1: .*speaks TLS, but this hub has no SECMON_TLS_CERT")


def test_a_node_without_a_certificate_or_with_an_unknown_one_is_told_which(cluster, certificates):
    hub = cluster.start_hub(**hub_tls(certificates, mutual=True))
    bare = cluster.start_node(hostname="bare", wait=False, **node_tls(certificates, cert=None))
    assert bare.process.wait(WAIT) == 1
    bare.wait_for(r"secmon: the hub at 127\.0\.0\.1:\d+ requires a client certificate: set SECMON_TLS_CERT")
    hub.wait_for(r"TLS handshake failed: the node sent no certificate")
    rogue = cluster.start_node(hostname="rogue", wait=False, **node_tls(certificates, cert="rogue"))
    assert rogue.process.wait(WAIT) == 1
    rogue.wait_for(r"secmon: the hub at 127\.0\.0\.1:\d+ does not accept our certificate \(unknown ca\)")
    hub.wait_for(r"TLS handshake failed: the node's certificate is not signed by the CA in SECMON_TLS_CA")


def test_two_nodes_with_one_hostname_are_reported_on_both_sides_with_the_remedy(cluster, hub):
    twins = [cluster.start_node("--reconnect", hostname="twin", wait=False) for _ in range(2)]
    told = r"the hub at \S+ replaced this node after .*: another node with hostname 'twin' connected.*SECMON_HOSTNAME"
    for twin in twins:
        wait_until(lambda t=twin: t.count(told) >= 2, what="each twin to be replaced twice")
    hub.wait_for(r"hostname 'twin' is used by two nodes .* set SECMON_HOSTNAME .* or ASSUME_HOSTNAME_UNIQUE=false")
    assert hub.count("hostname 'twin' is used by two nodes") == 1  # once per flap window, not once per flap


# --- states that look normal but are not ---------------------------------------------------


def test_sessions_that_cannot_be_read_are_an_error_not_none(cluster, hub, workdir):
    missing = workdir / "no-utmp-here"
    cluster.start_node("who", hostname="alpha", SECMON_UTMP=str(missing))
    node = wait_until(lambda: (n := shown(cluster, "alpha"))["sessions"] != {"error": "initializing"} and n)
    error = f"cannot see sessions from utmp: cannot read {missing}: No such file or directory"
    assert node["sessions"] == {"error": error}
    human = cluster.cli("alpha")
    assert f"cannot read {missing}" in human.stdout and "none" not in human.stdout


def test_a_journal_with_no_files_is_waited_for_not_ok(cluster, hub, workdir):
    journal = workdir / "journal"  # AUTH_LOG=journal:DIR, before journald has written there
    journal.mkdir()
    cluster.start_node("auth", hostname="alpha", AUTH_LOG=f"journal:{journal}")
    node = wait_until(lambda: (n := shown(cluster, "alpha"))["auth"] != {"error": "initializing"} and n)
    assert node["auth"] == {"error": f"waiting for the journal: no journal files in {journal}"}


def test_a_machine_journal_with_no_files_is_waited_for_not_ok(cluster, hub):
    """`journalctl -f` with no journal files sits silent; the node used to call that ok."""
    directories = (Path("/var/log/journal"), Path("/run/log/journal"))
    if any(next(d.glob("**/*.journal"), None) for d in directories):
        pytest.skip("this machine has a systemd journal; the case needs one without")
    cluster.start_node("auth", hostname="alpha", AUTH_LOG="journal")
    node = wait_until(lambda: (n := shown(cluster, "alpha"))["auth"] != {"error": "initializing"} and n)
    expected = "waiting for the journal: no journal files in /var/log/journal or /run/log/journal"
    assert node["auth"] == {"error": expected}


def test_a_replayed_connected_update_carries_the_time_the_node_connected(cluster, hub):
    before = time.time()
    cluster.start_node(hostname="alpha")
    connected = time.time()
    replay = Daemon(secmon_argv("subscribe", "--since", "0", "--json"), cluster.env, "subscribe")
    cluster.daemons.append(replay)
    update = json.loads(replay.wait_for(r"^\{.*")[0])
    assert update["type"] == "node" and update["changed"] == ["connected"]
    stamp = update["node"]["last_state_update"]
    assert stamp is not None, "a replayed connected update must say when the node connected"
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    assert before - 0.001 <= when <= connected
