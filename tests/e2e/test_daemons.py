"""Hub, nodes and CLI as real processes on loopback and a private socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import WAIT, Daemon, secmon_argv, wait_until
from machine import process_alive


def listed(cluster) -> list[dict]:
    result = cluster.cli("list", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_list_and_find_by_serial_hostname_and_address(cluster, hub):
    for name in ("charlie", "alpha", "bravo"):
        cluster.start_node("who", hostname=name)
    nodes = listed(cluster)
    assert [n["hostname"] for n in nodes] == ["alpha", "bravo", "charlie"]  # sorted by hostname
    assert sorted(n["serial"] for n in nodes) == [1, 2, 3]
    for node in nodes:
        assert node["connected"] and node["address"] == "127.0.0.1"
        assert node["wg_peers"] == {"error": "not_monitored"}
    by_serial = json.loads(cluster.cli("2", "--json").stdout)
    by_name = json.loads(cluster.cli(by_serial["hostname"], "--json").stdout)
    assert by_serial["serial"] == by_name["serial"] == 2
    by_address = json.loads(cluster.cli("127.0.0.1", "--json").stdout)
    assert by_address["address"] == "127.0.0.1"
    human = cluster.cli("list")
    assert human.returncode == 0 and "alpha" in human.stdout and "\x1b[" not in human.stdout
    shown = cluster.cli("alpha")
    assert "alpha (node" in shown.stdout and "connected" in shown.stdout


def test_unknown_node_and_no_hub_are_one_line_errors(cluster, hub, workdir):
    result = cluster.cli("nosuchnode")
    assert result.returncode == 1
    assert result.stderr == "secmon: no node matches 'nosuchnode'\n"
    result = cluster.cli("list", SECMON_SOCKET=str(workdir / "none.sock"))
    assert result.returncode == 1 and result.stderr.startswith("secmon: no hub is running on ")
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BIND_PORT", "http", "BIND_PORT must be an integer, got 'http'"),
        ("BIND_IP", "999.1.1.1", "BIND_IP must be an IP address"),
        ("DISCONNECT_GRACE_PERIOD", "-1", "DISCONNECT_GRACE_PERIOD must be a finite number"),
        ("ASSUME_HOSTNAME_UNIQUE", "maybe", "ASSUME_HOSTNAME_UNIQUE must be true or false"),
    ],
)
def test_malformed_variable_is_exit_2_with_one_line(cluster, variable, value, message):
    result = cluster.cli("hub", **{variable: value})
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_node_wait_timeout_malformed_is_exit_2(cluster, hub):
    result = cluster.cli("1", "x", NODE_WAIT_TIMEOUT="soon")
    assert result.returncode == 2 and "NODE_WAIT_TIMEOUT" in result.stderr


def test_streamed_lines_arrive_as_they_are_written(cluster, hub, workdir):
    gate = workdir / "gate"
    script = f"echo first; while [ ! -e {gate} ]; do sleep 0.02; done; echo second"
    allow = cluster.allowlist(f"gated=sh -c '{script}'\n")
    cluster.start_node(hostname="alpha", COMMAND_ALLOWLIST_FILE=str(allow))
    cli = Daemon(secmon_argv("alpha", "gated"), cluster.env, "cli")
    cli.wait_for("^first$")  # arrives while the command is still blocked on the gate
    assert cli.process.poll() is None
    gate.touch()
    cli.wait_for("^second$")
    assert cli.process.wait(WAIT) == 0
    assert cli.lines == ["first", "second"]


def test_failure_timeout_and_label_not_allowed(cluster, hub):
    allow = cluster.allowlist("bad=sh -c 'echo oops; exit 7'\nslow=sleep 30\n# comment\n\nbroken line\n")
    cluster.start_node(hostname="alpha", COMMAND_ALLOWLIST_FILE=str(allow), COMMAND_EXECUTE_TIMEOUT="0.5")
    failed = cluster.cli("alpha", "bad")
    assert failed.returncode == 7 and failed.stdout == "oops\n" and "failure (exit 7)" in failed.stderr
    timed_out = cluster.cli("alpha", "slow")
    assert timed_out.returncode == 124 and "timeout" in timed_out.stderr and "killed after 0.5 s" in timed_out.stderr
    refused = cluster.cli("alpha", "rm")
    assert refused.returncode == 1 and "'rm' is not in this node's allowlist" in refused.stderr


def test_allowlist_is_reread_and_labels_match_exactly(cluster, hub, workdir):
    allow = cluster.allowlist("a=echo one\n")
    cluster.start_node(hostname="alpha", COMMAND_ALLOWLIST_FILE=str(allow))
    assert cluster.cli("alpha", "a").stdout == "one\n"
    assert cluster.cli("alpha", "A").returncode == 1
    assert cluster.cli("alpha", "a ").returncode == 1
    allow.write_text("a=echo two\n")
    assert cluster.cli("alpha", "a").stdout == "two\n"


def test_arguments_are_never_given_to_a_shell(cluster, hub, workdir):
    marker = workdir / "pwned"
    allow = cluster.allowlist(f"echo=echo $(touch {marker}) ;rm -rf /\n")
    cluster.start_node(hostname="alpha", COMMAND_ALLOWLIST_FILE=str(allow))
    result = cluster.cli("alpha", "echo")
    assert result.returncode == 0
    assert result.stdout == f"$(touch {marker}) ;rm -rf /\n"
    assert not marker.exists()


def test_fan_out_runs_on_all_nodes_at_once(cluster, hub, workdir):
    # Each command waits until all three have started: run one after another, they would time out.
    barrier = workdir / "barrier"
    barrier.mkdir()
    script = f"touch {barrier}/$$; while [ $(ls {barrier} | wc -l) -lt 3 ]; do sleep 0.02; done; echo ready"
    allow = cluster.allowlist(f"meet=sh -c '{script}'\n")
    for name in ("alpha", "bravo", "charlie"):
        cluster.start_node(hostname=name, COMMAND_ALLOWLIST_FILE=str(allow), COMMAND_EXECUTE_TIMEOUT="10")
    result = cluster.cli("-", "meet", timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert sorted(line for line in lines if line.endswith(": ready")) == [
        "alpha: ready",
        "bravo: ready",
        "charlie: ready",
    ]
    assert lines[-1] == "3 nodes: 3 succeeded, 0 failed"


def test_fan_out_exit_status_is_non_zero_when_any_node_fails(cluster, hub, workdir):
    good = cluster.allowlist("check=true\n")
    bad = workdir / "bad-allowlist"
    bad.write_text("check=false\n")
    bad.chmod(0o600)
    cluster.start_node(hostname="alpha", COMMAND_ALLOWLIST_FILE=str(good))
    cluster.start_node(hostname="bravo", COMMAND_ALLOWLIST_FILE=str(bad))
    result = cluster.cli("-", "check")
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == "2 nodes: 1 succeeded, 1 failed"
    assert "bravo: failure (exit 1)" in result.stdout


def test_ctrl_c_kills_the_remote_process_group(cluster, hub, workdir):
    pids = workdir / "pids"
    script = f"sleep 300 & echo $! > {pids}; echo $$ >> {pids}; echo started; wait"
    allow = cluster.allowlist(f"hang=sh -c '{script}'\n")
    node = cluster.start_node(hostname="alpha", COMMAND_ALLOWLIST_FILE=str(allow))
    cli = Daemon(secmon_argv("alpha", "hang"), cluster.env, "cli")
    cli.wait_for("^started$")
    children = [int(p) for p in pids.read_text().split()]
    assert all(process_alive(p) for p in children)
    cli.signal(signal.SIGINT)
    assert cli.process.wait(WAIT) == 130
    wait_until(lambda: not any(process_alive(p) for p in children), what="the remote sleep and its shell to die")
    node.wait_for(r"command 'hang' \(request \d+\): cancelled")


def test_killed_node_is_disconnected_then_forgotten(cluster):
    # The grace period is long enough for `list` to look in between even on a loaded machine.
    cluster.start_hub(DISCONNECT_GRACE_PERIOD="4")
    node = cluster.start_node(hostname="alpha")
    subscriber = Daemon(secmon_argv("subscribe", "--since", "0", "--json"), cluster.env, "subscribe")
    wait_until(lambda: len(listed(cluster)) == 1)
    node.signal(signal.SIGKILL)
    subscriber.wait_for(r'"changed": \["connected"\].*"connected": false')
    assert [n["connected"] for n in listed(cluster)] == [False]
    subscriber.wait_for(r'"changed": \["forgotten"\]')
    assert listed(cluster) == []
    subscriber.stop()


def test_silent_node_is_dropped_after_three_keepalives(cluster, hub):
    node = cluster.start_node(hostname="alpha", SECMON_KEEPALIVE_INTERVAL="0.5")
    node.signal(signal.SIGSTOP)
    try:
        hub.wait_for(r"node 1 \(alpha\) disconnected: peer silent for 3 keepalive intervals", timeout=10)
        assert listed(cluster)[0]["connected"] is False
    finally:
        node.signal(signal.SIGCONT)


def test_reconnecting_node_replaces_its_entry(cluster, hub):
    first = cluster.start_node("who", hostname="alpha")
    first.signal(signal.SIGKILL)
    wait_until(lambda: listed(cluster)[0]["connected"] is False)
    cluster.start_node("who", hostname="alpha")
    nodes = listed(cluster)
    assert len(nodes) == 1 and nodes[0]["serial"] == 1 and nodes[0]["connected"]


def test_without_unique_hostnames_a_second_entry_appears(cluster):
    cluster.start_hub(ASSUME_HOSTNAME_UNIQUE="false")
    cluster.start_node(hostname="alpha")
    cluster.start_node(hostname="alpha")
    assert [n["serial"] for n in listed(cluster)] == [1, 2]


def test_node_without_reconnect_exits_when_the_hub_goes(cluster, hub):
    node = cluster.start_node(hostname="alpha")
    hub.stop()
    assert node.process.wait(WAIT) == 1
    node.wait_for("secmon: lost the hub at 127.0.0.1")


def test_node_with_reconnect_comes_back_after_a_hub_restart(cluster, hub):
    node = cluster.start_node("--reconnect", hostname="alpha")
    port = hub.port
    hub.stop()
    node.wait_for("hub link down")
    cluster.start_hub(BIND_PORT=str(port))
    node.wait_for("connected to hub", start=len(node.lines) - 1)
    assert node.count("connected to hub") == 2
    wait_until(lambda: [n["hostname"] for n in listed(cluster)] == ["alpha"])


def test_garbage_on_both_sockets_leaves_the_hub_serving(cluster, hub):
    cluster.start_node(hostname="alpha")
    with socket.create_connection((hub.host, hub.port)) as raw:
        raw.sendall(b"\x00\x00\x00\x05hello")  # a frame that is not MessagePack
        assert b"malformed" in raw.recv(4096)
    with socket.create_connection((hub.host, hub.port)) as raw:
        raw.sendall(b"\xff\xff\xff\xff")  # declares a 4 GiB frame
        assert b"exceeds the limit" in raw.recv(4096)
    with socket.socket(socket.AF_UNIX) as raw:
        raw.connect(hub.socket)
        raw.sendall(os.urandom(64) + b"\x00\x00\x00\x02\x91\x01")
        raw.recv(4096)
    hub.wait_for(r"node 127\.0\.0\.1: .*frame is not MessagePack")
    hub.wait_for(r"exceeds the limit")
    assert [n["hostname"] for n in listed(cluster)] == ["alpha"]
    assert hub.process.poll() is None


def test_hello_with_another_version_is_refused(cluster, hub):
    import msgpack

    body = msgpack.packb({"t": "hello", "version": 99, "role": "node", "hostname": "x"})
    with socket.create_connection((hub.host, hub.port)) as raw:
        raw.sendall(len(body).to_bytes(4, "big") + body)
        assert b"protocol version 99 is not supported" in raw.recv(4096)
    hub.wait_for("refused: protocol version 99")


def test_hub_socket_is_private_and_a_second_hub_is_refused(cluster, hub):
    mode = stat.S_IMODE(os.stat(hub.socket).st_mode)
    assert mode == 0o600
    second = cluster.cli("hub")
    assert second.returncode == 1 and f"a hub is already running on {hub.socket}" in second.stderr


def test_stale_socket_is_replaced(cluster, workdir):
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(cluster.env["SECMON_SOCKET"])
    stale.close()  # the file stays, nobody listens
    hub = cluster.start_hub()
    hub.wait_for("removed stale socket")
    assert listed(cluster) == []


def test_sigterm_stops_the_hub_cleanly_and_removes_the_socket(cluster, hub):
    cluster.start_node(hostname="alpha")
    assert hub.stop() == 0
    assert not Path(hub.socket).exists()


def test_node_wait_timeout_waits_for_a_node_to_come_back(cluster, hub):
    allow = cluster.allowlist("hi=echo hi\n")
    node = cluster.start_node(hostname="alpha", COMMAND_ALLOWLIST_FILE=str(allow))
    node.signal(signal.SIGKILL)
    wait_until(lambda: listed(cluster)[0]["connected"] is False)
    quick = cluster.cli("alpha", "hi")
    assert quick.returncode == 1 and "is not connected" in quick.stderr
    waiting = subprocess.Popen(
        secmon_argv("alpha", "hi"),
        env={**cluster.env, "NODE_WAIT_TIMEOUT": "10"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    hub.wait_for(r"waiting up to 10 s for node 'alpha'")
    cluster.start_node(hostname="alpha", COMMAND_ALLOWLIST_FILE=str(allow))
    out, err = waiting.communicate(timeout=WAIT)
    assert waiting.returncode == 0, err
    assert out == "hi\n"


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_the_hub_serves_on_either_event_loop(cluster, workdir, loop):
    """uvloop is the `fast` extra; without it (or with SECMON_UVLOOP=0) the standard loop serves the same."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    hub = cluster.start_hub(SECMON_UVLOOP="1" if loop == "uvloop" else "0")
    hub.wait_for(f"event loop: {loop}")
    (workdir / "auth.log").write_text("")
    allow = cluster.allowlist("hello=echo hello\n")
    cluster.start_node("auth", hostname="alpha", COMMAND_ALLOWLIST_FILE=str(allow))
    cluster.wait_auth_ok("alpha")
    subscriber = Daemon(secmon_argv("subscribe", "--since", "0", "--json"), cluster.env, "subscribe")
    cluster.daemons.append(subscriber)
    with (workdir / "auth.log").open("a") as f:
        f.write("2026-11-29T05:00:00+00:00 alpha sshd[77]: Failed password for root from 192.0.2.9 port 2222 ssh2\n")
    update = json.loads(subscriber.wait_for(r'^\{.*"type": "auth".*').group(0))
    assert update["event"]["user"] == "root" and update["event"]["port"] == 2222 and update["hostname"] == "alpha"
    result = cluster.cli("alpha", "hello")
    assert result.returncode == 0 and result.stdout == "hello\n"


