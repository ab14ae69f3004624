"""The CLI's own words for the input an error is about: the flag that supplies it.

The messages come from the domain and the client, which the pages and the API share, so they
name no flag; an error that is about one input of the request names it in its details
(`DealflowError.input_at_fault`), and this says which of the command's flags that is.
"""

from __future__ import annotations

from client.api import DealflowError


def with_flag(exc: DealflowError) -> str:
    """The error's message, and the flag that fixes it (or repeats the request safely)."""
    about = exc.input_at_fault
    match about.get("input"):
        case "reason":
            return f"{exc.message} (--reason)"
        case "stage_map":
            return f"{exc.message} (--map {about.get('stage') or 'OLD'}=STAGE)"
        case "mapping":
            return f"{exc.message} (--map FILE)"
        case "delimiter":
            suggested = str(about.get("suggested") or ";")
            shown = "\\t" if suggested == "\t" else suggested
            return f"{exc.message} (--delimiter '{shown}')"
        case "encoding":
            return f"{exc.message} (--encoding {about.get('suggested') or 'NAME'})"
        case "request_id" if about.get("request_id"):
            return f"{exc.message}; repeat with --request-id {about['request_id']}"
    return exc.message


def stranded_flag(stage: str | None) -> str:
    """How a migration names where deals on a stage the new version lacks go."""
    return f"--map {stage or 'OLD'}=STAGE"
