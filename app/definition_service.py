"""Process definitions as ops work with them: load, preview a deploy, deploy, show, compare.

The CLI and the web app both call these; they format the answers and decide nothing themselves.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path, PurePath, PurePosixPath

import yaml
from pydantic import BaseModel

from app import permissions
from app.context import Context
from app.errors import Refused
from definitions.diff import Change, diff
from definitions.loader import Checked, DefinitionError, PinnedDefinition, check_file, check_text, load_file
from definitions.model import ProcessDefinition
from store import registry


class ChangeView(BaseModel):
    part: str
    subject: str
    kind: str
    text: str

    @classmethod
    def of(cls, change: Change) -> ChangeView:
        return cls(part=change.part, subject=change.subject, kind=change.kind, text=change.text)


class DeployPreview(BaseModel):
    """What deploying a file would do, written before anything is stored."""

    file: str
    name: str
    version: str
    stages: int
    already_deployed: bool
    deployed_by: str | None  # who deployed this exact content, when it is already deployed
    latest: str | None
    changes: list[ChangeView]
    warnings: list[str] = []  # what deploying it should still tell (file:line: path: what), refusing nothing


class DefinitionView(BaseModel):
    name: str
    version: str
    content_hash: str
    deployed_by: str | None
    deployed_at: datetime | None
    definition: ProcessDefinition
    templates: list[str]


class VersionDiff(BaseModel):
    from_ref: str
    to_ref: str
    changes: list[ChangeView]


def load(path: str | Path) -> PinnedDefinition:
    return check(path).pinned


def check(path: str | Path) -> Checked:
    """A definition file, pinned, with its warnings; refused naming every problem."""
    try:
        return check_file(path)
    except DefinitionError as exc:
        raise Refused(str(exc), code="invalid_definition", details=[str(p) for p in exc.problems]) from None


def _named_templates(text: str) -> dict[str, str]:
    """Where the definition expects each template file, by the file's own name: a browser sends
    `proposal.md`, the definition says `templates/proposal.md`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}  # the loader reports the YAML's problem with its line
    entries = data.get("proposal_templates") if isinstance(data, dict) else None
    places: dict[str, str] = {}
    for entry in entries if isinstance(entries, list) else []:
        where = entry.get("file") if isinstance(entry, dict) else None
        if isinstance(where, str):
            named = PurePosixPath(where)
            if not named.is_absolute() and ".." not in named.parts:
                places[named.name] = named.as_posix()
    return places


def load_upload(filename: str, text: str, templates: dict[str, str] | None = None) -> PinnedDefinition:
    return check_upload(filename, text, templates).pinned


def check_upload(filename: str, text: str, templates: dict[str, str] | None = None) -> Checked:
    """A definition sent over the network, with the template files it names beside it.

    The template files are written to a fresh directory (each where the definition looks for a
    file of its name) and the definition is loaded as if it lived there, so an upload is checked
    by exactly the rules a file on disk is: its templates come from the files uploaded with it
    and from nowhere else on the server. Errors cite the upload's own names.
    """
    names = [filename, *(templates or {})]
    unsafe = [n for n in names if not n or not n.isprintable() or PurePath(n).name != n or n in {".", ".."}]
    if unsafe:
        raise Refused(
            f"file names must be plain names, not paths: {', '.join(map(repr, unsafe))}", code="invalid_request"
        )
    places = _named_templates(text)
    with tempfile.TemporaryDirectory(prefix="dealflow-upload-") as tmp:
        for name, content in (templates or {}).items():
            target = Path(tmp) / places.get(name, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                target.write_text(content, encoding="utf-8")
            except UnicodeEncodeError as exc:
                raise Refused(f"{name}: not valid text ({exc.reason})", code="invalid_definition") from None
        try:
            return check_text(text, source=filename, base=Path(tmp))
        except DefinitionError as exc:
            raise Refused(str(exc), code="invalid_definition", details=[str(p) for p in exc.problems]) from None


async def deploy(c: Context, path: str | Path, *, deployed_by: str) -> registry.Deployment:
    """Deploy a definition file; who may deploy is checked before the file is read."""
    await permissions.require(c, deployed_by, "deploy", Path(path).name)  # a refusal's page shows no server path
    try:
        pinned = load_file(path)
    except DefinitionError as exc:
        raise Refused(str(exc), code="invalid_definition", details=[str(p) for p in exc.problems]) from None
    return await registry.deploy(c.pool, pinned, deployed_by=deployed_by, source=str(path))


async def deploy_pinned(c: Context, pinned: PinnedDefinition, *, deployed_by: str, source: str) -> registry.Deployment:
    """Deploy a definition already loaded and checked (an upload: `load_upload`)."""
    await permissions.require(c, deployed_by, "deploy", source)
    return await registry.deploy(c.pool, pinned, deployed_by=deployed_by, source=source)


async def deployments(c: Context) -> list[registry.Deployment]:
    return await registry.list_all(c.pool)


async def deploy_upload(
    c: Context, filename: str, text: str, templates: dict[str, str] | None, *, deployed_by: str
) -> tuple[registry.Deployment, list[str]]:
    """Deploy a definition sent over the network, and say its warnings; who may deploy is checked
    before the upload is even read, so a refusal never depends on what was sent."""
    await permissions.require(c, deployed_by, "deploy", filename)
    checked = check_upload(filename, text, templates)
    deployment = await deploy_pinned(c, checked.pinned, deployed_by=deployed_by, source=filename)
    return deployment, [str(w) for w in checked.warnings]


async def latest(c: Context, name: str) -> PinnedDefinition | None:
    try:
        return await registry.get(c.pool, name)
    except registry.UnknownDefinition:
        return None


async def preview(
    c: Context, pinned: PinnedDefinition, source: str, warnings: list[str] | None = None
) -> DeployPreview:
    """Compare a loaded definition with what is deployed; write nothing."""
    existing = await registry.find(c.pool, pinned.name, pinned.version)
    newest = await latest(c, pinned.name)
    changes = diff(newest, pinned) if newest is not None and existing is None else []
    return DeployPreview(
        file=source,
        name=pinned.name,
        version=pinned.version,
        stages=len(pinned.definition.stages),
        already_deployed=existing is not None,
        deployed_by=existing.deployed_by if existing else None,
        latest=newest.version if newest else None,
        changes=[ChangeView.of(ch) for ch in changes],
        warnings=warnings or [],
    )


async def show(c: Context, name: str, version: str | None = None) -> DefinitionView:
    pinned = await c.definition(name, version)
    deployment = await registry.find(c.pool, pinned.name, pinned.version)
    return DefinitionView(
        name=pinned.name,
        version=pinned.version,
        content_hash=pinned.content_hash,
        deployed_by=deployment.deployed_by if deployment else None,
        deployed_at=deployment.deployed_at if deployment else None,
        definition=pinned.definition,
        templates=sorted(pinned.templates),
    )


async def compare_versions(c: Context, name: str, old: str, new: str) -> VersionDiff:
    a = await c.definition(name, old)
    b = await c.definition(name, new)
    return VersionDiff(from_ref=a.ref, to_ref=b.ref, changes=[ChangeView.of(ch) for ch in diff(a, b)])
