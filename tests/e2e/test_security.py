"""Attacks on the hub and node, each of which must fail while everyone else is served."""

from __future__ import annotations

import json
import os
import random
import socket
import stat
import subprocess

import msgpack
import pytest
from conftest import WAIT, Daemon, require_root_tools, secmon_argv, wait_until

NODE_CONNECTED = r"connected to hub .* as node \d+"


def tls_hub_env(pki, mutual: bool) -> dict[str, str]:
    env = {"SECMON_TLS_CERT": str(pki / "hub.pem"), "SECMON_TLS_KEY": str(pki / "hub.key")}
    if mutual:
        env["SECMON_TLS_CA"] = str(pki / "ca.pem")
    return env


def node_tls(pki, ca="ca", cert: str | None = "node") -> dict[str, str]:
    env = {"SECMON_TLS_CA": str(pki / f"{ca}.pem")}
    if cert:
        env.update(SECMON_TLS_CERT=str(pki / f"{cert}.pem"), SECMON_TLS_KEY=str(pki / f"{cert}.key"))
    return env


def connected_hostnames(cluster) -> list[str]:
    result = cluster.cli("list", "--json")
    return [n["hostname"] for n in json.loads(result.stdout) if n["connected"]] if result.returncode == 0 else []


def test_tls_server_authentication(cluster, certificates):
    hub = cluster.start_hub(**tls_hub_env(certificates, mutual=False))
    hub.wait_for(r"\(TLS\)")
    cluster.start_node(hostname="good", **node_tls(certificates, cert=None))
    assert connected_hostnames(cluster) == ["good"]
    plain = cluster.start_node(hostname="plain", wait=False)  # a plain-TCP node to a TLS hub
    hub.wait_for("TLS handshake failed")
    assert plain.process.wait(WAIT) == 1
    distrustful = cluster.start_node(hostname="other", wait=False, **node_tls(certificates, ca="other-ca", cert=None))
    distrustful.wait_for("the hub's certificate is not trusted")
    assert connected_hostnames(cluster) == ["good"]


def test_mutual_tls_requires_a_certificate_from_our_ca(cluster, certificates):
    hub = cluster.start_hub(**tls_hub_env(certificates, mutual=True))
    cluster.start_node(hostname="good", **node_tls(certificates))
    for name, env in [("nocert", node_tls(certificates, cert=None)), ("rogue", node_tls(certificates, cert="rogue"))]:
        before = hub.count("TLS handshake failed")
        node = cluster.start_node(hostname=name, wait=False, **env)
        wait_until(lambda b=before: hub.count("TLS handshake failed") > b, what=f"{name} to be refused")
        assert node.process.wait(WAIT) == 1
    assert connected_hostnames(cluster) == ["good"]
    before = hub.count("TLS handshake failed")
    with socket.create_connection((hub.host, hub.port)) as raw:  # plain protocol bytes to a TLS port
        raw.sendall(b"\x00\x00\x00\x05hello")
        raw.settimeout(WAIT)
        assert not raw.recv(100).startswith(b"\x00")  # no protocol frame comes back, only a TLS alert or EOF
    wait_until(lambda: hub.count("TLS handshake failed") > before, what="the plain client to be refused")
    assert hub.process.poll() is None


def test_token_is_required_and_checked(cluster, workdir):
    token = workdir / "token"
    token.write_text("correct horse battery staple\n")
    wrong = workdir / "wrong"
    wrong.write_text("tr0ub4dor&3\n")
    token.chmod(0o600)  # a token others can read is refused
    wrong.chmod(0o600)
    hub = cluster.start_hub(SECMON_TOKEN_FILE=str(token))
    hub.wait_for(r"\(token\)")
    cluster.start_node(hostname="good", SECMON_TOKEN_FILE=str(token))
    for name, extra in [("wrong", {"SECMON_TOKEN_FILE": str(wrong)}), ("none", {})]:
        node = cluster.start_node(hostname=name, wait=False, **extra)
        node.wait_for("hub refused us: wrong or missing token")
        assert node.process.wait(WAIT) == 1
    hub.wait_for(r"refused: wrong or missing token")
    assert connected_hostnames(cluster) == ["good"]