def test_the_lines_of_one_read_travel_as_one_batch_and_reach_clients_one_by_one(cluster, hub, workdir):
    """A burst in the auth log: one frame from the node, one AuthUpdates to subscribers, every event in order."""
    from secmon.protocol import FrameDecoder, encode
    from secmon.protocol import messages as m

    (workdir / "auth.log").write_text("")
    cluster.start_node("auth", hostname="alpha")
    cluster.wait_auth_ok("alpha")
    cli = Daemon(secmon_argv("subscribe", "--since", "0", "--json"), cluster.env, "subscribe")
    cluster.daemons.append(cli)
    users = ["u1", "u2", "u3", "u4"]
    with socket.socket(socket.AF_UNIX) as raw:
        raw.connect(hub.socket)
        raw.sendall(encode(m.Hello(m.PROTOCOL_VERSION, m.ROLE_CLIENT)) + encode(m.Subscribe(1, None)))
        raw.settimeout(WAIT)
        decoder = FrameDecoder()
        while m.Subscribed not in {type(x) for x in decoder.feed(raw.recv(4096))}:
            pass
        lines = "".join(
            f"2026-11-29T05:00:00+00:00 alpha sshd[7]: Invalid user {u} from 192.0.2.9 port 22{i}\n"
            for i, u in enumerate(users)
        )
        with (workdir / "auth.log").open("a") as f:
            f.write(lines)  # one write: the node reads it at once
        batches = []
        while not batches:
            batches = [x for x in decoder.feed(raw.recv(65536)) if type(x) is m.AuthUpdates]
    [batch] = batches
    assert [e.user for e in batch.events] == users
    updates = batch.updates()
    assert [u.seq for u in updates] == list(range(batch.seq, batch.seq + 4))
    seen = [json.loads(cli.wait_for(rf'^\{{.*"user": "{u}".*').group(0)) for u in users]
    assert [x["seq"] for x in seen] == [u.seq for u in updates]
    assert all(x["hostname"] == "alpha" and x["event"]["kind"] == "ssh_invalid_user" for x in seen)


