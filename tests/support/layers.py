"""A test's layer is the folder it is in, and a pure test is always one of `make unit`'s.

The folders under tests/ are the layers (LAYERS); the root conftest gives every test its folder's
marker, so `pytest -m store` is the store's tests. A test in tests/unit may not ask for a server.
A test elsewhere must show it needs more than the process it runs in, or it is a pure test left
out of `make unit`: at collection, by a server fixture or a module that imports what starts a
process or opens a socket (`refusals`); when it has run, by having started a process or opened a
socket (`UNPURE_EVENTS`, watched with an audit hook by the conftest). A pure test in a module of
another layer, kept there beside the tests it belongs with, is marked `@pytest.mark.unit` by hand.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

LAYERS = ("unit", "store", "engine", "application", "web", "browser")

# every fixture that needs a server (or a browser) starts from one of these
SERVER_FIXTURES = frozenset({"database_url", "temporal_env", "time_env", "browser"})

# modules (and their submodules) whose use starts a process or opens a socket
SPAWNING_MODULES = frozenset(
    {
        "subprocess",
        "multiprocessing",
        "socket",
        "socketserver",
        "http.server",
        "asyncio.subprocess",
        "aiohttp",
        "aiosmtpd",
        "asyncpg",
        "uvicorn",
        "playwright",
        "temporalio.testing",
        "store.embedded",
        "worker.devserver",
    }
)

# the audit events (sys.addaudithook) of starting a process or opening a socket
UNPURE_EVENTS = frozenset(
    {
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.forkpty",
        "socket.bind",
        "socket.connect",
    }
)

MOVE_OR_MARK = "move it to tests/unit/, or, if it belongs beside the tests of its module, mark it @pytest.mark.unit"


class LayoutError(Exception):
    """A test module outside the layer folders."""


def layer_of(path: Path, tests: Path) -> str | None:
    """The layer of a test module: the folder under tests/ that holds it. None for a module outside
    tests/ (a test that runs pytest on a file of its own, with this conftest as a plugin)."""
    if not path.is_relative_to(tests):
        return None
    parts = path.relative_to(tests).parts
    if len(parts) < 2 or parts[0] not in LAYERS:
        raise LayoutError(f"{path}: a test module belongs in one of tests/{{{','.join(LAYERS)}}}/")
    return parts[0]


def imported_modules(tree: ast.Module) -> set[str]:
    """Every module the source imports, at any depth; `from a import b` counts as a.b too."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def is_spawning(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in SPAWNING_MODULES)


@cache
def module_spawns(path: Path, root: Path) -> bool:
    """Whether the module imports a spawning module, itself or through a module of tests/ it imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for module in imported_modules(tree):
        if is_spawning(module):
            return True
        if module.split(".")[0] == "tests":
            local = root.joinpath(*module.split("."))
            for candidate in (local.with_suffix(".py"), local / "__init__.py"):
                if candidate != path and candidate.is_file() and module_spawns(candidate, root):
                    return True
    return False


@dataclass(frozen=True)
class Collected:
    """What the rule needs of a collected test."""

    nodeid: str
    layer: str
    fixtures: frozenset[str]
    marked_unit: bool  # by hand, in a module of another layer
    module_spawns: bool

    @property
    def uses_a_server(self) -> bool:
        return bool(SERVER_FIXTURES & self.fixtures)

    @property
    def may_be_pure(self) -> bool:
        """Outside `make unit` and nothing at collection says it needs more: the run must show it."""
        return self.layer != "unit" and not self.marked_unit and not self.uses_a_server


def refusals(items: Iterable[Collected]) -> list[str]:
    """The collection's problems, each naming its tests and the fix."""
    items = list(items)
    server_in_unit = [i.nodeid for i in items if (i.layer == "unit" or i.marked_unit) and i.uses_a_server]
    pure_elsewhere = [i.nodeid for i in items if i.may_be_pure and not i.module_spawns]
    problems = []
    if server_in_unit:
        problems.append(
            "tests of `make unit` (in tests/unit or marked unit) use a server fixture: "
            + ", ".join(server_in_unit)
            + "; move them to the folder of their layer (and drop a unit mark)"
        )
    if pure_elsewhere:
        problems.append(
            "pure tests (no server fixture, a module that starts no process and opens no socket) "
            "outside tests/unit, so `make unit` leaves them out: " + ", ".join(pure_elsewhere) + f"; {MOVE_OR_MARK}"
        )
    return problems


def ran_pure(nodeid: str, events: Iterable[str]) -> str | None:
    """The complaint about a test that may be pure once it has run, or None if it showed it is not."""
    if UNPURE_EVENTS & set(events):
        return None
    return f"{nodeid} started no process and opened no socket: it is a pure test outside tests/unit; {MOVE_OR_MARK}"
