"""A CSV export read as rows that remember their line, with columns found by any of their names.

CRMs name the same column differently across exports and versions ("Deal owner", "Owner",
"Deal - Owner"), so each column is asked for by a list of names, matched without regard to case,
unless the mapping file's `columns:` names the CRM's column for it.

A row that cannot be a deal's record as it stands (its cell count differs from the header's, or a
cell is larger than any value a deal keeps) is kept with its problem, not dropped: the reader
refuses its deal by line, and the rest of the file is read on.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from crm.model import Origin

MAX_CELL = 100_000  # characters: far above any value a deal keeps (domain/limits.py), far below memory
_FIELD_LIMIT = 2**31 - 1  # what the csv module may read in one cell; MAX_CELL is checked after
_DELIMITERS = ",;\t|"


class ExportError(ValueError):
    """The export as a whole cannot be read: the file, its encoding, or a missing column.

    `input` is the reading option that fixes it (`delimiter`, `encoding`), and `suggested` the
    value to try: each face names that option in its own words (a flag, a field, a form's label)."""

    def __init__(self, message: str, *, input: str | None = None, suggested: str | None = None) -> None:
        super().__init__(message)
        self.input = input
        self.suggested = suggested


@dataclass(frozen=True)
class ReadOptions:
    """How to read an export: its delimiter and encoding, and the CRM's column for any of the
    reader's own names (from the mapping file's `columns:`)."""

    delimiter: str = ","
    encoding: str = "utf-8-sig"
    columns: Mapping[str, str] = field(default_factory=dict)  # our name -> the CRM's header
    mapping_name: str = "the mapping file"


DEFAULT = ReadOptions()


@dataclass(frozen=True)
class Row:
    cells: dict[str, str]  # by the header's own names
    origin: Origin
    problem: str | None = None  # why the row cannot be read as it stands

    def get(self, column: str | None) -> str:
        return "" if column is None else (self.cells.get(column) or "").strip()


@dataclass(frozen=True)
class Table:
    path: str
    sha256: str
    header: list[str]
    rows: list[Row]
    options: ReadOptions = field(default_factory=ReadOptions)

    def column(self, *names: str, required: bool = True, key: str | None = None) -> str | None:
        """The header's name for the first of `names` it has (case aside), or for the column the
        mapping file names for `key`."""
        lowered = {h.strip().lower(): h for h in self.header}
        if key is not None and key in self.options.columns:
            wanted = self.options.columns[key]
            if wanted.strip().lower() in lowered:
                return lowered[wanted.strip().lower()]
            raise ExportError(
                f"{self.path}: no column {wanted!r}, which {self.options.mapping_name} names for {key} "
                f"(it has: {', '.join(self.header)})"
            )
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


def read(path: str | Path, options: ReadOptions = DEFAULT) -> Table:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ExportError(f"{p}: cannot read it: {exc.strerror or exc}") from None
    text = _decode(p, data, options.encoding)
    if len(options.delimiter) != 1:
        raise ExportError(f"{options.delimiter!r} is not a delimiter: give one character, e.g. ';'", input="delimiter")
    previous = csv.field_size_limit(_FIELD_LIMIT)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=options.delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise ExportError(f"{p}: empty file: a CSV export starts with a header row") from None
        except csv.Error as exc:
            raise ExportError(f"{p}:1: not CSV: {exc}") from None
        _hint_delimiter(p, header, options.delimiter)
        digest = hashlib.sha256(data).hexdigest()
        rows = []
        for line, values in _records(reader, p):
            if not any(v.strip() for v in values):
                continue
            origin = Origin(file=p.name, sha256=digest, line=line)
            rows.append(Row(dict(zip(header, values, strict=False)), origin, _row_problem(header, values)))
    finally:
        csv.field_size_limit(previous)
    return Table(str(p), digest, header, rows, options)


def _decode(p: Path, data: bytes, encoding: str) -> str:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ExportError(f"{encoding!r} is not an encoding (e.g. utf-8, cp1252, latin-1)", input="encoding") from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ExportError(
            f"{p}:{line}: byte {data[exc.start]:#04x} at column {column} is not {encoding} text: "
            "export the CSV as UTF-8, or give its encoding (e.g. cp1252)",
            input="encoding",
            suggested="cp1252",
        ) from None


def _hint_delimiter(p: Path, header: list[str], delimiter: str) -> None:
    """A header read as one column that another delimiter would split: the export's delimiter
    is not the one asked for, and every row would be refused for it."""
    if len(header) != 1:
        return
    for other in _DELIMITERS:
        if other != delimiter and len(header[0].split(other)) > 1:
            raise ExportError(
                f"{p}:1: the header is one column, {header[0][:80]!r}: it looks separated by {other!r}; "
                "read it with that delimiter",
                input="delimiter",
                suggested=other,
            )


def _row_problem(header: list[str], values: Sequence[str]) -> str | None:
    for i, value in enumerate(values):
        if len(value) > MAX_CELL:
            name = header[i] if i < len(header) else "(beyond the header)"
            return f"column {i + 1} ({name}): a cell of {len(value):,} characters, more than {MAX_CELL:,}"
    if len(values) < len(header):
        open_quote = " (a quoted cell left open runs on to the end of the file)" if "\n" in values[-1] else ""
        return (
            f"column {len(values) + 1} ({header[len(values)]}): missing; the row has {len(values)} cells where the "
            f"header has {len(header)}, so it was cut short{open_quote}"
        )
    if len(values) > len(header):
        return (
            f"column {len(header) + 1}: beyond the header; the row has {len(values)} cells where the header has "
            f"{len(header)} (an unquoted delimiter inside a cell?)"
        )
    return None


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
