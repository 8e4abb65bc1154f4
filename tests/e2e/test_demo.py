"""`hatch run demo` (scripts/demo.py) beside a hub that is already running here.

The environment points at that hub (its socket, its port), as an operator's
shell might: the demo must still use a socket and port of its own, leave the
other hub and its nodes alone, remove its temporary directory and exit 0 on
Ctrl-C.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import sys
from pathlib import Path

from conftest import WAIT, Daemon

REPO = Path(__file__).resolve().parents[2]


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_the_demo_keeps_to_itself_and_cleans_up_on_ctrl_c(cluster, workdir):
    other = cluster.start_hub()
    cluster.start_node(hostname="bystander")
    env = {
        **cluster.env,
        "BIND_PORT": str(other.port),
        "HUB_IP": other.host,
        "HUB_PORT": str(other.port),
        "SECMON_HOSTNAME": "demo-node",
    }
    demo = Daemon([sys.executable, str(REPO / "scripts/demo.py")], env, "demo")
    try:
        live = demo.wait_for(r"Live updates from the demo hub \(127\.0\.0\.1:(\d+), SECMON_SOCKET=(\S+)\)", timeout=30)
        port, demo_socket = int(live[1]), Path(live[2])
        assert port != other.port and str(demo_socket) != other.socket
        assert demo.count(r"\bdemo-node\b") >= 1  # the demo listed its own node
        demo.signal(signal.SIGINT)
        assert demo.process.wait(WAIT) == 0, "\n".join(demo.lines[-20:])
    finally:
        demo.stop()
    assert not demo_socket.parent.exists(), f"{demo_socket.parent} was left behind"
    assert port_is_free(port), "the demo's hub still listens"
    # The other hub served on, with its own node only; nothing of the demo joined it.
    assert other.process.poll() is None and Path(other.socket).exists()
    listed = cluster.cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [node["hostname"] for node in json.loads(listed.stdout)] == ["bystander"]
    assert not re.search(r"demo-node", "\n".join(other.lines))
