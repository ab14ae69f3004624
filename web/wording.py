"""Errors in the web's own words: which field of the API's request, or of the page's form, supplies
the input an error is about.

The messages come from the domain and the client, which the CLI shares, so they say what is wrong
and name no flag or field; an error about one input of the request names it in its details
(`DealflowError.input_at_fault`). The rules stay where they are: this only names the input.
"""

from __future__ import annotations

from client.api import DealflowError

IDEMPOTENCY_HEADER = "Idempotency-Key"  # web.idempotency.HEADER (that module imports this one, through web.errors)

# the input -> where an API caller puts it
API_FIELDS = {
    "reason": "send it in the body's `reason`",
    "stage_map": "give it in the body's `stage_map`, old stage id -> new",
    "mapping": "send the mapping file's YAML in the body's `map`",
    "delimiter": "send the export's cell separator in the body's `delimiter`",
}

# the input -> the field of the page's form that takes it, by its label
PAGE_FIELDS = {
    "reason": "write it in “Reason for the move”",
    "stage_map": "add an OLD=NEW line for it to “Stage map”",
    "mapping": "choose its “Mapping file”",
    "delimiter": "choose it in “Cells separated by”",
    "encoding": "choose it in “Text encoding”",
}


def for_api(exc: DealflowError) -> str:
    """The message as the API answers it."""
    about = exc.input_at_fault
    name = about.get("input")
    if name == "request_id" and about.get("request_id"):
        return f"{exc.message}; repeat the request with the header {IDEMPOTENCY_HEADER}: {about['request_id']}"
    return f"{exc.message} ({API_FIELDS[name]})" if name in API_FIELDS else exc.message


def for_page(exc: DealflowError) -> str:
    """The message as a page shows it."""
    about = exc.input_at_fault
    name = about.get("input")
    if name == "request_id":
        return f"{exc.message}; reload this page to send the form again: it is the same request, applied once"
    return f"{exc.message}: {PAGE_FIELDS[name]}" if name in PAGE_FIELDS else exc.message
