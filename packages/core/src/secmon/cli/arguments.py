"""The words of the `secmon` command line and what each one takes; parsing only, no I/O.

    secmon WORD ...          a reserved word: hub, node, list, subscribe, events, mute, audit, ...
    secmon mute ACTION ...   add, list or rm: each action has a parser of its own
    secmon NODE [LABEL]      anything else names a node: show it, or run an allowed command on it

Each reserved word (and each action of ``mute``) has its own argparse parser, so
``secmon WORD --help`` is that word's usage. A first word that is not reserved is a node query for the NODE
parser, so ``secmon node-a --help`` is help too, never a label (a label that
starts with ``-`` goes after ``--``). ``--json`` may appear anywhere before ``--``.

``parse`` returns a Namespace whose ``command`` says what to run; it raises
HelpShown with the text to print for --help, and ConfigError (one line, exit 2)
for a usage error.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Sequence
from typing import NoReturn

from .. import eventquery
from ..errors import ConfigError
from ..mutewords import MuteWordsError, parse_duration, rule_fields, rule_id, shown
from ..protocol import messages as m
from ..protocol.kinds import LABELS

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
  secmon mute add MATCHER...          mute the auth events that match every MATCHER: CIDR,
    [--for DURATION] [--reason TEXT]  user:U, node:N, kind:K (notifiers skip them)
  secmon mute list                    the mute rules in force
  secmon mute rm ID                   remove a mute rule
  secmon audit [--since TIME]         who ran which command on which nodes, and how it ended
    [--limit N]
  secmon status                       the hub's state: in a cluster, its link to the others
  secmon check [hub] [node]           validate this machine's hub/node configuration
  secmon authlog [FILE|-]             print the auth events SecMon sees in log lines
    [--stats] [--unmatched]
  secmon help [WORD]                  show this help, or the help of one word
  secmon WORD --help                  the same

options:
  --json                              machine-readable output (list, node, subscribe, events, status,
                                      mute, audit)

environment (see the README for all):
  hub     BIND_IP, BIND_PORT, DISCONNECT_GRACE_PERIOD, ASSUME_HOSTNAME_UNIQUE,
          SECMON_STATE_DIR, SECMON_HISTORY_DAYS, SECMON_HISTORY_MAX_EVENTS,
          NODE_DOWN_AFTER, GEOIP_CITY_DB, GEOIP_ASN_DB
  node    HUB_IP, HUB_PORT or HUB_ADDRS, COMMAND_ALLOWLIST_FILE, COMMAND_EXECUTE_TIMEOUT,
          AUTH_LOG
  client  NODE_WAIT_TIMEOUT, SECMON_SOCKET
"""

MONITOR_NAMES = ("who", "wg", "auth")
ALL_NODES = "-"
# Words that are never node names.
RESERVED = ("check", "events", "mute", "audit", "authlog", "help", "hub", "node", "list", "subscribe", "status")
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


MUTE_DESCRIPTION = """\
Mute rules live on the hub: an auth event that a rule matches still reaches
subscribers and the dashboard, marked muted, but the chat notifiers skip it.
An accepted login from somewhere new for its user is muted only by a rule that
names its kind (kind:ssh_accepted). Every change is a notice: who changed what."""


