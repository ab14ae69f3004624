"""A CSV export read as rows that remember their line, with columns found by any of their names.

CRMs name the same column differently across exports and versions ("Deal owner", "Owner",
"Deal - Owner"), so each column is asked for by a list of names, matched without regard to case.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from crm.model import Origin


class ExportError(ValueError):
    """The export as a whole cannot be read: the file, its encoding, or a missing column."""


@dataclass(frozen=True)
class Row:
    cells: dict[str, str]  # by the header's own names
    origin: Origin

    def get(self, column: str | None) -> str:
        return "" if column is None else (self.cells.get(column) or "").strip()


@dataclass(frozen=True)
class Table:
    path: str
    sha256: str
    header: list[str]
    rows: list[Row]

    def column(self, *names: str, required: bool = True) -> str | None:
        """The header's name for the first of `names` it has (case aside)."""
        lowered = {h.strip().lower(): h for h in self.header}
        for name in names:
            if name.lower() in lowered:
                return lowered[name.lower()]
        if required:
            raise ExportError(
                f"{self.path}: no column {' or '.join(repr(n) for n in names)} (it has: {', '.join(self.header)})"
            )
        return None

    def columns_like(self, prefix: str, suffix: str = "") -> dict[str, str]:
        """Columns whose name starts with `prefix` (and ends with `suffix`): what lies between, by
        the column's name; e.g. HubSpot's `Date entered "Qualified (Sales pipeline)"`."""
        found = {}
        for h in self.header:
            name = h.strip()
            if name.lower().startswith(prefix.lower()) and name.lower().endswith(suffix.lower()):
                found[name[len(prefix) : len(name) - len(suffix) or None]] = h
        return found


def read(path: str | Path) -> Table:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ExportError(f"{p}: cannot read it: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExportError(f"{p}: not UTF-8 text (byte {exc.start}); export the CSV as UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ExportError(f"{p}: empty file: a CSV export starts with a header row") from None
    except csv.Error as exc:
        raise ExportError(f"{p}:1: not CSV: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    rows = []
    for cells in _records(reader, p):
        line, values = cells
        if not any(v.strip() for v in values):
            continue
        rows.append(Row(dict(zip(header, values, strict=False)), Origin(file=p.name, sha256=digest, line=line)))
    return Table(str(p), digest, header, rows)


def _records(reader: Iterator[list[str]], path: Path) -> Iterator[tuple[int, Sequence[str]]]:
    """Each record with the line it starts on (a quoted cell may span lines)."""
    start = 2
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ExportError(f"{path}:{start}: not CSV: {exc}") from None
        yield start, values
        start = reader.line_num + 1  # type: ignore[attr-defined]
