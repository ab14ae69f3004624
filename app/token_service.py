"""API tokens: who may make one for whom, and who a presented token signs in.

A token signs in the identity it was made for, as the access configuration knows that identity
at the moment of each request: removing someone from the configuration locks out their tokens
too, and so does revoking or expiring the token itself. With access control on, a token is made
or revoked only by an identity allowed to (`permissions.issue_refusal`: ops, or a manager for their
team), and the refusal is recorded like any other.
"""

from __future__ import annotations

from datetime import datetime

from app import permissions
from app.context import Context
from app.errors import NotFound, Refused, Unauthenticated
from store import access_log, tokens
from store.tokens import TokenRecord


async def create(
    c: Context, identity: str, *, created_by: str, expires_at: datetime | None = None
) -> tuple[str, TokenRecord]:
    if c.access is not None and identity not in c.access.identities:
        known = ", ".join(sorted(c.access.identities)) or "none"
        raise Refused(
            f"{identity!r} is not an identity of the access configuration ({c.access.source}; known: {known})",
            code="unknown_identity",
        )
    await permissions.require_issue(c, created_by, identity, "make tokens")
    if expires_at is not None and expires_at <= tokens.now():
        raise Refused(f"expiry {expires_at.isoformat()} is in the past", code="invalid_request")
    return await tokens.create(c.pool, identity, created_by=created_by, expires_at=expires_at)


async def revoke(c: Context, token_id: str, *, revoked_by: str) -> TokenRecord:
    """Stop a token working; anyone may revoke their own, an issuer those they may make."""
    record = await tokens.get(c.pool, token_id)
    if record is None:
        raise NotFound(f"no token {token_id!r}", code="unknown_token")
    own = c.access is not None and revoked_by == record.identity and revoked_by in c.access.identities
    if not own:
        await permissions.require_issue(c, revoked_by, record.identity, "revoke tokens")
    try:
        return await tokens.revoke(c.pool, token_id, revoked_by=revoked_by)
    except tokens.UnknownToken as exc:
        raise NotFound(str(exc), code="unknown_token") from None


async def list_all(c: Context) -> list[TokenRecord]:
    return await tokens.list_all(c.pool)


async def authenticate(c: Context, token: str) -> TokenRecord:
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


async def record_refused_sign_in(c: Context, address: str, how: str, reason: str) -> None:
    """A sign-in refused (a wrong token, or too many of them from `address`), kept for auditors:
    the actor is the client's address, since no identity was established."""
    await access_log.record(c.pool, address, None, "sign in", how, reason)


async def still_valid(c: Context, token_id: str, identity: str) -> TokenRecord:
    """A browser session's token, checked again on each request: it must still exist, work, and
    be `identity`'s own (a session naming someone else's token is refused), so revoking a token
    signs out every session it signed in."""
    record = await tokens.get(c.pool, token_id)
    if record is None:
        raise Unauthenticated("the session's token no longer exists; sign in again", details={"reason": "revoked"})
    if record.identity != identity:
        raise Unauthenticated(
            f"the session names {identity!r} but its token {token_id} is {record.identity!r}'s; sign in again",
            details={"reason": "invalid"},
        )
    problem = record.problem(tokens.now())
    if problem:
        raise Unauthenticated(f"{problem}; sign in again", details={"reason": "revoked"})
    if c.access is not None and record.identity not in c.access.identities:
        raise Unauthenticated(f"{record.identity!r} is no longer configured", details={"reason": "removed"})
    return record
