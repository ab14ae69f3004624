"""The layers named in docs/architecture.md, checked against the code's own imports.

Every import counts, at module level or inside a function, so a lazy import cannot hide a
dependency that points the wrong way.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.support import ROOT

OURS = {
    "definitions",
    "domain",
    "analytics",
    "workflows",
    "activities",
    "store",
    "audit",
    "app",
    "client",
    "cli",
    "worker",
    "bench",
    "web",
    "crm",
}
# which of our packages each may import (itself always)
ALLOWED = {
    "definitions": set(),
    "domain": {"definitions"},
    # pure figures and statistics over rows the store returns
    "analytics": {"definitions", "domain"},
    "workflows": {"definitions", "domain"},
    "activities": {"definitions", "domain", "store"},
    "store": {"definitions", "domain", "analytics"},
    "audit": {"definitions", "domain", "store", "worker", "workflows"},
    "worker": {"definitions", "domain", "workflows", "activities", "store"},
    "crm": {"definitions", "domain"},  # reading CRM exports: pure
    # the application layer: one service per context, the access rules, no SQL
    "app": {"definitions", "domain", "analytics", "workflows", "store", "audit", "worker", "crm"},
    # the typed Python client: a facade over the application layer
    "client": {"definitions", "domain", "app", "worker"},
    # the web app's handlers call the application layer and hold no rules of their own; of the
    # store they use the shapes of answers, and the table of idempotency keys
    "web": {"definitions", "domain", "analytics", "app", "client", "worker", "store"},
    # the command line: parsing and output over the application layer; `serve` and `dev` start the
    # web app and the worker, composed by app.composition
    "cli": {
        "definitions",
        "domain",
        "analytics",
        "app",
        "client",
        "store",
        "audit",
        "worker",
        "workflows",
        "web",
        "crm",
    },
}
# the only modules of a package that may reach a package its layer otherwise may not
EXCEPTIONS = {
    ("audit", "worker"): {"audit.replay"},  # replaying needs the workflow classes a worker runs
    ("audit", "workflows"): {"audit.replay"},
    # an append that finds the log short fills it from what Temporal recorded (audit.repair)
    ("activities", "audit"): {
        "activities.event_log"
    },  # the command line starts the web server (`dealflow serve`, `dev`)
}
THIRD_PARTY_PURE = {"pydantic", "yaml"}


def _modules(package: str) -> dict[str, set[str]]:
    """Each module of `package` and the dotted names of everything it imports."""
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from package import module` imports that module; `from module import name`, the module
                imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        out[name] = imported
    return out


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(package: str) -> None:
    wrong = []
    for module, imported in _modules(package).items():
        for name in imported:
            top = name.split(".")[0]
            if top not in OURS or top == package or top in ALLOWED[package]:
                continue
            if module in EXCEPTIONS.get((package, top), set()):
                continue
            wrong.append(f"{module} imports {name}")
    assert wrong == []


@pytest.mark.parametrize("package", ["domain", "definitions", "analytics"])
def test_the_pure_packages_import_no_temporal_and_do_no_io(package: str) -> None:
    """The domain, the definition language and the analytics: pure, so `make unit` tests them."""
    allowed = set(sys.stdlib_module_names) | THIRD_PARTY_PURE | {package, *ALLOWED[package], "holidays"}
    if package == "analytics":
        allowed.add("scipy")  # the statistics SciPy computes outright (docs/metrics.md#statistics)
    io = {"asyncio", "asyncpg", "socket", "subprocess", "httpx", "smtplib", "os"}
    found = {
        f"{module} imports {name}"
        for module, imported in _modules(package).items()
        for name in imported
        if name.split(".")[0] not in allowed or name.split(".")[0] in io
    }
    assert found == set()


def test_audit_reads_events_from_the_domain_not_from_the_workflows() -> None:
    for module, imported in _modules("audit").items():
        if module != "audit.replay":
            assert not any(name.startswith(("workflows", "worker")) for name in imported), module


def test_the_client_connects_without_loading_the_worker_its_activities_or_channels() -> None:
    probe = (
        "import sys, client.api; print(sorted(m for m in sys.modules if m.split('.')[0] in ('activities', 'worker')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['worker', 'worker.connect', 'worker.settings', 'worker.tracing']"


def test_no_import_cycles_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    for package in OURS:
        for module, imported in _modules(package).items():
            graph[module] = {name for name in imported if name.split(".")[0] in OURS}
    modules = set(graph)
    edges = {m: {i if i in modules else i.rsplit(".", 1)[0] for i in imps} & modules for m, imps in graph.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node] - {node}):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(modules):
        if module not in state:
            visit(module)
    assert cycles == []


def test_no_workflow_answers_queries_so_no_read_can_disturb_a_deal() -> None:
    """Every read comes from PostgreSQL: a query to a workflow whose worker has just restarted can
    make it run signals no workflow task has processed (repro/query_applies_unprocessed_signals)."""
    decorated = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in sorted((ROOT / "workflows").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for d in node.decorator_list
        if ast.unparse(d).startswith("workflow.query")
    ]
    assert decorated == []
