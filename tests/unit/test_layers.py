"""The layer rule itself (tests/support/layers.py), over sample paths, modules and tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import TESTS
from tests.support.layers import Collected, LayoutError, layer_of, module_spawns, ran_pure, refusals


def sample(nodeid: str, layer: str, fixtures: set[str], marked_unit: bool = False, spawns: bool = False) -> Collected:
    return Collected(nodeid, layer, frozenset(fixtures), marked_unit, spawns)


def test_the_layer_is_the_folder_under_tests() -> None:
    assert layer_of(TESTS / "store" / "test_event_log.py", TESTS) == "store"
    assert layer_of(TESTS / "unit" / "test_layers.py", TESTS) == "unit"
    assert layer_of(Path("/tmp/elsewhere/test_x.py"), TESTS) is None
    for wrong in (TESTS / "test_flat.py", TESTS / "misc" / "test_x.py"):
        with pytest.raises(LayoutError, match="belongs in one of tests/"):
            layer_of(wrong, TESTS)


def test_a_unit_test_with_a_server_fixture_is_refused_in_the_folder_and_when_marked() -> None:
    [problem] = refusals(
        [
            sample("tests/unit/test_a.py::test_db", "unit", {"pool", "database_url"}),
            sample("tests/web/test_b.py::test_marked", "web", {"client", "temporal_env"}, marked_unit=True),
            sample("tests/unit/test_a.py::test_pure", "unit", {"tmp_path"}),
        ]
    )
    assert "tests/unit/test_a.py::test_db, tests/web/test_b.py::test_marked" in problem
    assert "move them to the folder of their layer" in problem
    assert "test_pure" not in problem


def test_a_pure_test_outside_unit_is_refused_naming_it_and_the_fix() -> None:
    [problem] = refusals(
        [
            sample("tests/store/test_s.py::test_pure", "store", {"monkeypatch"}),
            sample("tests/store/test_s.py::test_db", "store", {"pool", "database_url"}),
            sample("tests/engine/test_e.py::test_spawns", "engine", set(), spawns=True),
            sample("tests/web/test_w.py::test_marked", "web", set(), marked_unit=True),
        ]
    )
    assert "outside tests/unit" in problem and "tests/store/test_s.py::test_pure;" in problem
    assert "move it to tests/unit/" in problem and "@pytest.mark.unit" in problem
    assert not any(name in problem for name in ("test_db", "test_spawns", "test_marked"))


def test_a_well_placed_collection_has_no_refusals() -> None:
    assert (
        refusals(
            [sample("tests/unit/test_a.py::t", "unit", set()), sample("tests/web/test_w.py::t", "web", {"browser"})]
        )
        == []
    )


def test_a_module_spawns_by_its_own_imports_or_through_a_support_module(tmp_path: Path) -> None:
    (tmp_path / "tests" / "support").mkdir(parents=True)
    (tmp_path / "tests" / "support" / "__init__.py").write_text("import uuid\n")
    (tmp_path / "tests" / "support" / "cli.py").write_text("from asyncio.subprocess import PIPE\n")
    cases = {
        "import subprocess": True,
        "from http.server import HTTPServer": True,
        "from asyncio import subprocess": True,
        "from playwright.async_api import Page": True,
        "def f():\n    from store.embedded import free_port": True,
        "from tests.support.cli import dealflow": True,
        "from tests.support import new_deal_id": False,
        "from http import HTTPStatus\nimport asyncio": False,
    }
    for n, (source, spawns) in enumerate(cases.items()):
        path = tmp_path / "tests" / f"test_{n}.py"
        path.write_text(source + "\n")
        assert module_spawns(path, tmp_path) is spawns, source


def test_a_run_that_started_a_process_or_opened_a_socket_is_not_pure() -> None:
    assert ran_pure("t", ["socket.connect"]) is None
    assert ran_pure("t", ["open", "subprocess.Popen"]) is None
    complaint = ran_pure("tests/store/test_s.py::test_x", ["open", "import"])
    assert complaint is not None and complaint.startswith("tests/store/test_s.py::test_x started no process")
    assert "move it to tests/unit/" in complaint


def test_every_test_module_is_in_a_layer_folder_and_the_support_package_holds_none() -> None:
    stray = [p for p in TESTS.rglob("test_*.py") if p.parent == TESTS or p.relative_to(TESTS).parts[0] == "support"]
    assert stray == []
