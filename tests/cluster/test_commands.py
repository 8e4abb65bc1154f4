"""Commands across hubs, on a real nats-server: the CLI on one hub runs commands on nodes other hubs hold.

Each node runs a real allowlist; scripts write what they are doing (pid files,
barrier files) under the test's directory, so the test can see that a process
ran, ran at the same time as others, or is gone.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import WAIT, Daemon, secmon_argv, wait_until
from machine import process_alive

from .conftest import HubGroup


def allowlist(group: HubGroup, name: str, text: str) -> str:
    path = group.workdir / f"allow-{name}"
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def start_nodes(group: HubGroup, placement: dict[str, str], allow: dict[str, str], **extra: str) -> None:
    """Node ``hostname`` on hub ``placement[hostname]`` with the allowlist ``allow[hostname]``; every hub sees all."""
    for hostname, hub in placement.items():
        group.start_node(hub, hostname, COMMAND_ALLOWLIST_FILE=allow[hostname], **extra)
    for hub in group.hubs:
        wait_until(
            lambda hub=hub: sum(n["connected"] for n in group.nodes(hub)) == len(placement),
            what=f"hub {hub} to see the {len(placement)} nodes connected",
        )


def cli_daemon(group: HubGroup, hub: str, *args: str, **extra: str) -> Daemon:
    daemon = Daemon(secmon_argv(*args), {**group.envs[hub], **extra}, f"secmon {' '.join(args)} on {hub}")
    group.daemons.append(daemon)
    return daemon


def hang_script(pids: Path) -> str:
    """A command that records its shell's and its child's pids, says so, and waits for ever."""
    return f"hang=sh -c 'sleep 300 & echo $! > {pids}; echo $$ >> {pids}; echo started; wait'\n"


def test_a_command_from_hub_a_streams_from_a_node_of_hub_c(three_hubs):
    gate = three_hubs.workdir / "gate"
    script = f"echo first; while [ ! -e {gate} ]; do sleep 0.02; done; echo second"
    text = (
        f"gated=sh -c '{script}'\nbad=sh -c 'echo oops; exit 7'\nslow=sleep 30\n"
        "big=sh -c 'yes xxxxxxxxx | head -c 300000'\n"
    )
    start_nodes(three_hubs, {"n-c": "c"}, {"n-c": allowlist(three_hubs, "c", text)}, COMMAND_EXECUTE_TIMEOUT="2")
    serial = next(n["serial"] for n in three_hubs.nodes("a") if n["hostname"] == "n-c")

    cli = cli_daemon(three_hubs, "a", "n-c", "gated")
    cli.wait_for("^first$")  # streamed across hubs while the command still waits for its gate
    assert cli.process.poll() is None
    gate.touch()
    cli.wait_for("^second$")
    assert cli.process.wait(WAIT) == 0
    assert cli.lines == ["first", "second"]
    three_hubs.hubs["c"].wait_for(r"command 'gated' on node \d+ \(n-c\) for hub a")

    failed = three_hubs.cli("a", "n-c", "bad")
    assert failed.returncode == 7 and failed.stdout == "oops\n"
    assert f"node {serial}: failure (exit 7)" in failed.stderr  # the serial every hub knows the node by
    timed_out = three_hubs.cli("b", "n-c", "slow")  # the node's own COMMAND_EXECUTE_TIMEOUT
    assert timed_out.returncode == 124 and "killed after 2 s" in timed_out.stderr
    refused = three_hubs.cli("a", "n-c", "rm")
    assert refused.returncode == 1 and "'rm' is not in this node's allowlist" in refused.stderr

    # A result too large for one NATS message travels in pieces and arrives whole.
    program = (
        "import anyio\nfrom secmon.client import HubClient\nasync def main():\n"
        "    async with HubClient.connect() as hub:\n"
        "        async for item in hub.execute('n-c', 'big', stream=False):\n"
        "            print(type(item).__name__, getattr(item, 'serial', ''), len(getattr(item, 'output', '')))\n"
        "anyio.run(main)\n"
    )
    whole = subprocess.run(
        [sys.executable, "-c", program], env=three_hubs.envs["a"], capture_output=True, text=True, timeout=WAIT
    )
    assert whole.returncode == 0, whole.stderr
    assert whole.stdout.splitlines() == ["Started  0", f"CommandResult {serial} 300000"]


def test_every_node_of_the_cluster_runs_a_fan_out_from_one_hub(three_hubs):
    # Each command waits until all three have started: run one after another, they would time out.
    barrier = three_hubs.workdir / "barrier"
    barrier.mkdir()
    meet = f"touch {barrier}/$$; while [ $(ls {barrier} | wc -l) -lt 3 ]; do sleep 0.02; done; echo ready"
    placement = {"n-a": "a", "n-b": "b", "n-c": "c"}
    allow = {
        host: allowlist(three_hubs, host, f"meet=sh -c '{meet}'\ncheck={'false' if host == 'n-b' else 'true'}\n")
        for host in placement
    }
    start_nodes(three_hubs, placement, allow, COMMAND_EXECUTE_TIMEOUT="10")

    result = three_hubs.cli("a", "-", "meet", timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert sorted(line for line in lines if line.endswith(": ready")) == ["n-a: ready", "n-b: ready", "n-c: ready"]
    assert lines[-1] == "3 nodes: 3 succeeded, 0 failed"

    checked = three_hubs.cli("c", "-", "check")
    assert checked.returncode == 1
    assert "n-b: failure (exit 1)" in checked.stdout
    assert checked.stdout.splitlines()[-1] == "3 nodes: 2 succeeded, 1 failed"


def test_ctrl_c_on_hub_a_kills_the_process_group_on_a_node_of_hub_c(three_hubs):
    pids = three_hubs.workdir / "pids"
    node_allow = allowlist(three_hubs, "c", hang_script(pids))
    start_nodes(three_hubs, {"n-c": "c"}, {"n-c": node_allow})
    node = three_hubs.daemons[-1]
    cli = cli_daemon(three_hubs, "a", "n-c", "hang")
    cli.wait_for("^started$")
    children = [int(p) for p in pids.read_text().split()]
    assert len(children) == 2 and all(process_alive(p) for p in children)
    cli.signal(signal.SIGINT)
    assert cli.process.wait(WAIT) == 130
    wait_until(lambda: not any(process_alive(p) for p in children), what="the sleep and its shell on n-c to die")
    node.wait_for(r"command 'hang' \(request \d+\): cancelled")


def test_a_node_wait_timeout_for_a_node_of_another_hub(three_hubs):
    allow = allowlist(three_hubs, "c", "hi=echo hi\nquiet=sleep 30\n")
    start_nodes(three_hubs, {"n-c": "c"}, {"n-c": allow})
    node = three_hubs.daemons[-1]

    # The node says nothing within NODE_WAIT_TIMEOUT: the command is given up, and killed on the node.
    result = subprocess.run(
        secmon_argv("n-c", "quiet"), env={**three_hubs.envs["a"], "NODE_WAIT_TIMEOUT": "1"},
        capture_output=True, text=True, timeout=WAIT,
    )  # fmt: skip
    assert result.returncode == 124 and "node did not answer within 1 s" in result.stderr
    node.wait_for(r"command 'quiet' \(request \d+\): cancelled")

    # The node is gone; the client waits for it, and it comes back on another hub.
    node.signal(signal.SIGKILL)
    wait_until(lambda: not three_hubs.nodes("a")[0]["connected"], what="hub a to see n-c gone")
    gone = three_hubs.cli("a", "n-c", "hi")
    assert gone.returncode == 1 and "is not connected" in gone.stderr
    waiting = subprocess.Popen(
        secmon_argv("n-c", "hi"), env={**three_hubs.envs["a"], "NODE_WAIT_TIMEOUT": "10"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    three_hubs.hubs["a"].wait_for(r"waiting up to 10 s for node 'n-c'")
    three_hubs.start_node("b", "n-c", COMMAND_ALLOWLIST_FILE=allow)
    out, err = waiting.communicate(timeout=WAIT)
    assert waiting.returncode == 0, err
    assert out == "hi\n"
    assert {n["hostname"]: n["hub"] for n in three_hubs.nodes("a")} == {"n-c": "b"}


def test_a_holding_hub_killed_mid_command_gives_the_client_an_error_soon(three_hubs):
    pids = three_hubs.workdir / "pids"
    start_nodes(three_hubs, {"n-c": "c"}, {"n-c": allowlist(three_hubs, "c", hang_script(pids))})
    cli = cli_daemon(three_hubs, "a", "n-c", "hang")
    cli.wait_for("^started$")
    children = [int(p) for p in pids.read_text().split()]
    killed = time.monotonic()
    three_hubs.hubs["c"].signal(signal.SIGKILL)
    code = cli.process.wait(WAIT)
    elapsed = time.monotonic() - killed
    assert code == 1
    line = cli.wait_for(r"error: hub c, which holds node \d+, went silent")
    assert "fate there is unknown" in line.string
    # three keepalive intervals (0.5 s here) of silence and a sweep, with room for a loaded machine
    assert elapsed < 6, f"the client waited {elapsed:.1f} s"
    # the node lost its hub: its commands died with the link
    wait_until(lambda: not any(process_alive(p) for p in children), what="the command on n-c to die with its hub link")
    # Another command for n-c fails at once: NATS says no one answers for hub c, or (once the live hubs
    # have reported hub c lost) the view says n-c is not connected.
    again = three_hubs.cli("a", "n-c", "hang")
    assert again.returncode == 1
    assert "hub c, which holds node" in again.stderr or re.search(r"node \d+ \(n-c\) is not connected", again.stderr)
    assert "is not connected" in again.stderr


def test_an_asking_hub_killed_mid_command_leaves_nothing_running(three_hubs):
    pids = three_hubs.workdir / "pids"
    start_nodes(three_hubs, {"n-c": "c"}, {"n-c": allowlist(three_hubs, "c", hang_script(pids))})
    node = three_hubs.daemons[-1]
    cli = cli_daemon(three_hubs, "a", "n-c", "hang")
    cli.wait_for("^started$")
    children = [int(p) for p in pids.read_text().split()]
    three_hubs.hubs["a"].signal(signal.SIGKILL)
    three_hubs.hubs["c"].wait_for(r"hub a went silent: its command on node \d+ is cancelled")
    wait_until(lambda: not any(process_alive(p) for p in children), what="the orphaned command on n-c to be killed")
    node.wait_for(r"command 'hang' \(request \d+\): cancelled")
    assert json.loads(three_hubs.cli("c", "n-c", "--json").stdout)["connected"]


def http_bridge(group: HubGroup, hub: str) -> tuple[str, dict[str, str]]:
    """secmon-http on a free port, talking to hub ``hub``; its base URL and the header with its token."""
    env = {**group.envs[hub], "SERVER_IP": "127.0.0.1", "SERVER_PORT": "0", "XDG_CONFIG_HOME": str(group.workdir)}
    daemon = Daemon([sys.executable, "-m", "secmon_http"], env, f"secmon-http on {hub}")
    group.daemons.append(daemon)
    url = daemon.wait_for(r"serving on (http://\S+)")[1]
    token = re.search(r"[?&]token=([^&\s]+)", daemon.wait_for(r"dashboard: (http://\S+)")[1])
    return url, {"Authorization": f"Bearer {token[1]}"} if token else {}


def execute_over_http(url: str, auth: dict[str, str], node: str, label: str, expires: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/{node}/execute", json.dumps({"label": label, "stream": False}).encode(), method="POST",
        headers={"Content-Type": "application/json", "Expires-In": expires, **auth},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_expires_in_over_http_holds_for_a_node_of_another_hub(three_hubs):
    start_nodes(three_hubs, {"n-b": "b"}, {"n-b": allowlist(three_hubs, "b", "hi=echo hi\nquiet=sleep 30\n")})
    serial = three_hubs.nodes("a")[0]["serial"]
    url, auth = http_bridge(three_hubs, "a")
    status, answer = execute_over_http(url, auth, "n-b", "hi", "5")
    assert status == 200 and answer["output"] == "hi\n"
    assert (answer["serial"], answer["hostname"]) == (serial, "n-b")
    status, answer = execute_over_http(url, auth, "n-b", "quiet", "1")
    assert status == 504 and "did not answer within 1 s" in answer["error"]
    next(d for d in three_hubs.daemons if d.name == "node n-b").wait_for(r"command 'quiet' \(request \d+\): cancelled")
