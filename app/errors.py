"""What a caller of the application layer can act on: every failure is a `DealflowError` with a
stable `code` and a message naming the problem.

A refused request (`Refused`), an unknown deal or process (`NotFound`), a server that cannot be
reached (`Unavailable`), no identity (`Unauthenticated`), or a request whose answer was lost
until its deadline (`OutcomeUnknown`: it may or may not have taken effect; repeat it under the
same request id). The CLI maps them to exit codes and the web app to HTTP statuses, so they live
apart from any one face.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

C = TypeVar("C", bound=BaseModel)


class DealflowError(Exception):
    code = "error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details

    @property
    def input_at_fault(self) -> dict[str, Any]:
        """The details naming the one input of the request to fix or repeat with, when there is
        one: `{"input": "reason"}`, `{"input": "stage_map", "stage": "demo"}`, `{"input":
        "request_id", "request_id": "..."}`; else empty. The message, shared by every face, names
        no flag or field: each face says how its own user supplies this input (a flag, a form
        field, a JSON field). A deal's refusal brings its details as a list of one."""
        found = self.details[0] if isinstance(self.details, list | tuple) and self.details else self.details
        return found if isinstance(found, dict) and isinstance(found.get("input"), str) else {}


class Refused(DealflowError):
    """The deal (or the client, before sending) refused the request; nothing changed."""

    code = "refused"


class NotFound(DealflowError):
    code = "not_found"


class Unavailable(DealflowError):
    code = "unavailable"


class Unauthenticated(DealflowError):
    """No identity could be established: no token, or one unknown, revoked or expired."""

    code = "unauthenticated"


class OutcomeUnknown(DealflowError):
    """Every attempt's answer was lost (timed out, connection dropped) until the request's deadline:
    it may or may not have taken effect. Repeating it under the same request id is safe and
    answers it (`request_id`; None for a start, whose id is the deal's)."""

    code = "outcome_unknown"

    def __init__(self, message: str, *, request_id: str | None = None, details: Any = None):
        super().__init__(message, details=details)
        self.request_id = request_id


class LogLagging(Unavailable):
    """Temporal holds a deal whose log does not: its appends keep failing (store.log_failures)."""

    code = "log_lagging"


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "request"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def build(model: type[C], **fields: Any) -> C:
    """A request's payload, or `Refused` (invalid_request) naming each field at fault."""
    try:
        return model(**fields)
    except ValidationError as exc:
        raise Refused(f"invalid request: {_validation_message(exc)}", code="invalid_request") from None
