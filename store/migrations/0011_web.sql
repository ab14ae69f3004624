-- API tokens for the HTTP API and the browser sign-in: the secret is stored only as its SHA-256
-- (a token is 32 random bytes, so a fast hash is enough); a token is revoked, never deleted.
CREATE TABLE api_tokens (
    token_id    text PRIMARY KEY,
    identity    text NOT NULL,
    secret_hash text NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz,
    revoked_by  text,
    last_used_at timestamptz
);
CREATE INDEX api_tokens_identity ON api_tokens (identity);

-- The first answer to each Idempotency-Key of an identity: a repeat gets it back and changes nothing.
CREATE TABLE api_requests (
    identity    text NOT NULL,
    key         text NOT NULL,
    method      text NOT NULL,
    path        text NOT NULL,
    body_sha256 text NOT NULL,
    status      integer NOT NULL,
    response    jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (identity, key)
);
