"""The test suite's own layout: shared helpers live in support modules, not in test modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import ROOT


def imported_modules(path: Path, root: Path) -> list[str]:
    """Every module the file imports, absolute or relative, at any depth (inside functions too)."""
    package = list(path.relative_to(root).parent.parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = package[: len(package) - node.level + 1] if node.level else []
            base = ".".join([*parts, *([node.module] if node.module else [])])
            found.append(base)
            # `from tests import test_cli` imports a module under the name it imports
            found += [f"{base}.{alias.name}" for alias in node.names]
    return found


def is_test_module(module: str) -> bool:
    package, _, last = module.rpartition(".")
    return package.split(".")[0] == "tests" and (last.startswith("test_") or last == "conftest")


def test_no_test_module_imports_another_test_module_or_conftest() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for module in imported_modules(path, ROOT)
        if is_test_module(module)
    ]
    assert offenders == [], "shared helpers go to the tests/support package, fixtures to tests/conftest.py"


@pytest.mark.parametrize(
    ("source", "offends"),
    [
        ("from tests.test_cli import dealflow", True),
        ("import tests.test_cli", True),
        ("from tests import test_fold", True),
        ("from .test_fold import SEVEN_FACTS", True),
        ("from . import conftest", True),
        ("from tests.conftest import orders", True),
        ("def f():\n    from tests.test_cli import dealflow", True),
        ("from tests.support import dealflow", False),
        ("from .support import dealflow", False),
        ("from tests.support.tls import make_pki", False),
        ("import pytest", False),
    ],
)
def test_the_check_sees_every_form_of_such_an_import(tmp_path: Path, source: str, offends: bool) -> None:
    path = tmp_path / "tests" / "test_sample.py"
    path.parent.mkdir()
    path.write_text(source)
    modules = imported_modules(path, tmp_path)
    assert any(is_test_module(m) for m in modules) is offends, modules
