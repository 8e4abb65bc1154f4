"""Quick start: a hub and a node on this machine, then live updates until Ctrl-C.

Uses a private socket in a temporary directory unless SECMON_SOCKET is set,
and port 9992 unless BIND_PORT/HUB_PORT say otherwise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def secmon(*args: str, env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "secmon", *args], env=env, **kwargs)


def main() -> int:
    env = dict(os.environ)
    workdir = Path(tempfile.mkdtemp(prefix="secmon-demo-"))
    env.setdefault("SECMON_SOCKET", str(workdir / "secmon.sock"))
    port = env.setdefault("BIND_PORT", "9992")
    env.setdefault("HUB_PORT", port)
    socket_path = Path(env["SECMON_SOCKET"])
    hub = secmon("hub", env=env)
    deadline = time.monotonic() + 10
    while not socket_path.exists():
        if hub.poll() is not None or time.monotonic() > deadline:
            print("demo: the hub did not start", file=sys.stderr)
            return 1
        time.sleep(0.05)
    node = secmon("node", "who", "wg", "auth", "--reconnect", env=env)
    children = [node, hub]
    try:
        time.sleep(1)  # let the node report its first state before we list it
        subprocess.run([sys.executable, "-m", "secmon", "list"], env=env)
        print(f"\nLive updates (SECMON_SOCKET={socket_path}); log in over ssh, run su or sudo; Ctrl-C to stop.\n")
        return subprocess.run([sys.executable, "-m", "secmon", "subscribe"], env=env).returncode
    except KeyboardInterrupt:
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    sys.exit(main())
