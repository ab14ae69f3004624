"""API tokens: who may make one for whom, and who a presented token signs in.

A token signs in the identity it was made for, as the access configuration knows that identity
at the moment of each request: removing someone from the configuration locks out their tokens
too, and so does revoking or expiring the token itself.
"""

from __future__ import annotations

from datetime import datetime

from client.api import DealflowClient, NotFound, Refused, Unauthenticated
from store import tokens
from store.tokens import TokenRecord


async def create(
    c: DealflowClient, identity: str, *, created_by: str, expires_at: datetime | None = None
) -> tuple[str, TokenRecord]:
    if c.access is not None and identity not in c.access.identities:
        known = ", ".join(sorted(c.access.identities)) or "none"
        raise Refused(
            f"{identity!r} is not an identity of the access configuration ({c.access.source}; known: {known})",
            code="unknown_identity",
        )
    if expires_at is not None and expires_at <= tokens.now():
        raise Refused(f"expiry {expires_at.isoformat()} is in the past", code="invalid_request")
    return await tokens.create(c.pool, identity, created_by=created_by, expires_at=expires_at)


async def revoke(c: DealflowClient, token_id: str, *, revoked_by: str) -> TokenRecord:
    try:
        return await tokens.revoke(c.pool, token_id, revoked_by=revoked_by)
    except tokens.UnknownToken as exc:
        raise NotFound(str(exc), code="unknown_token") from None


async def list_all(c: DealflowClient) -> list[TokenRecord]:
    return await tokens.list_all(c.pool)


async def authenticate(c: DealflowClient, token: str) -> TokenRecord:
    """The record of a token that signs someone in now; `Unauthenticated` saying why otherwise."""
    record = await tokens.resolve(c.pool, token)
    if record is None:
        raise Unauthenticated("the token is not one this server issued (or it was mistyped)")
    problem = record.problem(tokens.now())
    if problem:
        raise Unauthenticated(problem)
    if c.access is not None and record.identity not in c.access.identities:
        raise Unauthenticated(f"token {record.token_id} is for {record.identity!r}, who is no longer configured")
    await tokens.touch(c.pool, record.token_id)
    return record


async def still_valid(c: DealflowClient, token_id: str) -> TokenRecord:
    """A browser session's token, checked again on each request: revoking a token signs out every
    session it signed in."""
    record = await tokens.get(c.pool, token_id)
    if record is None:
        raise Unauthenticated("the session's token no longer exists; sign in again")
    problem = record.problem(tokens.now())
    if problem:
        raise Unauthenticated(f"{problem}; sign in again")
    if c.access is not None and record.identity not in c.access.identities:
        raise Unauthenticated(f"{record.identity!r} is no longer configured")
    return record
