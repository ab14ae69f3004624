"""Reading definitions from YAML, reporting every problem with file, path and line.

The version of a definition is a hash of its normalised form (defaults filled in, durations
parsed, keys sorted), so reformatting a file or reordering keys never makes a new version, while
any change of meaning does. Pinning first expands the process's public holidays into plain
dates (`definitions.public_holidays`), so the hash covers the very days its deals will skip.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from definitions import rules, template_files
from definitions.model import ProcessDefinition, template_names
from definitions.template_files import TemplateFileError
from definitions.templates import check as check_template

PROCESSES_DIR = Path(__file__).parent / "processes"

# What a workflow start can carry, measured on the Temporal dev server (CLI 1.9.1, server 1.32.0;
# tests/application/test_definition_size.py measures it again): the SDK warns of a payload above 512 KiB, the
# server refuses one above 2 MiB ("Blob data size exceeds limit", INVALID_ARGUMENT) and gRPC a
# message above 4 MiB (RESOURCE_EXHAUSTED). A deal's start carries its pinned definition whole, and
# so do a migration to it and every continue-as-new (with the deal's events beside it), so a
# definition may take an eighth of the server's limit and stays below the SDK's warning.
MAX_PINNED_BYTES = 256 * 1024


@dataclass(frozen=True)
class DefinitionProblem:
    file: str
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '<top>'}: {self.message}"


class DefinitionError(ValueError):
    """A definition was refused; `problems` lists every reason found."""

    def __init__(self, problems: list[DefinitionProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class PinnedDefinition(BaseModel):
    """A validated definition with its version: what a deal workflow is started with."""

    model_config = ConfigDict(frozen=True)

    definition: ProcessDefinition
    version: str
    content_hash: str
    templates: dict[str, str] = {}

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def ref(self) -> str:
        return f"{self.definition.name}@{self.version}"


@dataclass(frozen=True)
class Checked:
    """A definition that passed, with what deploying it should still tell (a country code that
    is valid but not one of the process's time zone): warnings refuse nothing."""

    pinned: PinnedDefinition
    warnings: list[DefinitionProblem]


def pinned_size(pinned: PinnedDefinition) -> int:
    """The bytes of the pinned definition as a workflow's input carries it (JSON, as the
    pydantic data converter writes it)."""
    return len(pinned.model_dump_json().encode("utf-8"))


def size_text(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KiB"


def _size_problems(pinned: PinnedDefinition, source: str, root: yaml.Node | None) -> list[DefinitionProblem]:
    """Refuse a definition a deal could not carry, at the line of its largest part."""
    size = pinned_size(pinned)
    if size <= MAX_PINNED_BYTES:
        return []
    d = pinned.definition

    def encoded(value: Any) -> int:
        return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))

    parts: list[tuple[int, tuple[str | int, ...], str]] = [
        (encoded(value), (key,), key) for key, value in d.model_dump(mode="json").items()
    ]
    parts += [
        (encoded(pinned.templates.get(t.id, "")), ("proposal_templates", i, "file"), f"template {t.file}")
        for i, t in enumerate(d.proposal_templates)
    ]
    largest, path, what = max(parts, key=lambda part: part[0])
    message = (
        f"the pinned definition is {size_text(size)} ({size:,} bytes): a deal's start carries it whole, and "
        f"dealflow takes at most {size_text(MAX_PINNED_BYTES)} (Temporal refuses a start above 2 MiB); "
        f"the largest part is {what} ({size_text(largest)})"
    )
    return [DefinitionProblem(source, format_path(path), message, line_of(root, path))]


