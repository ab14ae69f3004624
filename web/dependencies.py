"""The API's FastAPI dependencies, declared once, as `Annotated` aliases (FastAPI's documented
way to share a dependency): every router takes the client, the caller and the idempotency key
through these, so how a request finds them is written in one place."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from client.api import DealflowClient
from web.idempotency import HEADER
from web.identity import Caller, api_caller, client_of

Client = Annotated[DealflowClient, Depends(client_of)]
"""The application layer the CLI calls too (`client.api.DealflowClient`), made at start-up."""

Who = Annotated[Caller, Depends(api_caller)]
"""The API's caller: a token, a session (with its CSRF header on writes), SSO, or the open caller."""

Key = Annotated[
    str | None,
    Header(alias=HEADER, description="any unique string: a repeat of the request returns the first answer"),
]
"""The `Idempotency-Key` header of a write (web/idempotency.py)."""
