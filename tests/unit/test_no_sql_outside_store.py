"""SQL lives in store/ only: the application layer (client/) and the web app (web/) call store
functions, and never write a statement or drive a connection themselves."""

from __future__ import annotations

import ast
import re

import pytest

from tests.support import ROOT

# a statement as code would send it: the keywords upper case, as every statement in store/ is
STATEMENT = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX)|ALTER\s+TABLE"
    r"|TRUNCATE|COPY\s+\w+|WITH\s+\w+\s+AS\s*\()",
    re.DOTALL,
)
# what only code that talks to PostgreSQL itself calls on a pool or a connection
DRIVER_CALLS = {"fetch", "fetchrow", "fetchval", "executemany", "copy_records_to_table", "acquire", "transaction"}


def sql_in(source: str, filename: str) -> list[str]:
    """Where `source` holds SQL: a string that reads as a statement, or a driver call."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and STATEMENT.search(node.value):
            found.append(f"{filename}:{node.lineno}: SQL text {node.value[:60]!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            on_pool = name == "execute" and any(
                isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args[:1]
            )
            if name in DRIVER_CALLS or on_pool:
                found.append(f"{filename}:{node.lineno}: .{name}(...) on the database")
    return found


@pytest.mark.parametrize("package", ["client", "web"])
def test_the_application_layer_and_the_web_app_hold_no_sql(package: str) -> None:
    found = [
        hit
        for path in sorted((ROOT / package).rglob("*.py"))
        for hit in sql_in(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    assert found == []


def test_the_check_finds_a_statement_and_a_driver_call() -> None:
    """The scan above is only worth its silence if it sees what it looks for."""
    source = (
        "async def f(pool):\n"
        "    await pool.fetch('SELECT deal_id FROM deals WHERE deal_id = ANY($1)', ids)\n"
        "    async with pool.acquire() as conn:\n"
        "        await conn.execute(\n"
        "            'INSERT INTO imported_deals (source) VALUES ($1)', s)\n"
        "    docs = 'select the deal, then update it'\n"
    )
    assert sorted(sql_in(source, "x.py")) == [
        "x.py:2: .fetch(...) on the database",
        "x.py:2: SQL text 'SELECT deal_id FROM deals WHERE deal_id = ANY($1)'",
        "x.py:3: .acquire(...) on the database",
        "x.py:4: .execute(...) on the database",
        "x.py:5: SQL text 'INSERT INTO imported_deals (source) VALUES ($1)'",
    ]


def test_the_store_is_where_the_statements_are() -> None:
    """The same scan finds the store's own statements, so a pattern that matched nothing anywhere
    would not pass the test above by accident."""
    hits = sql_in((ROOT / "store" / "imports.py").read_text(encoding="utf-8"), "store/imports.py")
    assert any("SELECT deal_id FROM deals" in h for h in hits)
    assert any("INSERT INTO imported_deals" in h for h in hits)
