"""A refused form's answer carried across its redirect (post/redirect/get): the form's route keeps
the refusal and what was typed in the session and redirects to the form's page, which takes them
back and shows them once. Reloading that page asks for it again; it never sends the form again.

The session is a signed cookie, which a browser keeps only up to 4 KB. What was typed goes first
when the whole does not fit (the page says so); a refusal that does not fit even then (a file's
long list of problems) is not kept, and its route shows it in place, as the answer to the post.
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


def keep(request: Request, page: str, shown: dict[str, Any], typed: dict[str, Any]) -> bool:
    """Remember a refusal of a form on `page` (a path) for the page's next rendering: `shown` is
    what the page shows of it (`error`, `error_code`, ...), `typed` what the form held. False,
    and nothing kept, when the refusal alone does not fit the cookie."""
    refused: dict[str, Any] = {"page": page, "shown": shown, "typed": typed, "dropped": False}
    if _size(refused) > BUDGET:
        refused |= {"typed": {}, "dropped": bool(typed)}
    if _size(refused) > BUDGET:
        request.session.pop(KEY, None)
        return False
    request.session[KEY] = refused
    return True


def take(request: Request, page: str) -> dict[str, Any]:
    """The refusal kept for `page`, as the page's context (what `keep` was shown, `typed`,
    `typed_dropped`, `refused`), and forgotten; empty when there is none. One kept for another
    page is forgotten too: it was never followed there."""
    refused = request.session.pop(KEY, None)
    if not isinstance(refused, dict) or refused.get("page") != page or not isinstance(refused.get("shown"), dict):
        return {}
    return {
        **refused["shown"],
        "typed": refused.get("typed") or {},
        "typed_dropped": bool(refused.get("dropped")),
        "refused": True,
    }
