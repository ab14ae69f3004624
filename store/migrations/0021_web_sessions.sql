-- Browser sessions, kept by the server so that signing out ends one for good: the signed cookie
-- carries only the session's id (stored here as its SHA-256), and every request checks the row.
-- A session names the identity it signed in and the token it signed in with (NULL with access
-- control off); it ends when signed out or when it reaches expires_at, 12 h after sign-in, and
-- it lapses when idle. A row is kept after it ends, as the record of who signed in when.
CREATE TABLE web_sessions (
    session_hash  text PRIMARY KEY,
    identity      text        NOT NULL,
    token_id      text        REFERENCES api_tokens (token_id),
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    ended_at      timestamptz,
    ended_because text
);
CREATE INDEX web_sessions_token ON web_sessions (token_id);
