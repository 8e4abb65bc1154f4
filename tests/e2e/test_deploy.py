"""The documented install, followed in a scratch root: deploy/install.sh with DESTDIR.

The installer builds a real virtual environment from this checkout with the
system's Python; the units it installs are checked offline with
`systemd-analyze verify --root` (no systemd runs here), which also finds their
ExecStart programs inside the scratch root. Then the installed hub runs as its
unit would (socket group, state directory), and a temporary user in the
socket's group uses the installed `secmon list` while a non-member is told why
not.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import WAIT, Daemon, require_root_tools

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
UNITS = ["secmon-hub", "secmon-node", "secmon-http", "secmon-tg", "secmon-dc"]
INSTALL_TIMEOUT = 300  # pip builds four packages and fetches their dependencies


def _system_python_can_make_venvs() -> bool:
    check = "import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))"
    return Path(SYSTEM_PYTHON).exists() and subprocess.run([SYSTEM_PYTHON, "-c", check]).returncode == 0


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    """A scratch root after `DESTDIR=root deploy/install.sh hub http telegram discord node`."""
    if not _system_python_can_make_venvs():
        pytest.skip(f"needs {SYSTEM_PYTHON} 3.11+ with venv (package python3-venv)")
    path = Path(tempfile.mkdtemp(prefix="sm-deploy-", dir="/tmp"))
    path.chmod(0o755)  # as / is: other users reach what is installed under it
    try:
        env = {**os.environ, "DESTDIR": str(path), "PYTHON": SYSTEM_PYTHON}
        for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
            env.pop(name, None)
        result = subprocess.run(
            [str(REPO / "deploy" / "install.sh"), "hub", "http", "telegram", "discord", "node"],
            env=env,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def unit_settings(path: Path) -> list[tuple[str, str]]:
    """(key, value) of every setting in a unit file, in order (keys like Environment repeat)."""
    pairs = []
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


def test_the_installer_builds_an_environment_whose_programs_run(root):
    bin_dir = root / "opt/secmon/bin"
    for argv, expected in (
        (["secmon", "help"], "secmon hub"),
        (["secmon", "--help"], "secmon subscribe"),
        (["secmon-http", "help"], "secmon-http"),
        (["secmon-tg", "help"], "secmon-tg"),
        (["secmon-dc", "help"], "secmon-dc test"),
    ):
        result = subprocess.run([str(bin_dir / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=WAIT)
        assert result.returncode == 0 and expected in result.stdout, result.stderr
    # The environment's Python is the system's, not the one running these tests.
    assert (bin_dir / "python").resolve() == Path(SYSTEM_PYTHON).resolve()
    # `secmon` on the PATH is a wrapper that runs the environment's, on the service's socket.
    wrapper = (root / "usr/local/bin/secmon").read_text()
    assert "SECMON_SOCKET:=/run/secmon/secmon.sock" in wrapper
    assert "exec /opt/secmon/bin/secmon " in wrapper and os.access(bin_dir / "secmon", os.X_OK)
    settings = root / "etc/secmon"
    for name in ("hub.env", "node.env", "allowlist", "telegram.env", "discord.env"):
        assert stat.S_IMODE((settings / name).stat().st_mode) == 0o600, name
    assert (settings / "allowlist").read_text() == (REPO / "deploy/allowlist.example").read_text()


def test_running_it_again_keeps_the_settings(root):
    node_env = root / "etc/secmon/node.env"
    node_env.write_text("HUB_IP=10.9.8.7\n")
    env = {**os.environ, "DESTDIR": str(root), "PYTHON": SYSTEM_PYTHON}
    result = subprocess.run(
        [str(REPO / "deploy/install.sh"), "node"], env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT
    )
    assert result.returncode == 0, result.stderr
    assert f"kept {node_env}" in result.stdout and node_env.read_text() == "HUB_IP=10.9.8.7\n"


def test_an_unknown_component_is_a_usage_error(root):
    result = subprocess.run([str(REPO / "deploy/install.sh"), "hubb"], capture_output=True, text=True, timeout=WAIT)
    assert result.returncode == 2 and "unknown component 'hubb'" in result.stderr


def test_the_units_verify_offline_and_point_at_the_environment(root):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("needs systemd-analyze (package systemd)")
    # verify --root resolves the targets the units name (multi-user.target, …) inside the root.
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True, dirs_exist_ok=True)
    result = subprocess.run(
        [analyze, "verify", f"--root={root}", *(f"{unit}.service" for unit in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Warnings (an unknown key, a missing program) are printed even when the exit status is 0.
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr
    for unit in UNITS:
        settings = unit_settings(root / "etc/systemd/system" / f"{unit}.service")
        program = dict(settings)["ExecStart"].split()[0]
        assert program.startswith("/opt/secmon/bin/"), unit
        assert os.access(root / program.lstrip("/"), os.X_OK), f"{unit}: {program} is not in the environment"
    hub = unit_settings(root / "etc/systemd/system/secmon-hub.service")
    assert ("RuntimeDirectory", "secmon") in hub and ("RuntimeDirectoryMode", "0750") in hub
    assert ("Group", "secmon") in hub and ("Environment", "SECMON_SOCKET_GROUP=secmon") in hub
    assert ("Environment", "SECMON_SOCKET=/run/secmon/secmon.sock") in hub
    # Under ProtectSystem=strict (or full, for /var) only a unit's own state directory is writable.
    state_dirs = {}
    for unit in UNITS:
        settings = unit_settings(root / "etc/systemd/system" / f"{unit}.service")
        for key, value in settings:
            if key == "Environment" and value.startswith("SECMON_STATE_DIR="):
                state_dirs[unit] = value.partition("=")[2]
                assert ("StateDirectory", value.removeprefix("SECMON_STATE_DIR=/var/lib/")) in settings, unit
    expected = {"secmon-hub": "/var/lib/secmon", "secmon-node": "/var/lib/secmon-node"}
    assert state_dirs == {**expected, "secmon-http": "/var/lib/secmon-http"}


@pytest.fixture
def socket_group() -> Iterator[tuple[str, str]]:
    """A temporary group and a user in it (no password, no home), removed afterwards."""
    require_root_tools("groupadd", "useradd", "userdel", "groupdel", "setpriv")
    group, member = f"smg{os.getpid()}", f"smm{os.getpid()}"
    subprocess.run(["groupadd", group], check=True)
    try:
        subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--groups", group, member], check=True
        )
        try:
            yield group, member
        finally:
            subprocess.run(["userdel", member], check=True)
    finally:
        subprocess.run(["groupdel", group], check=True)


def test_a_member_of_the_socket_group_uses_the_installed_cli(root, socket_group):
    group, member = socket_group
    secmon = str(root / "opt/secmon/bin/secmon")
    (root / "run").mkdir(mode=0o755, exist_ok=True)
    state = root / "var/lib/secmon"
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    sock = root / "run/secmon/secmon.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECMON_", "HUB_", "BIND_", "COMMAND_"))}
    env.update(PYTHONUNBUFFERED="1", NO_COLOR="1", SECMON_SOCKET=str(sock))
    # As the unit runs it: the socket group, the state directory; the hub makes /run/secmon itself.
    hub_env = {**env, "SECMON_SOCKET_GROUP": group, "SECMON_STATE_DIR": str(state), "BIND_PORT": "0"}
    hub = Daemon([secmon, "hub"], hub_env, "hub")
    node = http = None
    try:
        port = hub.wait_for(r"listening for nodes on \S+:(\d+)")[1]
        node_env = {**env, "HUB_PORT": port, "SECMON_HOSTNAME": "deploy-check"}
        node = Daemon([secmon, "node"], node_env, "node")
        node.wait_for(r"connected to hub .* as node \d+")
        info = sock.parent.stat()
        assert stat.S_IMODE(info.st_mode) == 0o750 and info.st_gid == _gid(group)

        as_member = ["setpriv", f"--reuid={member}", f"--regid={member}", "--init-groups"]
        listed = subprocess.run([*as_member, secmon, "list"], env=env, capture_output=True, text=True, timeout=WAIT)
        assert listed.returncode == 0 and "deploy-check" in listed.stdout, listed.stderr

        as_other = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        refused = subprocess.run([*as_other, secmon, "list"], env=env, capture_output=True, text=True, timeout=WAIT)
        assert refused.returncode == 1, refused.stdout
        assert refused.stderr == (
            f"secmon: cannot connect to {sock}: permission denied (its directory {sock.parent} is owned by "
            f"root:{group}, mode 0750: run as root or a member of group {group})\n"
        )
        assert any(state.iterdir()), "the hub kept nothing in SECMON_STATE_DIR"

        # The HTTP bridge, as its unit runs it: the token it makes lands in its state directory.
        http_state = root / "var/lib/secmon-http"
        http_state.mkdir(mode=0o700, parents=True, exist_ok=True)
        http_env = {**env, "SECMON_STATE_DIR": str(http_state), "SERVER_IP": "127.0.0.1", "SERVER_PORT": "0"}
        http = Daemon([str(root / "opt/secmon/bin/secmon-http")], http_env, "secmon-http")
        http.wait_for(r"dashboard: http://\S+\?token=\w+")
        token = http_state / "http-token"
        assert stat.S_IMODE(token.stat().st_mode) == 0o600 and token.read_text().strip()
    finally:
        if http is not None:
            http.stop()
        if node is not None:
            node.stop()
        hub.stop()


def _gid(group: str) -> int:
    import grp

    return grp.getgrnam(group).gr_gid
