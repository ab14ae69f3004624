"""Proposal documents, rendered from the deal's facts into Markdown and HTML.

Files are named by deal, template and definition version (`<deal>/<template>-<version>.md` and
`.html` inside the proposals directory, the paths the deal records), and rewritten only when
their content changes, so generating again for the same deal and version is idempotent. The
template is the text pinned in the definition, never a file read here, and is filled by the one
template language (`definitions.templates`): a placeholder with no value is a named,
non-retryable failure, and the deal records `ProposalFailed` and goes on.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.markdown import first_heading, to_html
from definitions.templates import MissingValues, TemplateSyntaxError
from definitions.templates import render as fill
from domain.activity_io import GENERATE_PROPOSAL, ProposalDocument, ProposalRequest


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def _write_if_changed(path: Path, text: str) -> None:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def render(req: ProposalRequest) -> tuple[str, str]:
    """The Markdown and HTML of a proposal; ApplicationError naming what is missing."""
    try:
        markdown = fill(req.template, req.values)
    except TemplateSyntaxError as exc:
        raise ApplicationError(
            f"template {req.template_id!r}: {exc}", type="InvalidTemplate", non_retryable=True
        ) from exc
    except MissingValues as exc:
        raise ApplicationError(
            f"proposal {req.template_id!r} for deal {req.deal_id!r} needs {', '.join(exc.missing)}, not recorded yet",
            {"missing": exc.missing},
            type="MissingProposalFacts",
            non_retryable=True,
            category=ApplicationErrorCategory.BENIGN,  # an expected business outcome, not an incident
        ) from exc
    return markdown, to_html(markdown, first_heading(markdown) or req.template_id)


class ProposalActivities:
    def __init__(self, directory: Path):
        self._directory = directory

    @activity.defn(name=GENERATE_PROPOSAL)
    async def generate_proposal(self, req: ProposalRequest) -> ProposalDocument:
        markdown, html = render(req)
        name = Path(_safe(req.deal_id)) / f"{_safe(req.template_id)}-{_safe(req.version)}"
        md_name, html_name = name.with_suffix(".md"), name.with_suffix(".html")

        def write() -> None:
            _write_if_changed(self._directory / md_name, markdown)
            _write_if_changed(self._directory / html_name, html)

        await asyncio.to_thread(write)
        digest = hashlib.sha256(markdown.encode("utf-8")).hexdigest()
        # recorded relative to the proposals directory: the deal's events carry no server path
        return ProposalDocument(path=md_name.as_posix(), html_path=html_name.as_posix(), content_hash=digest)