def test_off_loopback_without_protection_needs_an_explicit_opt_in(cluster):
    refused = cluster.cli("hub", BIND_IP="0.0.0.0")
    assert refused.returncode == 2
    assert "anyone who can reach the port can join" in refused.stderr and "--allow-insecure" in refused.stderr
    hub = Daemon(secmon_argv("hub", "--allow-insecure"), {**cluster.env, "BIND_IP": "0.0.0.0"}, "hub")
    cluster.daemons.append(hub)
    hub.wait_for("DANGER: BIND_IP=0.0.0.0 is reachable from the network")


def test_a_hello_that_never_comes_is_cut_off(cluster, hub):
    with (
        socket.create_connection((hub.host, hub.port)) as silent,
        socket.create_connection((hub.host, hub.port)) as slow,
    ):
        slow.sendall(b"\x00\x00")  # half a header, then nothing: slowloris
        for raw in (silent, slow):
            raw.settimeout(WAIT)
            data = raw.recv(4096)
            assert b"no hello within 2 s" in data
            assert raw.recv(4096) == b""  # and then the hub hangs up
    hub.wait_for(r"node 127\.0\.0\.1: no hello within 2 s")


def test_an_error_in_place_of_a_hello_ends_the_link_on_both_sockets(cluster, hub):
    """A peer that sends an Error instead of a hello is hung up on, not left open to use up descriptors."""
    from secmon.protocol import encode
    from secmon.protocol import messages as m

    with socket.create_connection((hub.host, hub.port)) as tcp, socket.socket(socket.AF_UNIX) as unix:
        unix.connect(hub.socket)
        for raw in (tcp, unix):
            raw.sendall(encode(m.Error("x", "no hello from me")))
            raw.settimeout(WAIT)
            while raw.recv(4096):  # whatever the hub says, it then closes
                pass
    hub.wait_for(r"node 127\.0\.0\.1: closed by the peer before its hello: 'no hello from me'")


def test_a_node_that_ends_its_link_with_an_error_is_disconnected(cluster, hub):
    """An Error ends the link both ways: the hub closes it instead of keeping a mute node connected."""
    from secmon.protocol import FrameDecoder, encode
    from secmon.protocol import messages as m

    with socket.create_connection((hub.host, hub.port)) as raw:
        raw.sendall(encode(m.Hello(m.PROTOCOL_VERSION, m.ROLE_NODE, "muted")))
        raw.settimeout(WAIT)
        decoder = FrameDecoder()
        while m.Welcome not in {type(x) for x in decoder.feed(raw.recv(4096))}:
            pass
        raw.sendall(encode(m.Error("bye", "going away")))
        hub.wait_for(r"node 1 \(muted\) disconnected: closed by the peer: 'going away'")
        while raw.recv(4096):  # the hub hangs up
            pass


def test_node_limit(cluster):
    cluster.start_hub(SECMON_MAX_NODES="1")
    cluster.start_node(hostname="first")
    second = cluster.start_node(hostname="second", wait=False)
    second.wait_for("the hub already serves its limit of 1 nodes")


def test_a_client_of_another_uid_is_refused(cluster, hub, workdir):
    require_root_tools("setpriv", "/usr/bin/python3")  # root, to act as another user
    # Open the way on purpose, as a careless admin might: only the uid check is left.
    workdir.chmod(0o755)
    os.chmod(hub.socket, 0o666)
    # The hub refuses before any hello: the probe only connects and reads why.
    probe = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
        "s.settimeout(10); print(s.recv(4096))\n"
    )
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", probe, hub.socket],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert "uid 65534 may not use this hub" in result.stdout, result.stderr
    hub.wait_for("client refused: uid 65534 may not use this hub")
    assert cluster.cli("list").returncode == 0  # root (and the hub's own user) still may


