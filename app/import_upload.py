"""An import whose files came over the network: written to a fresh directory, then read exactly
as files on disk are (`import_service.read`)."""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePath
from typing import get_args

from app import import_service, permissions
from app.context import Context
from app.errors import Refused
from app.import_service import ImportReport
from domain.imports import Effects

SOURCES = ("salesforce", "hubspot", "pipedrive", "csv")
EFFECTS: tuple[Effects, ...] = get_args(Effects)


def effects_of(text: str) -> Effects:
    """A form's effects choice, refused in words when it is none of them."""
    for choice in EFFECTS:
        if text == choice:
            return choice
    raise Refused(f"effects {text!r}: expected one of {', '.join(EFFECTS)}", code="invalid_request")


async def import_files(
    c: Context,
    source: str,
    files: dict[str, bytes],
    *,
    process: str,
    mapping: bytes | None,
    actor: str,
    dry_run: bool,
    pipeline: str | None = None,
    time_zone: str = "UTC",
    effects: Effects = "future",
    delimiter: str = ",",
    encoding: str = "utf-8-sig",
) -> ImportReport:
    """`files` by name: the export's (Salesforce: the opportunities first, then the history), read
    with `delimiter` and `encoding` as the CLI's flags read files on disk."""
    if source not in SOURCES:
        raise Refused(f"source {source!r}: expected one of {', '.join(SOURCES)}", code="invalid_request")
    need = 2 if source == "salesforce" else 1
    if len(files) != need:
        what = "the opportunities and the opportunity history" if need == 2 else "one export file"
        raise Refused(f"a {source} import takes {what}; got {len(files)} file(s)", code="invalid_request")
    await permissions.require(c, actor, "import", process)
    bad = [n for n in files if not n or not n.isprintable() or PurePath(n).name != n]
    if bad:
        raise Refused(f"file names must be plain names: {', '.join(map(repr, bad))}", code="invalid_request")
    with tempfile.TemporaryDirectory(prefix="dealflow-import-") as tmp:
        paths = []
        for name, content in files.items():
            (Path(tmp) / name).write_bytes(content)
            paths.append(str(Path(tmp) / name))
        mapping_path = None
        if mapping is not None:
            mapping_path = str(Path(tmp) / "mapping.yaml")
            Path(mapping_path).write_bytes(mapping)
        here = tmp + "/"  # the answer names the files as they were sent, never where they were checked
        try:
            the_plan, described = await import_service.read(
                c,
                source,
                paths,
                process=process,
                mapping_file=mapping_path,
                time_zone=time_zone,
                pipeline=pipeline,
                delimiter=delimiter,
                encoding=encoding,
            )
        except Refused as exc:
            raise Refused(exc.message.replace(here, ""), code=exc.code, details=exc.details) from None
        report = await import_service.run(c, the_plan, described, actor=actor, dry_run=dry_run, effects=effects)
        return report.model_copy(update={"problems": [p.replace(here, "") for p in report.problems]})
