"""API tokens: made for an identity, stored as a hash, revocable, optionally expiring.

A token reads `dft_<id>_<secret>`: the id finds the row, the secret is checked against its
SHA-256 in constant time. The secret is shown once, when the token is made.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

import asyncpg
from pydantic import BaseModel

PREFIX = "dft"


class TokenRecord(BaseModel):
    token_id: str
    identity: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    last_used_at: datetime | None

    def problem(self, now: datetime) -> str | None:
        """Why the token no longer signs anyone in; None while it does."""
        if self.revoked_at is not None:
            return f"token {self.token_id} was revoked at {self.revoked_at:%Y-%m-%d %H:%M} UTC"
        if self.expires_at is not None and self.expires_at <= now:
            return f"token {self.token_id} expired at {self.expires_at:%Y-%m-%d %H:%M} UTC"
        return None


class UnknownToken(LookupError):
    pass


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


_COLUMNS = "token_id, identity, created_by, created_at, expires_at, revoked_at, revoked_by, last_used_at"


async def create(
    pool: asyncpg.Pool, identity: str, *, created_by: str, expires_at: datetime | None = None
) -> tuple[str, TokenRecord]:
    """A new token for `identity`: the token text (shown once) and its record."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = await pool.fetchrow(
        f"INSERT INTO api_tokens (token_id, identity, secret_hash, created_by, expires_at)"
        f" VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}",
        token_id,
        identity,
        _hash(secret),
        created_by,
        expires_at,
    )
    assert row is not None
    return f"{PREFIX}_{token_id}_{secret}", TokenRecord(**dict(row))


async def resolve(pool: asyncpg.Pool, token: str) -> TokenRecord | None:
    """The record of a token whose secret matches, whatever its state; None for a token that does
    not exist or whose secret is wrong (the two are not told apart)."""
    prefix, _, rest = token.partition("_")
    token_id, _, secret = rest.partition("_")
    if prefix != PREFIX or not token_id or not secret:
        return None
    row = await pool.fetchrow(f"SELECT {_COLUMNS}, secret_hash FROM api_tokens WHERE token_id = $1", token_id)
    if row is None or not hmac.compare_digest(row["secret_hash"], _hash(secret)):
        return None
    fields = dict(row)
    fields.pop("secret_hash")
    return TokenRecord(**fields)


async def touch(pool: asyncpg.Pool, token_id: str) -> None:
    await pool.execute("UPDATE api_tokens SET last_used_at = now() WHERE token_id = $1", token_id)


async def revoke(pool: asyncpg.Pool, token_id: str, *, revoked_by: str) -> TokenRecord:
    row = await pool.fetchrow(
        f"UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()), revoked_by = coalesce(revoked_by, $2)"
        f" WHERE token_id = $1 RETURNING {_COLUMNS}",
        token_id,
        revoked_by,
    )
    if row is None:
        raise UnknownToken(f"no token {token_id!r}")
    return TokenRecord(**dict(row))


async def list_all(pool: asyncpg.Pool) -> list[TokenRecord]:
    rows = await pool.fetch(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY created_at, token_id")
    return [TokenRecord(**dict(r)) for r in rows]


def now() -> datetime:
    return datetime.now(UTC)


async def get(pool: asyncpg.Pool, token_id: str) -> TokenRecord | None:
    row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM api_tokens WHERE token_id = $1", token_id)
    return None if row is None else TokenRecord(**dict(row))
