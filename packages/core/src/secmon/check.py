"""`secmon check`: the configuration a hub or node would start with, validated without starting it.

Like ``sshd -t`` and ``nginx -t``: it reads the environment and the files the
daemons would read, and lists every problem, one line each, where a daemon
would stop at the first. It changes nothing: a missing state directory is not
created, a state database is opened read-only.

To list every malformed variable in one run, a settings class is parsed again
with each variable that failed (a ConfigError's ``variable``) unset, until it
parses; the settings that come out carry defaults in their place and are used
for the checks of files that follow.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

from .collectors.sources import JournalSource, choose_auth_source
from .config import (
    HubSettings,
    NodeSettings,
    env_log_level,
    ignored_hub_variables,
    read_secret,
    runtime_dir_problem,
    state_error,
)
from .errors import ConfigError, StateCorrupt
from .tls import TlsFiles, hub_context, node_context

USAGE = """\
usage: secmon check [hub] [node] [--allow-insecure]

Validate the configuration `secmon hub` and `secmon node` would start with on this
machine, or only that of the role named: environment values, TLS files, token file
(and its permissions), state directory and database, the socket's runtime directory
(hub), the allowlist with the number of every line it would ignore, and AUTH_LOG (node).

Prints nothing and exits 0 when all is well (a line starting "note:", like variables
HUB_ADDRS overrides, is worth knowing but no problem); otherwise prints one line per
problem on stderr and exits 2. Changes nothing. --allow-insecure: the hub is started with it.
"""

ROLES = ("hub", "node")
EXIT_PROBLEMS = 2  # as for a malformed variable: the configuration is the operator's to fix

Settings = TypeVar("Settings")


def parse_settings(
    parse: Callable[[Mapping[str, str]], Settings], env: Mapping[str, str]
) -> tuple[Settings | None, list[str]]:
    """Settings from ``env`` and the problems found on the way (each malformed variable, once).

    The settings are None only when a problem names no variable that could be left out.
    """
    env = dict(env)
    problems: list[str] = []
    while True:
        try:
            return parse(env), problems
        except ConfigError as exc:
            problems.append(str(exc))
            if exc.variable is None or exc.variable not in env:
                return None, problems
            del env[exc.variable]


def _problem(check: Callable[[], object]) -> list[str]:
    """The line of the ConfigError ``check`` raises, or nothing."""
    try:
        check()
    except ConfigError as exc:
        return [str(exc)]
    return []


def state_problems(directory: Path, database: str) -> list[str]:
    """What would stop a daemon from using ``directory`` and its ``database`` file; creates nothing."""
    try:
        return _state_problems(directory, database)
    except OSError as exc:  # a directory on the way this user cannot enter
        return [f"SECMON_STATE_DIR: cannot look at {directory}: {exc.strerror}"]


def _state_problems(directory: Path, database: str) -> list[str]:
    if directory.exists():
        if not directory.is_dir():
            return [f"SECMON_STATE_DIR: {directory} exists and is not a directory"]
        if not os.access(directory, os.W_OK | os.X_OK):
            return [f"SECMON_STATE_DIR: {directory} is not writable by uid {os.getuid()}"]
    else:
        ancestor = next(parent for parent in directory.absolute().parents if parent.exists())
        if not ancestor.is_dir():
            return [f"SECMON_STATE_DIR: cannot create {directory}: {ancestor} is not a directory"]
        if not os.access(ancestor, os.W_OK | os.X_OK):
            return [f"SECMON_STATE_DIR: cannot create {directory}: {ancestor} is not writable by uid {os.getuid()}"]
        return []
    path = directory / database
    return [problem] if path.exists() and (problem := database_problem(path)) else []


def database_problem(path: Path) -> str | None:
    """Why SQLite cannot read ``path`` (opened read-only, every page checked), or None."""
    try:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            verdict = db.execute("PRAGMA quick_check").fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        return str(state_error(path, exc))
    if verdict != [("ok",)]:
        return str(StateCorrupt(path, f"quick_check: {verdict[0][0]}"))
    return None


def hub_problems(env: Mapping[str, str], allow_insecure: bool = False) -> list[str]:
    """Everything that would keep ``secmon hub`` from starting with ``env``."""
    from .hub import audit, history, noticelog, seen
    from .hub.server import check_exposure
    from .hub.store import DATABASE

    settings, problems = parse_settings(HubSettings.from_env, env)
    if problem := runtime_dir_problem(env):
        problems.append(problem)
    tls_problems = _problem(lambda: hub_context(TlsFiles.from_env(env)))
    token_problems = _problem(lambda: read_secret(env, "SECMON_TOKEN_FILE"))
    problems += tls_problems + token_problems
    if settings is None:
        return problems
    if not allow_insecure and not tls_problems and not token_problems:
        tls = TlsFiles.from_env(env).cert is not None
        token = read_secret(env, "SECMON_TOKEN_FILE") is not None
        problems += _problem(lambda: check_exposure(settings, tls, token, allow_insecure=False))
    if settings.state_dir is not None:
        problems += state_problems(settings.state_dir, DATABASE)
        problems += state_problems(settings.state_dir, history.DATABASE)
        if settings.nats is None:  # a hub of a cluster keeps its audit and notices in memory
            problems += state_problems(settings.state_dir, audit.DATABASE)
            problems += state_problems(settings.state_dir, noticelog.DATABASE)
    if settings.nats is None:  # event context is a hub alone's (docs/cluster.md)
        if settings.state_dir is not None:
            problems += state_problems(settings.state_dir, seen.DATABASE)
            problems += _mute_book_problems(settings.state_dir)
        problems += geoip_problems(settings.context.geoip_city_db, settings.context.geoip_asn_db)
    return problems


def geoip_problems(city: Path | None, asn: Path | None) -> list[str]:
    """Whether the GeoIP databases open (the maxminddb package is there, the files read), one line each."""
    from .hub.geoip import GeoIP

    problems = []
    if city is not None:
        problems += _problem(lambda: GeoIP(city, None).close())
    if asn is not None:
        problems += _problem(lambda: GeoIP(None, asn).close())
    return problems


def _mute_book_problems(directory: Path) -> list[str]:
    """Whether the mute rules saved in the state directory read (without creating anything)."""
    from .hub import mutes

    if not (directory / mutes.FILE).exists():
        return []
    return _problem(lambda: mutes.MuteBook(directory))


def node_problems(env: Mapping[str, str]) -> list[str]:
    """Everything that would keep ``secmon node`` from starting, or from doing what it was told."""
    from .node.commands import AllowlistError, check_allowlist
    from .node.journal import DATABASE

    settings, problems = parse_settings(NodeSettings.from_env, env)
    problems += _problem(lambda: node_context(TlsFiles.from_env(env)))
    problems += _problem(lambda: read_secret(env, "SECMON_TOKEN_FILE"))
    if settings is None:
        return problems
    if settings.allowlist is not None:
        try:
            allowlist = check_allowlist(settings.allowlist)
        except AllowlistError as exc:
            problems.append(f"COMMAND_ALLOWLIST_FILE: {exc}")
        else:
            problems += [
                f"COMMAND_ALLOWLIST_FILE: {settings.allowlist} line {line.number} ignored: {line.reason}"
                for line in allowlist.ignored
            ]
    problems += auth_log_problems(settings.auth_log)
    if settings.state_dir is not None:
        problems += state_problems(settings.state_dir, DATABASE)
    return problems


def auth_log_problems(setting: str) -> list[str]:
    """An AUTH_LOG the node could not follow (``auto`` picks whatever exists, so it is never wrong)."""
    if setting == "auto":
        return []
    source = choose_auth_source(setting)  # the node's own reading of the setting
    if isinstance(source, JournalSource):
        if not shutil.which("journalctl"):
            return [f"AUTH_LOG={setting}: journalctl is not installed"]
        if source.directory is not None and not source.directory.is_dir():
            return [f"AUTH_LOG={setting}: {source.directory} is not a directory"]
        return []
    try:
        if not source.is_file():
            return [f"AUTH_LOG: {source} is not a file" if source.exists() else f"AUTH_LOG: {source} does not exist"]
    except OSError as exc:
        return [f"AUTH_LOG: cannot look at {source}: {exc.strerror}"]
    if not os.access(source, os.R_OK):
        return [f"AUTH_LOG: {source} is not readable by uid {os.getuid()}"]
    return []


def check_configuration(
    env: Mapping[str, str], roles: Iterable[str] = ROLES, allow_insecure: bool = False
) -> list[str]:
    """One line per problem in the configuration of ``roles`` (hub, node) that ``env`` describes; none if fine."""
    roles = list(roles)
    problems = _problem(lambda: env_log_level(env))
    if "hub" in roles:
        problems += hub_problems(env, allow_insecure)
    if "node" in roles:
        problems += node_problems(env)
    return list(dict.fromkeys(problems))  # a variable both roles read is reported once


def configuration_notes(env: Mapping[str, str], roles: Iterable[str] = ROLES) -> list[str]:
    """One line per thing worth knowing in ``env`` that works as it is (printed; not a problem)."""
    notes = []
    if "node" in roles and (ignored := ignored_hub_variables(env)):
        notes.append(f"{' and '.join(ignored)} ignored: HUB_ADDRS is set and lists the hubs to use")
    return notes


def main(args: list[str]) -> int:
    """``secmon check [hub] [node] [--allow-insecure]``: print the problems; 0 if none, else 2."""
    if any(arg in ("-h", "--help", "help") for arg in args):
        print(USAGE, end="")
        return 0
    unknown = [arg for arg in args if arg not in (*ROLES, "--allow-insecure")]
    if unknown:
        print(f"secmon check: unknown argument {unknown[0]!r}; see `secmon check --help`", file=sys.stderr)
        return 2
    roles = [arg for arg in args if arg in ROLES] or ROLES
    problems = check_configuration(os.environ, roles, "--allow-insecure" in args)
    for note in configuration_notes(os.environ, roles):
        print(f"secmon check: note: {note}", file=sys.stderr)
    for problem in problems:
        print(f"secmon check: {problem}", file=sys.stderr)
    return EXIT_PROBLEMS if problems else 0