def _mute() -> _Parser:
    parser = _Parser(
        "mute",
        usage="secmon mute {add,list,rm} ... (`secmon mute ACTION --help` for each)",
        description=MUTE_DESCRIPTION,
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("action", choices=MUTE_ACTIONS, metavar="ACTION",
                        help="add (a rule), list (the rules in force), rm (a rule, by id)")  # fmt: skip
    return parser


MUTE_ADD_DESCRIPTION = f"""\
Add a mute rule: it mutes the auth events that match every MATCHER given, each
field at most once:

  203.0.113.0/24, 2001:db8::/32   the event's source address is in it (also: source:CIDR)
  user:U                          the event names user U
  node:N                          the event's node: serial, hostname or address
  kind:K                          the event's kind, one of:
{chr(10).join("      " + line for line in textwrap.wrap(", ".join(LABELS), 80))}

DURATION is 90s, 30m, 2h, 7d, 2w or a number of seconds; without --for the rule
stays until `secmon mute rm ID`. Example:
  secmon mute add 203.0.113.0/24 kind:ssh_failed_password --for 2h --reason "pen test"
"""


def _mute_add() -> _Parser:
    parser = _Parser("mute add", description=MUTE_ADD_DESCRIPTION)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("matchers", nargs="+", metavar="MATCHER", help="CIDR, user:U, node:N or kind:K")
    parser.add_argument("--for", dest="duration", metavar="DURATION", help="remove the rule after DURATION")
    parser.add_argument("--reason", default="", metavar="TEXT", help="why, for whoever reads the rules later")
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    return parser


def _mute_list() -> _Parser:
    parser = _Parser("mute list", description="List the mute rules in force: id, matchers, expiry, reason, who.")
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    return parser


def _mute_rm() -> _Parser:
    parser = _Parser("mute rm", description="Remove a mute rule; events it matched reach the notifiers again.")
    parser.add_argument("id", metavar="ID", help="the rule's id, as `secmon mute list` shows it")
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    return parser


MUTE_ACTIONS: dict[str, Callable[[], _Parser]] = {"add": _mute_add, "list": _mute_list, "rm": _mute_rm}


def _parse_mute(rest: list[str]) -> argparse.Namespace:
    """``secmon mute ACTION ...``: the action's own parser, then its matchers and duration read."""
    if not rest or rest[0] not in MUTE_ACTIONS:
        _mute().parse_args(rest)  # help, or the error naming the actions
        raise ConfigError("say add, list or rm (see `secmon mute --help`)")  # not reached: ACTION is required
    action = rest[0]
    parser = MUTE_ACTIONS[action]()
    ns = parser.parse_intermixed_args(rest[1:])
    try:
        if action == "add":
            ns.fields = rule_fields(ns.matchers)
            ns.duration = None if ns.duration is None else parse_duration(ns.duration)
        elif action == "rm":
            number = rule_id(ns.id)
            if number is None:
                parser.error(f"expected a rule id (a whole number, as `secmon mute list` shows), got {shown(ns.id)}")
            ns.id = number
    except MuteWordsError as exc:
        parser.error(str(exc))
    ns.command = f"mute {action}"
    return ns


AUDIT_DESCRIPTION = """\
Show the hub's record of command requests, oldest first: when, who asked (the
Unix user of a CLI, `telegram:ID @name`, `http:TOKEN-NAME`), the label, the
target, and each node's outcome and exit code; a request refused before it ran
anywhere (no such node, not connected in time) shows "ran nowhere". TIME is ISO
8601 (without a zone, local time) or how long ago: 30s, 15m, 2h, 7d."""


def _audit() -> _Parser:
    parser = _Parser("audit", description=AUDIT_DESCRIPTION)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--since", metavar="TIME", help="requests made from TIME on")
    parser.add_argument("--limit", default="100", metavar="N",
                        help="at most N requests, the latest (default 100, max 10000)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    return parser


def audit_query(ns: argparse.Namespace, now: float) -> tuple[float | None, int]:
    """The since (Unix time, or None) and limit ``secmon audit`` asks for; ConfigError names a bad option."""
    try:
        since = None if ns.since is None else eventquery.parse_time(ns.since, now, "since")
        return since, eventquery.parse_limit(ns.limit)
    except eventquery.QueryError as exc:
        raise ConfigError(f"--{exc} (see `secmon audit --help`)") from None


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
    "mute": _mute,
    "audit": _audit,
    "authlog": _authlog,
    "help": _help,
}


def _documented() -> list[str]:
    return [*PARSERS, "check"]


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
    elif word == "mute":
        ns = _parse_mute(rest)
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