def test_the_hub_keeps_a_quiet_client_alive_and_drops_a_silent_one(cluster, hub):
    """The hub's keepalive sweep: it speaks when it has been quiet, and hangs up after three silent intervals."""
    from secmon.protocol import FrameDecoder, encode
    from secmon.protocol import messages as m

    with socket.socket(socket.AF_UNIX) as raw:
        raw.connect(hub.socket)
        raw.sendall(encode(m.Hello(m.PROTOCOL_VERSION, m.ROLE_CLIENT)))
        raw.settimeout(WAIT)
        decoder = FrameDecoder()
        received: list[object] = []
        while True:  # the welcome, then keepalives from the hub, then the end (we never answer)
            data = raw.recv(4096)
            if not data:
                break
            received += [type(message) for message in decoder.feed(data)]
    assert received[0] is m.Welcome
    assert received[1:].count(m.Keepalive) >= 2  # one per quiet interval (0.5 s here) before the 1.5 s cut
    hub.wait_for(r"client uid=\d+: peer silent for 3 keepalive intervals")


def test_a_taken_port_is_a_one_line_error_and_leaves_no_socket(cluster, workdir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cluster.cli("hub", BIND_PORT=str(port))
    assert result.returncode == 1
    assert result.stderr == f"secmon: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert not (workdir / "hub.sock").exists()


def test_colour_only_on_a_terminal_and_never_with_no_color(cluster, hub):
    import pty

    cluster.start_node(hostname="alpha\x1b[2J")  # a hostile name: escapes must stay inert even in colour

    def on_a_terminal(**extra: str) -> str:
        env = {k: v for k, v in cluster.env.items() if k != "NO_COLOR"}
        env.update(extra)
        controller, terminal = pty.openpty()
        try:
            result = subprocess.run(
                secmon_argv("list"), env=env, stdout=terminal, stderr=subprocess.PIPE, timeout=WAIT, check=False
            )
            os.close(terminal)
            terminal = -1
            out = b""
            while True:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # EIO: the terminal's other end is closed and drained
                    break
                if not chunk:
                    break
                out += chunk
        finally:
            os.close(controller)
            if terminal >= 0:
                os.close(terminal)
        assert result.returncode == 0, result.stderr
        return out.decode()

    coloured = on_a_terminal()
    assert "\x1b[" in coloured and "alpha\\x1b[2J" in coloured and "\x1b[2J" not in coloured
    plain = on_a_terminal(NO_COLOR="1")
    assert "\x1b[" not in plain and "alpha\\x1b[2J" in plain
