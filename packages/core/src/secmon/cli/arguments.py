"""The words of the `secmon` command line and what each one takes; parsing only, no I/O.

    secmon WORD ...          a reserved word: hub, node, list, subscribe, events, authlog, check, help, ...
    secmon NODE [LABEL]      anything else names a node: show it, or run an allowed command on it

Each reserved word has its own argparse parser, so ``secmon WORD --help`` is that
word's usage. A first word that is not reserved is a node query for the NODE
parser, so ``secmon node-a --help`` is help too, never a label (a label that
starts with ``-`` goes after ``--``). ``--json`` may appear anywhere before ``--``.

``parse`` returns a Namespace whose ``command`` says what to run; it raises
HelpShown with the text to print for --help, and ConfigError (one line, exit 2)
for a usage error.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import NoReturn

from .. import eventquery
from ..errors import ConfigError
from ..protocol import messages as m

OVERVIEW = """\
usage:
  secmon hub [--allow-insecure]       launch hub daemon (--allow-insecure: listen off
                                      loopback without TLS or a token)
  secmon node [who] [wg] [auth]       launch node daemon
    [--reconnect]
  secmon subscribe [--since SEQ]      print live updates from all nodes (resume after SEQ)
  secmon events [--since TIME|SEQ]    print auth events from the hub's history
    [--until TIME] [--node N] [--kind K] [--user U] [--source CIDR] [--failures] [--limit N]
  secmon <list|->                     list all recently connected nodes
  secmon <node>                       show one node (serial, address or hostname)
  secmon <node> <command-label>       run an allowed command, stream its output
  secmon - <command-label>            run it on every connected node
  secmon status                       the hub's state: in a cluster, its link to the others
  secmon check [hub] [node]           validate this machine's hub/node configuration
  secmon authlog [FILE|-]             print the auth events SecMon sees in log lines
    [--stats] [--unmatched]
  secmon help [WORD]                  show this help, or the help of one word
  secmon WORD --help                  the same

options:
  --json                              machine-readable output (list, node, subscribe, events, status)

environment (see the README for all):
  hub     BIND_IP, BIND_PORT, DISCONNECT_GRACE_PERIOD, ASSUME_HOSTNAME_UNIQUE,
          SECMON_STATE_DIR, SECMON_HISTORY_DAYS, SECMON_HISTORY_MAX_EVENTS
  node    HUB_IP, HUB_PORT or HUB_ADDRS, COMMAND_ALLOWLIST_FILE, COMMAND_EXECUTE_TIMEOUT,
          AUTH_LOG
  client  NODE_WAIT_TIMEOUT, SECMON_SOCKET
"""

MONITOR_NAMES = ("who", "wg", "auth")
ALL_NODES = "-"
# Words that are never node names. Those in NOT_YET are kept for commands still to come.
RESERVED = ("check", "events", "mute", "audit", "authlog", "help", "hub", "node", "list", "subscribe", "status")
NOT_YET = {
    "mute": "add CIDR|user:U|node:N|kind:K [--for DURATION] [--reason TEXT] | list | rm ID",
    "audit": "[--since TIME] [--json]",
}
JSON_HELP = "print JSON instead of text (may appear anywhere on the line)"


class HelpShown(Exception):
    """Raised instead of printing when help was asked for; ``text`` is what to print (exit 0)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class _Parser(argparse.ArgumentParser):
    """An argparse parser that raises instead of printing and exiting."""

    def __init__(
        self,
        word: str,
        help_text: Callable[[], str] | None = None,
        *,
        usage: str | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(prog=f"secmon {word}", usage=usage, description=description, allow_abbrev=False)
        self.hint = f"secmon {word} --help"
        self._help_text = help_text  # for a word whose own module documents it

    def print_help(self, file: object = None) -> NoReturn:
        raise HelpShown(self._help_text() if self._help_text else self.format_help())

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see `{self.hint}`)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise ConfigError(message or f"exit {status}")  # argparse calls it only for error() and help