def hello_as_nobody(socket_path: str, gid: int) -> str:
    """What a client hello from uid 65534 with group ``gid`` (and no other) gets from the socket."""
    from secmon.protocol import encode
    from secmon.protocol import messages as m

    probe = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(bytes.fromhex(sys.argv[2]))\n"
        "s.settimeout(10); print(s.recv(4096))\n"
    )
    hello = encode(m.Hello(m.PROTOCOL_VERSION, m.ROLE_CLIENT)).hex()
    argv = ["setpriv", "--reuid=65534", f"--regid={gid}", "--clear-groups", "/usr/bin/python3", "-c", probe]
    result = subprocess.run([*argv, socket_path, hello], capture_output=True, text=True, timeout=WAIT)
    return result.stdout + result.stderr


def test_a_socket_group_lets_its_members_in_and_no_one_else(cluster, workdir):
    require_root_tools("setpriv", "/usr/bin/python3")  # root, to act as another user
    import grp

    group = grp.getgrnam("nogroup").gr_gid
    hub = cluster.start_hub(SECMON_SOCKET_GROUP="nogroup")
    info = os.stat(hub.socket)
    assert stat.S_IMODE(info.st_mode) == 0o660 and info.st_gid == group
    workdir.chmod(0o755)  # let others reach the socket; the group and the uid check decide

    def connect_as(gid: int) -> str:
        return hello_as_nobody(hub.socket, gid)

    assert "welcome" in connect_as(group)  # a member of the socket's group is served
    assert "Permission denied" in connect_as(group - 1)  # anyone else cannot even connect


def test_a_socket_group_reaches_a_socket_in_a_directory_the_hub_creates(cluster, workdir):
    require_root_tools("setpriv", "/usr/bin/python3")  # root, to act as another user
    import grp

    group = grp.getgrnam("nogroup").gr_gid
    workdir.chmod(0o755)  # the path down to the hub's own directory is open, as /run is
    sock = workdir / "run" / "secmon" / "secmon.sock"
    cluster.start_hub(SECMON_SOCKET=str(sock), SECMON_SOCKET_GROUP="nogroup")
    info = sock.parent.stat()
    assert stat.S_IMODE(info.st_mode) == 0o750 and info.st_gid == group

    def connect_as(gid: int) -> str:
        return hello_as_nobody(str(sock), gid)

    assert "welcome" in connect_as(group)
    assert "Permission denied" in connect_as(group - 1)
    cluster.stop_hub()
    assert sock.parent.is_dir() and not sock.exists()
    # A directory made by someone else that shuts the group out is named at start-up.
    sock.parent.chmod(0o700)
    hub = cluster.start_hub(SECMON_SOCKET=str(sock), SECMON_SOCKET_GROUP="nogroup")
    hub.wait_for(r"members of SECMON_SOCKET_GROUP cannot reach the socket: .*/run/secmon is mode 0700")


def test_allowlist_writable_by_others_runs_nothing(cluster, hub):
    allow = cluster.allowlist("hi=echo hello\n", mode=0o666)
    cluster.start_node(hostname="alpha", COMMAND_ALLOWLIST_FILE=str(allow))
    result = cluster.cli("alpha", "hi")
    assert result.returncode == 1 and "is writable by group or others; refusing to run commands" in result.stderr
    allow.chmod(0o600)
    assert cluster.cli("alpha", "hi").stdout == "hello\n"


@pytest.mark.parametrize(("label", "reason"), [("hi\x1b[2J", "no spaces or control characters"), ("x" * 65, "1 to 64")])
def test_hostile_labels_are_rejected(cluster, hub, label, reason):
    allow = cluster.allowlist("hi=echo hello\n")
    cluster.start_node(hostname="alpha", COMMAND_ALLOWLIST_FILE=str(allow))
    result = cluster.cli("alpha", label)
    assert result.returncode == 1 and reason in result.stderr
    assert "\x1b" not in result.stderr  # the label is echoed back neutralised