def format_path(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def line_of(root: yaml.Node | None, path: tuple[str | int, ...]) -> int | None:
    """The 1-based line of the deepest YAML node found along `path`."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in path:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            child = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        else:
            child = None
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line


def content_hash(definition: ProcessDefinition, templates: dict[str, str] | None = None) -> str:
    normal = definition.model_dump(mode="json")
    body = {"definition": normal, "templates": dict(sorted((templates or {}).items()))}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def pin(
    definition: ProcessDefinition, templates: dict[str, str] | None = None, *, today: date | None = None
) -> PinnedDefinition:
    """The version to deploy. A process naming a holiday country gets that country's dates from
    the deploy year (`today`, by default the date now in the process's time zone) on, so the same
    file deployed in another year, or after the holidays package changed its data, is another
    version; the same file deployed again in the same year with the same data is the same one."""
    if definition.holidays is not None:
        # imported here: the workflows import this module and must never load `holidays`
        from definitions import public_holidays

        today = today or datetime.now(ZoneInfo(definition.timezone)).date()
        definition = public_holidays.expand(definition, today)
    digest = content_hash(definition, templates)
    return PinnedDefinition(definition=definition, version=digest[:12], content_hash=digest, templates=templates or {})


def parse(data: Any, *, source: str = "<definition>", root: yaml.Node | None = None) -> ProcessDefinition:
    """Validate already-parsed data; raise `DefinitionError` naming every problem."""
    definition, problems = _validate(data, source, root)
    if problems:
        raise DefinitionError(problems)
    return definition


def _validate(
    data: Any, source: str, root: yaml.Node | None, today: date | None = None
) -> tuple[ProcessDefinition, list[DefinitionProblem]]:
    """The definition and the problems of the rules across its parts; `DefinitionError` when
    the data does not even have the definition's shape."""
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise DefinitionError([DefinitionProblem(source, "", f"expected a mapping at the top, got {kind}", 1)])
    try:
        definition = ProcessDefinition.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown field {loc[-1]!r}"
            problems.append(DefinitionProblem(source, format_path(loc), msg, line_of(root, loc)))
        raise DefinitionError(problems) from None
    found = rules.check(definition)
    if definition.holidays is not None:
        from definitions import public_holidays  # not at the top: see `pin`

        found.extend(public_holidays.problems(definition, today))
    return definition, [DefinitionProblem(source, format_path(p), m, line_of(root, p)) for p, m in found]


def _read_templates(
    definition: ProcessDefinition, base: Path | None, source: str, root: yaml.Node | None = None
) -> tuple[dict[str, str], list[DefinitionProblem]]:
    """The text of each proposal template, from the definition's own directory only
    (`definitions.template_files`), checked like the touches: every problem is reported at the
    definition's line naming the file, with the line inside the template file."""
    templates: dict[str, str] = {}
    problems: list[DefinitionProblem] = []
    known = template_names(definition)
    for i, t in enumerate(definition.proposal_templates):
        where: tuple[str | int, ...] = ("proposal_templates", i, "file")
        line = line_of(root, where)
        try:
            text = template_files.read(base, t.file)
        except TemplateFileError as exc:
            problems.append(DefinitionProblem(source, format_path(where), str(exc), line))
            continue
        found = check_template(text, known)
        problems.extend(
            DefinitionProblem(source, format_path(where), f"{t.file}:{p.line}: {p.message}", line) for p in found
        )
        if not found:
            templates[t.id] = text
    return templates, problems


def load_text(
    text: str, *, source: str = "<definition>", base: Path | None = None, today: date | None = None
) -> PinnedDefinition:
    """A definition from its text; `base` is the directory it lives in, the only place its
    template files are read from (without one, a definition naming a file is refused)."""
    return check_text(text, source=source, base=base, today=today).pinned


def check_text(
    text: str, *, source: str = "<definition>", base: Path | None = None, today: date | None = None
) -> Checked:
    """The pinned definition and its warnings; `DefinitionError` naming every problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise DefinitionError([DefinitionProblem(source, "", f"not valid YAML: {problem}", line)]) from None
    definition, problems = _validate(data, source, root, today)
    templates, unreadable = _read_templates(definition, base, source, root)
    if problems or unreadable:  # every problem at once: the parts' and the template files'
        raise DefinitionError(problems + unreadable)
    pinned = pin(definition, templates, today=today)
    too_large = _size_problems(pinned, source, root)
    if too_large:
        raise DefinitionError(too_large)
    warned = []
    if definition.holidays is not None:
        from definitions import public_holidays  # not at the top: see `pin`

        found = public_holidays.warnings(definition)
        warned = [DefinitionProblem(source, format_path(p), m, line_of(root, p)) for p, m in found]
    return Checked(pinned, warned)


def load_file(path: str | Path, *, today: date | None = None) -> PinnedDefinition:
    return check_file(path, today=today).pinned


def check_file(path: str | Path, *, today: date | None = None) -> Checked:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError([DefinitionProblem(str(p), "", f"cannot read file: {exc}")]) from None
    return check_text(text, source=str(p), base=p.parent, today=today)


def shipped() -> list[Path]:
    """The process definitions that ship with dealflow."""
    return sorted(PROCESSES_DIR.glob("*.yaml"))
