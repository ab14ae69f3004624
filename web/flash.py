"""A refused form's answer carried across its redirect (post/redirect/get): the form's route keeps
the refusal and what was typed in the session and redirects to the page, which takes them back and
shows them once. Reloading that page asks for it again; it never sends the form again.

The session is a signed cookie, which a browser keeps only up to 4 KB: a refusal whose text and
typed values do not fit keeps its text (shortened if it must be) and says that what was typed was
too long to keep, rather than make a cookie the browser would throw away.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

KEY = "refused"
# bytes of the session's JSON for one refusal: with the identity and the CSRF token beside it, and
# base64 and the signature around it, the cookie stays under the 4,096 bytes a browser keeps
BUDGET = 2500


def _size(value: Any) -> int:
    return len(json.dumps(value))  # as the session middleware writes it: ASCII, non-ASCII escaped


def keep(request: Request, page: str, message: str, code: str, typed: dict[str, Any]) -> None:
    """Remember a refusal of a form on `page` (a path) for the page's next rendering."""
    refused: dict[str, Any] = {"page": page, "error": message, "error_code": code, "typed": typed, "dropped": False}
    if _size(refused) > BUDGET:
        refused |= {"typed": {}, "dropped": bool(typed)}
    text = message
    while _size(refused) > BUDGET and text:
        text = text[: len(text) * 3 // 4]
        refused["error"] = text + "…"
    request.session[KEY] = refused


def take(request: Request, page: str) -> dict[str, Any]:
    """The refusal kept for `page`, as the page's context (`error`, `error_code`, `typed`,
    `typed_dropped`), and forgotten; empty when there is none. One kept for another page is
    forgotten too: it was never followed there."""
    refused = request.session.pop(KEY, None)
    if not isinstance(refused, dict) or refused.get("page") != page:
        return {}
    return {
        "error": str(refused.get("error", "")),
        "error_code": str(refused.get("error_code", "")),
        "typed": refused.get("typed") or {},
        "typed_dropped": bool(refused.get("dropped")),
        "refused": True,
    }
