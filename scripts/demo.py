"""Quick start (`hatch run demo`): a hub and a node on this machine, then live updates until Ctrl-C.

The demo keeps to itself: its own socket in a temporary directory and a port
the system picks, whatever SECMON_SOCKET, BIND_PORT or HUB_PORT say, so it
never joins or disturbs a hub already running here. Ctrl-C stops its hub and
node, removes the directory, and exits 0.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

START_TIMEOUT = 15.0  # seconds the hub and the node get to come up (a loaded machine is slow to import)

# Variables that say where a hub, its socket, its state or its peers are: the demo chooses its own.
PLACES = ("HUB_", "BIND_", "SECMON_SOCKET", "SECMON_STATE_DIR", "SECMON_TLS_", "SECMON_TOKEN_FILE", "SECMON_NATS")


class Child:
    """A secmon process whose log lines go on to our stderr, and can be waited for."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "secmon", *args], env=env, stderr=subprocess.PIPE, text=True
        )
        self._lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._forward, daemon=True).start()

    def _forward(self) -> None:
        for line in self.process.stderr:
            sys.stderr.write(line)
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._lines.append("")  # end of output
            self._changed.notify_all()

    def wait_for(self, pattern: str) -> re.Match[str] | None:
        """The first log line matching ``pattern``; None if the process ends or times out first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + START_TIMEOUT
        seen = 0
        with self._changed:
            while True:
                for line in self._lines[seen:]:
                    if line == "":
                        return None
                    if match := regex.search(line):
                        return match
                seen = len(self._lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(workdir: Path) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PLACES)}
    socket_path = workdir / "secmon.sock"
    env.update(SECMON_SOCKET=str(socket_path), BIND_IP="127.0.0.1", BIND_PORT="0", PYTHONUNBUFFERED="1")
    children: list[Child] = []
    try:
        hub = Child(["hub"], env)
        children.append(hub)
        listening = hub.wait_for(r"listening for nodes on \S+:(\d+)")
        if listening is None:
            print("demo: the hub did not start", file=sys.stderr)
            return 1
        port = listening[1]
        env.update(HUB_IP="127.0.0.1", HUB_PORT=port)
        node = Child(["node", "who", "wg", "auth", "--reconnect"], env)
        children.append(node)
        if node.wait_for(r"connected to hub") is None:
            print("demo: the node did not connect", file=sys.stderr)
            return 1
        subprocess.run([sys.executable, "-m", "secmon", "list"], env=env)
        print(
            f"\nLive updates from the demo hub (127.0.0.1:{port}, SECMON_SOCKET={socket_path}); "
            "log in over ssh, run su or sudo; Ctrl-C to stop.\n",
            flush=True,
        )
        result = subprocess.run([sys.executable, "-m", "secmon", "subscribe"], env=env)
        return 0 if result.returncode in (0, 130, -signal.SIGINT) else result.returncode
    except KeyboardInterrupt:
        return 0
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not leave a daemon behind
            signal.signal(signum, signal.SIG_IGN)
        for child in reversed(children):
            child.stop()


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # stopped either way, the demo cleans up the same
    workdir = Path(tempfile.mkdtemp(prefix="secmon-demo-"))
    try:
        return run(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
