"""One composition root: in the application layer and the web app, the pool, the Temporal client
and the access configuration are built in app/composition.py (and the pool's own module)
only; the CLI, `dealflow serve` and the web app reach them through `DealflowClient.connect`."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT

# what builds a part, and the modules that may call it
BUILDERS = {
    "connect_temporal": {"app/composition.py"},
    "open_pool": {"app/composition.py"},
    "connect_pool": {"app/database.py"},
    "load": {"app/composition.py"},  # PolicySource.load
    "open_parts": {"client/api.py"},
    "DealflowClient": {"client/api.py"},
}


def _calls(path: Path) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name):
                out.append((f.id, node.lineno))
            elif isinstance(f, ast.Attribute) and f.attr == "load" and ast.unparse(f.value) == "PolicySource":
                out.append(("load", node.lineno))
    return out


def test_the_parts_are_built_in_the_composition_root_only() -> None:
    wrong = [
        f"{rel}:{line} calls {name}"
        for package in ("client", "web")
        for path in sorted((ROOT / package).rglob("*.py"))
        if (rel := str(path.relative_to(ROOT)))
        for name, line in _calls(path)
        if name in BUILDERS and rel not in BUILDERS[name]
    ]
    assert wrong == []


def test_the_cli_the_server_and_the_web_app_connect_through_it() -> None:
    for rel in ("cli/main.py", "web/serve.py", "web/app.py"):
        source = (ROOT / rel).read_text(encoding="utf-8")
        assert "DealflowClient.connect(" in source, rel
    assert "open_parts(" in (ROOT / "client/api.py").read_text(encoding="utf-8")
