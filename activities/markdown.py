"""Proposals from Markdown to HTML, with markdown-it-py (CommonMark, plus tables).

Raw HTML is off: a `<script>` or any other tag, whether written in a template or typed into a
fact by a rep, comes out as text, and links with a script or file scheme (`javascript:`, ...) are
not made into links (markdown-it's link validation). Values are inserted into the Markdown as they
are, so a rep's `**bold**` shows as bold, but nothing a value says can become HTML.
"""

from __future__ import annotations

import html
import itertools

from markdown_it import MarkdownIt
from markdown_it.token import Token

_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")

_PAGE = (
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
    "<title>{title}</title>\n"
    "<style>body{{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;line-height:1.5}}"
    "table{{border-collapse:collapse}}th,td{{border:1px solid #ccc;padding:.25rem .5rem}}</style>\n"
    "</head>\n<body>\n{body}</body>\n</html>\n"
)


def _plain(inline: Token) -> str:
    """The text of an inline token without its markup (for the page's title)."""
    children = inline.children or []
    return "".join(c.content for c in children if c.type in ("text", "code_inline")) or inline.content


def first_heading(markdown: str) -> str | None:
    """The plain text of the document's first heading, if it has one."""
    tokens = _MARKDOWN.parse(markdown)
    for opening, inline in itertools.pairwise(tokens):
        if opening.type == "heading_open" and inline.type == "inline":
            return _plain(inline).strip() or None
    return None


def to_html(markdown: str, title: str) -> str:
    """A whole HTML page of the Markdown, titled `title` (escaped)."""
    return _PAGE.format(title=html.escape(title), body=_MARKDOWN.render(markdown))