def test_output_is_bounded(cluster, hub):
    allow = cluster.allowlist(
        "wide=python3 -c 'print(\"x\" * 100000)'\nhuge=python3 -c 'import sys; sys.stdout.write(\"y\" * 3000000)'\n"
    )
    cluster.start_node(hostname="alpha", COMMAND_ALLOWLIST_FILE=str(allow))
    wide = cluster.cli("alpha", "wide")
    assert wide.returncode == 0
    assert wide.stdout.startswith("x" * 16384) and "[83616 bytes cut]" in wide.stdout and len(wide.stdout) < 17000
    import anyio

    from secmon.client import HubClient

    async def whole() -> str:
        async with HubClient.connect(hub.socket) as client:
            items = [i async for i in client.execute("alpha", "huge", stream=False)]
        return items[-1].output

    output = anyio.run(whole)
    assert output.startswith("y" * 1024 * 1024)
    assert output[1024 * 1024 :] == "\n…[output cut: 1951424 more bytes]"


def test_garbage_storm_leaves_good_peers_served(cluster, hub):
    cluster.start_node(hostname="steady")
    rng = random.Random(1234)
    good_frames = [msgpack.packb({"t": "list", "request_id": 1}), msgpack.packb({"t": "keepalive"})]
    connections = refused = 0
    for round_ in range(40):
        for family in ("tcp", "unix"):
            raw = socket.create_connection((hub.host, hub.port)) if family == "tcp" else socket.socket(socket.AF_UNIX)
            if family == "unix":
                raw.connect(hub.socket)
            with raw:
                frames = []
                for _ in range(25):
                    choice = rng.random()
                    if choice < 0.3:
                        body = rng.randbytes(rng.randint(0, 64))
                    elif choice < 0.6:
                        body = msgpack.packb(
                            {"t": rng.choice(["hello", "state", "auth_events", "x"]), "v": rng.random()}
                        )
                    else:
                        body = bytearray(rng.choice(good_frames))
                        body[rng.randrange(len(body))] = rng.randrange(256)
                        body = bytes(body)
                    frames.append(len(body).to_bytes(4, "big") + body)
                connections += 1
                try:
                    raw.sendall(b"".join(frames))
                    raw.settimeout(5)
                    while raw.recv(65536):  # the hub's error, if it sends one
                        pass
                    refused += 1  # the hub closed the connection
                except (ConnectionResetError, BrokenPipeError):
                    refused += 1  # ... with garbage of ours still unread
                except OSError:
                    pass  # still open after 5 s: the hub kept talking to garbage
        if round_ % 10 == 0:
            assert connected_hostnames(cluster) == ["steady"]
    assert refused == connections  # every garbage connection was refused, none left hanging
    assert connected_hostnames(cluster) == ["steady"]
    assert hub.process.poll() is None
    assert hub.count("internal error") == 0


def test_hostile_user_names_are_neutralised_in_cli_output_and_valid_in_json(cluster, hub, workdir):
    log = workdir / "auth.log"
    log.write_text("")
    cluster.start_node("auth", hostname="alpha")
    cluster.wait_auth_ok("alpha")
    human = Daemon(secmon_argv("subscribe", "--since", "0"), cluster.env, "subscribe")
    machine = Daemon(secmon_argv("subscribe", "--since", "0", "--json"), cluster.env, "subscribe-json")
    evil = "\x1b]0;pwned\x07\x1b[2J\x1b[31mroot\r"
    with log.open("a") as f:
        f.write(f"2026-11-29T02:09:01+00:00 vm sshd[9]: Invalid user {evil} from 203.0.113.1 port 7\n")
    shown = human.wait_for("ssh_invalid_user.*")[0]
    assert "\x1b" not in shown and "\x07" not in shown and "\r" not in shown
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mroot\\x0d" in shown
    record = json.loads(machine.wait_for(".*ssh_invalid_user.*")[0])
    assert record["event"]["user"] == evil