def _monitor(name: str) -> str:
    if name not in MONITOR_NAMES:
        raise argparse.ArgumentTypeError(f"{name!r} is not a monitor: choose from {', '.join(MONITOR_NAMES)}")
    return name


def _sequence(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a sequence number, got {text!r}")
    return int(text)


def _hub() -> _Parser:
    parser = _Parser("hub", description="Launch the hub daemon: nodes connect over TCP, clients over its Unix socket.")
    parser.add_argument(
        "--allow-insecure",
        action="store_true",
        help="listen on a non-loopback BIND_IP without TLS or a token (anyone who reaches the port can join)",
    )
    return parser


def _node() -> _Parser:
    parser = _Parser(
        "node",
        description="Launch the node daemon: collect the chosen monitors and report changes to the hub "
        "at HUB_IP:HUB_PORT, or to one of the hubs HUB_ADDRS lists (host:port,host:port; [v6]:port): "
        "the first, then the next in turn whenever the link ends or an attempt fails. "
        "Without monitors it still runs allowed commands.",
    )
    parser.add_argument(
        "monitors",
        nargs="*",
        type=_monitor,
        metavar="MONITOR",
        help="who (logged-in sessions), wg (WireGuard peers), auth (auth-log events)",
    )
    parser.add_argument(
        "--reconnect",
        action="store_true",
        help="reconnect when the hub goes away instead of exiting (without it, a node given several hubs "
        "still tries each once before it exits)",
    )
    return parser


def _subscribe() -> _Parser:
    parser = _Parser("subscribe", description="Print live updates from all nodes until interrupted.")
    parser.add_argument("--since", type=_sequence, metavar="SEQ", help="first replay the updates after SEQ")
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    return parser


EVENTS_DESCRIPTION = """\
Print auth events from the hub's history, oldest first: the latest LIMIT that match
every option given. TIME is ISO 8601 (2026-11-29T10:00:00Z; without a zone, local
time) or how long ago: 30s, 15m, 2h, 7d. A SEQ (digits) is an update's sequence:
`secmon subscribe --since` the last one printed goes on without a gap. The hub keeps
SECMON_HISTORY_DAYS (30) days, at most SECMON_HISTORY_MAX_EVENTS events."""


def _events() -> _Parser:
    parser = _Parser("events", description=EVENTS_DESCRIPTION)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--since", metavar="TIME|SEQ", help="events from TIME on, or after sequence SEQ")
    parser.add_argument("--until", metavar="TIME|SEQ", help="events up to TIME, or up to sequence SEQ")
    parser.add_argument("--node", action="append", default=[], metavar="N",
                        help="a node's serial, hostname or address (repeat for several)")  # fmt: skip
    parser.add_argument("--kind", action="append", default=[], metavar="K",
                        help="an event kind, e.g. ssh_failed_password (repeat for several)")  # fmt: skip
    parser.add_argument("--user", metavar="U", help="the user the event names")
    parser.add_argument("--source", metavar="CIDR", help="the source address, or a network like 203.0.113.0/24")
    parser.add_argument("--failures", action="store_true", help="only failures (failed logins, refusals, ...)")
    parser.add_argument(
        "--limit", default="100", metavar="N", help="at most N events, the latest (default 100, max 10000)"
    )
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    return parser


def event_query(ns: argparse.Namespace, now: float) -> tuple[m.EventFilter, int]:
    """The filter and limit ``secmon events`` asks for; ConfigError (exit 2) names a bad option."""
    try:
        query = eventquery.event_filter(
            now=now, since=ns.since, until=ns.until, nodes=ns.node, kinds=ns.kind, user=ns.user,
            source=ns.source, failures=ns.failures,
        )  # fmt: skip
        return query, eventquery.parse_limit(ns.limit)
    except eventquery.QueryError as exc:
        raise ConfigError(f"--{exc} (see `secmon events --help`)") from None


def _list() -> _Parser:
    parser = _Parser("list", description="List all recently connected nodes (also: `secmon -`).")
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    return parser


def _status() -> _Parser:
    parser = _Parser(
        "status",
        description="Show the hub's state: the nodes connected to it and, in a cluster of hubs, its link to "
        "the others (connected or not since when, messages waiting to be published, the last sequence applied).",
    )
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    return parser


def _authlog_usage() -> str:
    from .authlog import USAGE  # next to the code that does what the options say

    return USAGE


def _authlog() -> _Parser:
    parser = _Parser("authlog", help_text=_authlog_usage)
    parser.add_argument("source", nargs="?", default="-", metavar="FILE|-")
    parser.add_argument("--stats", action="store_true")
    parser.add_argument("--unmatched", action="store_true")
    return parser


def _help() -> _Parser:
    parser = _Parser("help", description="Show the overview of secmon, or the help of one word.")
    parser.add_argument("word", nargs="?", metavar="WORD", help="one of: " + ", ".join([*_documented(), "NODE"]))
    return parser


def _not_yet(word: str) -> Callable[[], _Parser]:
    def build() -> _Parser:
        return _Parser(
            word,
            usage=f"secmon {word} {NOT_YET[word]}",
            description=f"Reserved: `secmon {word}` is not available in this version of secmon.",
        )

    return build


def _target() -> _Parser:
    parser = _Parser(
        "NODE",
        usage="secmon NODE [LABEL] [--json]",
        description="Show one node, or run an allowed command on it and stream its output.",
    )
    parser.hint = "secmon help"
    parser.add_argument(
        "node",
        metavar="NODE",
        help="a node's serial, hostname or address; `-` is every connected node (alone: list them)",
    )
    parser.add_argument(
        "label",
        nargs="?",
        metavar="LABEL",
        help="a label of the node's command allowlist; one that starts with `-` goes after `--`",
    )
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    return parser


PARSERS: dict[str, Callable[[], _Parser]] = {
    "hub": _hub,
    "node": _node,
    "subscribe": _subscribe,
    "events": _events,
    "list": _list,
    "status": _status,
    "authlog": _authlog,
    "help": _help,
    **{word: _not_yet(word) for word in NOT_YET},
}


def _documented() -> list[str]:
    return [*(word for word in PARSERS if word not in NOT_YET), "check"]


def _check_usage() -> str:
    from ..check import USAGE  # check.py owns its words, its help included

    return USAGE


def split_json(argv: Sequence[str]) -> tuple[list[str], bool]:
    """The arguments without ``--json`` (before any ``--``), and whether it was there."""
    end = argv.index("--") if "--" in argv else len(argv)
    head = [a for a in argv[:end] if a != "--json"]
    return head + list(argv[end:]), len(head) != end


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """What the command line asks for: ``command`` names it, the other fields are its arguments."""
    args, as_json = split_json(argv)
    if not args or args[0] in ("-h", "--help"):
        raise HelpShown(OVERVIEW)
    word, rest = args[0], args[1:]
    if word == "check":  # check.py reads its own arguments, --help included
        return argparse.Namespace(command="check", extra=rest, json=as_json)
    builder = PARSERS.get(word)
    if builder is None:
        ns = _target().parse_args(args)
        ns.command = "execute" if ns.label is not None else "list" if ns.node == ALL_NODES else "show"
    elif word == "node":
        ns = builder().parse_intermixed_args(rest)
        ns.monitors = list(dict.fromkeys(ns.monitors))
    elif word in NOT_YET:
        ns, extra = builder().parse_known_args(rest)  # whatever they will take, they do nothing yet
        ns.extra = extra
    else:
        ns = builder().parse_args(rest)
    if word == "help":
        if ns.word is None:
            raise HelpShown(OVERVIEW)
        if ns.word in ("NODE", ALL_NODES):
            _target().print_help()
        if ns.word == "check":
            raise HelpShown(_check_usage())
        if ns.word not in PARSERS:
            raise ConfigError(f"no help on {ns.word!r}: the words are {', '.join(_documented())}, NODE")
        PARSERS[ns.word]().print_help()
    ns.command = getattr(ns, "command", word)
    ns.json = as_json
    return ns
