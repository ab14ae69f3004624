"""The README and docs/*.md: every relative link leads to a file that exists, every `#anchor` to a
heading that exists (as GitHub renders it), and every page in docs/ can be reached from the
README. Pure text, no servers."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from tests.support import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def _prose(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text without markup, lower-cased, punctuation
    dropped (letters, digits, `_` and `-` kept), spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = CODE_SPAN.sub(lambda m: m.group(2), text).replace("*", "")
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in _prose(page.read_text()):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return frozenset(found)


def links(page: Path) -> list[str]:
    """The relative link targets of a page, outside code."""
    out = []
    for line in _prose(page.read_text()):
        for m in LINK.finditer(CODE_SPAN.sub(lambda c: "x" * len(c.group(0)), line)):
            target = m.group(1)
            if not EXTERNAL.match(target):
                out.append(target)
    return out


def problems(page: Path) -> list[str]:
    found = []
    for target in links(page):
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            found.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            found.append(f"{target}: no heading with anchor #{anchor} in {dest.relative_to(ROOT)}")
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    assert problems(page) == []


def test_every_docs_page_is_reachable_from_the_readme() -> None:
    reached: set[Path] = set()
    todo = [ROOT / "README.md"]
    while todo:
        page = todo.pop()
        if page in reached:
            continue
        reached.add(page)
        for target in links(page):
            path_part = target.partition("#")[0]
            dest = (page.parent / path_part).resolve()
            if path_part and dest.suffix == ".md" and dest.exists():
                todo.append(dest)
    unreached = [str(p.relative_to(ROOT)) for p in PAGES if p not in reached]
    assert unreached == []


def test_the_checker_itself() -> None:
    assert slug("Metrics, comparisons and the report") == "metrics-comparisons-and-the-report"
    assert slug("`--json` output (stable)") == "--json-output-stable"
    assert slug("An outcome is in the log when the rep's call returns") == (
        "an-outcome-is-in-the-log-when-the-reps-call-returns"
    )
    assert slug("Experiments (A/B)") == "experiments-ab"
    assert slug("Changing a process: versions, migration") == "changing-a-process-versions-migration"
