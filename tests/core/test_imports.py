"""The import graph of secmon and its integrations, read from the source: no circle, no presentation into daemons.

Every import counts: at the top of a module, under TYPE_CHECKING, or inside a
function, since an import that only moved into a function still ties the
two modules together.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "packages" / package / "src" for package in ("core", "http", "telegram", "discord")]

# Presentation: the CLI and the integrations, which talk to a hub through the client library.
PRESENTATION = ("secmon.cli", "secmon_http", "secmon_telegram", "secmon_discord")
# What presentation must not reach: the daemons and the node's collectors.
DAEMONS = ("secmon.hub", "secmon.node", "secmon.collectors")

# The doors from presentation into daemon code, each with its reason. Only these
# imports are followed no further; any other path from presentation into a daemon fails.
ENTRY_POINTS = {
    ("secmon.cli.main", "secmon.hub.server"): "`secmon hub` launches the hub daemon",
    ("secmon.cli.main", "secmon.node.daemon"): "`secmon node` launches the node daemon",
    ("secmon.cli.main", "secmon.check"): "`secmon check` validates this machine's hub and node configuration",
    ("secmon.cli.arguments", "secmon.check"): "`secmon check --help` prints the usage text check.py owns",
    ("secmon.cli.authlog", "secmon.collectors.authlog"): "`secmon authlog` runs the node's own parser over a log",
}


def modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the four packages: its dotted name, its file, whether it is a package."""
    found = {}
    for source in SOURCES:
        for path in source.rglob("*.py"):
            parts = list(path.relative_to(source).with_suffix("").parts)
            package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if package else parts)] = (path, package)
    return found


def import_graph() -> dict[str, set[str]]:
    """Each module's imports among the four packages' modules.

    ``from package import name`` is an import of the submodule when there is one,
    else of the package.
    """
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, (path, package) in known.items():
        here = name.split(".") if package else name.split(".")[:-1]
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - node.level + 1]
                    target = ".".join([*base, node.module] if node.module else base)
                else:
                    target = node.module or ""
                for alias in node.names:
                    submodule = f"{target}.{alias.name}"
                    imported.add(submodule if submodule in known else target)
        graph[name] = {module for module in imported if module in known}
    return graph


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def test_the_graph_is_read():
    graph = import_graph()
    assert "secmon.hub.server" in graph["secmon.cli.main"]  # an import inside a function
    assert "secmon.protocol.messages" in graph["secmon.hub.hub"]  # ``from ..protocol import messages``
    assert "secmon.protocol.batches" in graph["secmon.hub.hub"]  # ``from ..protocol.batches import ...``
    assert "secmon.client" in graph["secmon_http.app"]


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1 or module in graph[module]:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_through_others():
    assert circles(import_graph()) == []


def test_the_circle_finder_finds_one():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def paths_into_daemons(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each way presentation reaches daemon code, through any modules, other than through ENTRY_POINTS."""
    found = []
    for start in sorted(m for m in graph if within(m, PRESENTATION)):
        seen = {start}
        queue = [[start]]
        while queue:
            path = queue.pop(0)
            for imported in sorted(graph[path[-1]]):
                if imported in seen or (path[-1], imported) in ENTRY_POINTS:
                    continue
                seen.add(imported)
                if within(imported, DAEMONS):
                    found.append([*path, imported])
                else:
                    queue.append([*path, imported])
    return found


def test_presentation_reaches_daemon_code_only_through_its_entry_points():
    assert [" -> ".join(path) for path in paths_into_daemons(import_graph())] == []


@pytest.mark.parametrize(("importer", "imported"), sorted(ENTRY_POINTS))
def test_every_listed_exception_is_still_an_import(importer, imported):
    """An exception no longer needed is taken off the list, so it cannot hide a new import later."""
    assert imported in import_graph()[importer], f"{importer} no longer imports {imported}: remove the exception"


def test_the_hub_state_knows_no_connection():
    """State and policy on one side, connections on the other: the Hub sees connections as protocols only."""
    graph = import_graph()
    reached, queue = set(), ["secmon.hub.hub"]
    while queue:
        for imported in graph[queue.pop()] - reached:
            reached.add(imported)
            queue.append(imported)
    connections = {"secmon.hub.nodes", "secmon.hub.clients", "secmon.hub.wire", "secmon.hub.server", "secmon.link"}
    assert reached & connections == set()


# What a hub alone, a node and the CLI load: nothing of them may pull in the NATS client.
WITHOUT_NATS = """
import os, sys
for name in [n for n in os.environ if n.startswith("SECMON_NATS")]:
    del os.environ[name]
import secmon.cli.main, secmon.hub.server, secmon.node.daemon, secmon.client, secmon.config
from secmon.config import HubSettings
assert HubSettings.from_env().nats is None
loaded = sorted(name for name in sys.modules if name == "nats" or name.startswith(("nats.", "secmon.hub.cluster")))
print(" ".join(loaded))
"""


def test_nothing_of_nats_is_imported_without_a_nats_url():
    result = subprocess.run([sys.executable, "-c", WITHOUT_NATS], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_cluster_module_is_what_brings_nats_in():
    """The check above can fail: importing the cluster module does load nats."""
    code = "import sys, secmon.hub.cluster; print('nats' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "True", result.stderr
