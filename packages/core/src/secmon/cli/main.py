"""`secmon`: launch the daemons, and talk to the hub from its server.

What the words of the command line mean is arguments.py's; this module runs
them. Every failure is one line on stderr and a non-zero exit: 2 for bad usage
or a malformed variable, 1 for everything else, 130 after Ctrl-C.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import anyio

from .. import jsonform
from ..client import HubClient
from ..config import configure_logging, env_float
from ..errors import ConfigError, SecmonError, single_error
from ..protocol import messages as m
from . import alerts, arguments, render
from .terminal import BOLD, GREEN, RED, Painter, clean

EXIT_INTERRUPTED = 130
EXIT_TIMEOUT = 124  # as timeout(1) reports it


def fail(text: str, code: int = 2) -> NoReturn:
    raise _Exit(code, text)


class _Exit(Exception):
    def __init__(self, code: int, text: str = "") -> None:
        super().__init__(text)
        self.code = code


def _print(text: str) -> None:
    print(text, flush=True)


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False), flush=True)


# --- commands talking to the hub ---------------------------------------------


async def cmd_list(as_json: bool, paint: Painter) -> int:
    async with HubClient.connect() as hub:
        nodes = await hub.list_nodes()
    if as_json:
        _print_json([jsonform.node_json(n) for n in sorted(nodes, key=lambda n: (n.hostname, n.serial))])
    else:
        _print(render.node_table(nodes, paint))
    return 0


async def cmd_status(as_json: bool, paint: Painter) -> int:
    async with HubClient.connect() as hub:
        status = await hub.status()
    _print(json.dumps(jsonform.status_json(status)) if as_json else render.hub_status(status, paint))
    return 0


async def cmd_show(query: str, as_json: bool, paint: Painter) -> int:
    async with HubClient.connect() as hub:
        node = await hub.find_node(query)
    _print(json.dumps(jsonform.node_json(node), ensure_ascii=False) if as_json else render.node_details(node, paint))
    return 0


async def cmd_subscribe(since: int | None, as_json: bool, paint: Painter) -> int:
    async with HubClient.connect() as hub:
        subscription = await hub.subscribe(since)
        if subscription.missed:
            print(f"secmon: {subscription.missed} updates after {since} are no longer held", file=sys.stderr)
        async for update in subscription:
            if as_json:
                _print_json(jsonform.update_json(update))
            else:
                _print(render.update_line(update, paint))
    return 0


async def cmd_events(query: m.EventFilter, limit: int, as_json: bool, paint: Painter) -> int:
    async with HubClient.connect() as hub:
        answer = await hub.events(query, limit)
    for update in answer.updates():
        _print(
            json.dumps(jsonform.update_json(update), ensure_ascii=False)
            if as_json
            else render.update_line(update, paint)
        )
    if answer.more and not as_json:
        print(f"secmon: older events match too: showing the latest {limit} (--limit, --since)", file=sys.stderr)
    return 0


async def cmd_mute_add(fields: dict[str, str], duration: float | None, reason: str, as_json: bool) -> int:
    async with HubClient.connect() as hub:
        rule = await hub.add_mute(**fields, duration=duration, reason=reason)
    if as_json:
        _print_json(jsonform.mute_json(rule))
    else:
        _print(f"added mute rule {alerts.rule_summary(rule)}")
    return 0


async def cmd_mute_list(as_json: bool, paint: Painter) -> int:
    async with HubClient.connect() as hub:
        rules = await hub.mutes()
    if as_json:
        _print_json([jsonform.mute_json(rule) for rule in rules])
    else:
        _print(alerts.mute_table(rules, paint))
    return 0


async def cmd_mute_rm(rule_id: int, as_json: bool) -> int:
    async with HubClient.connect() as hub:
        rule = await hub.remove_mute(rule_id)
    if as_json:
        _print_json(jsonform.mute_json(rule))
    else:
        _print(f"removed mute rule {alerts.rule_summary(rule)}")
    return 0


async def cmd_audit(since: float | None, limit: int, as_json: bool, paint: Painter) -> int:
    async with HubClient.connect() as hub:
        answer = await hub.audit(since, limit)
    if as_json:
        for record in answer.records:
            _print_json(jsonform.command_record_json(record))
    else:
        _print(alerts.audit_table(answer.records, paint))
    if answer.more and not as_json:
        print(f"secmon: older requests match too: showing the latest {limit} (--limit, --since)", file=sys.stderr)
    return 0


async def cmd_execute(target: str, label: str, paint: Painter) -> int:
    wait = env_float(os.environ, "NODE_WAIT_TIMEOUT", 0.0)
    fan_out = target == m.ALL_NODES
    names: dict[int, str] = {}
    results: list[m.CommandResult] = []
    async with HubClient.connect() as hub:
        if fan_out:
            names = {n.serial: n.hostname for n in await hub.list_nodes()}
        async for item in hub.execute(target, label, stream=True, wait=wait):
            if isinstance(item, m.Started) and fan_out and not item.serials:
                print("secmon: no node is connected", file=sys.stderr)
                return 1
            if isinstance(item, m.CommandOutput):
                prefix = f"{paint(BOLD, clean_name(names, item.serial))}: " if fan_out else ""
                _print(prefix + clean(item.data))
            elif isinstance(item, m.CommandResult):
                results.append(item)
                if fan_out or item.status != m.SUCCESS:
                    print(_result_line(item, names, paint), file=sys.stderr if not fan_out else sys.stdout, flush=True)
    if not fan_out:
        result = results[0]
        if result.status == m.SUCCESS:
            return 0
        if result.status == m.FAILURE:
            return result.exit_code if result.exit_code and 0 < result.exit_code < 256 else 1
        return EXIT_TIMEOUT if result.status == m.TIMEOUT else 1
    ok = sum(r.status == m.SUCCESS for r in results)
    _print(f"{len(results)} node{'s' if len(results) != 1 else ''}: {ok} succeeded, {len(results) - ok} failed")
    return 0 if ok == len(results) else 1


def clean_name(names: dict[int, str], serial: int) -> str:
    return clean(names.get(serial, f"node {serial}"))


def _result_line(result: m.CommandResult, names: dict[int, str], paint: Painter) -> str:
    status = paint(GREEN if result.status == m.SUCCESS else RED, result.status)
    detail = f" (exit {result.exit_code})" if result.exit_code not in (None, 0) else ""
    message = f": {clean(result.message)}" if result.message else ""
    who = clean_name(names, result.serial) if names else f"node {result.serial}"
    return f"{who}: {status}{detail}{message}"


# --- argument handling --------------------------------------------------------


def _run_async(function: Callable[..., Awaitable[int]], *args: Any) -> int:
    try:
        return anyio.run(function, *args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def dispatch(argv: list[str]) -> int:
    args = arguments.parse(argv)
    command = args.command
    paint = Painter(sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    if command == "hub":
        from ..hub.server import main as hub_main

        hub_main(allow_insecure=args.allow_insecure)
        return 0
    if command == "node":
        from ..node.daemon import main as node_main

        node_main(args.monitors, args.reconnect)
        return 0
    if command == "check":
        from ..check import main as check_main

        return check_main(args.extra)
    if command == "authlog":
        from .authlog import run_authlog

        return run_authlog(args.source, args.stats, args.unmatched)
    if command == "subscribe":
        return _run_async(cmd_subscribe, args.since, args.json, paint)
    if command == "events":
        query, limit = arguments.event_query(args, time.time())
        return _run_async(cmd_events, query, limit, args.json, paint)
    if command == "list":
        return _run_async(cmd_list, args.json, paint)
    if command == "mute add":
        return _run_async(cmd_mute_add, args.fields, args.duration, args.reason, args.json)
    if command == "mute list":
        return _run_async(cmd_mute_list, args.json, paint)
    if command == "mute rm":
        return _run_async(cmd_mute_rm, args.id, args.json)
    if command == "audit":
        since, limit = arguments.audit_query(args, time.time())
        return _run_async(cmd_audit, since, limit, args.json, paint)
    if command == "status":
        return _run_async(cmd_status, args.json, paint)
    if command == "show":
        return _run_async(cmd_show, args.node, args.json, paint)
    return _run_async(cmd_execute, args.node, args.label, paint)


def main(argv: list[str] | None = None) -> NoReturn:
    """Console-script entry point."""
    try:
        try:
            configure_logging()
            code = dispatch(sys.argv[1:] if argv is None else argv)
        except BaseExceptionGroup as group:
            raise single_error(group) from None
    except arguments.HelpShown as exc:
        _print(exc.text.rstrip())
        code = 0
    except _Exit as exc:
        if str(exc):
            print(f"secmon: {exc}", file=sys.stderr)
        code = exc.code
    except ConfigError as exc:
        print(f"secmon: {exc}", file=sys.stderr)
        code = exc.exit_code
    except SecmonError as exc:
        print(f"secmon: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        code = 1
    sys.exit(code)
