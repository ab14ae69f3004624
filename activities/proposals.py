"""Proposal documents, rendered from the deal's facts into Markdown and HTML.

Files are named by deal, template and definition version, and rewritten only when their content
changes, so generating again for the same deal and version is idempotent. The template is filled
by the one template language (`definitions.templates`): a placeholder with no value is a named,
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
        base = self._directory / _safe(req.deal_id) / f"{_safe(req.template_id)}-{_safe(req.version)}"
        md_path, html_path = base.with_suffix(".md"), base.with_suffix(".html")

        def write() -> None:
            _write_if_changed(md_path, markdown)
            _write_if_changed(html_path, html)

        await asyncio.to_thread(write)
        digest = hashlib.sha256(markdown.encode("utf-8")).hexdigest()
        return ProposalDocument(path=str(md_path), html_path=str(html_path), content_hash=digest)
