-- Sign-in sessions and their refresh tokens.
--
-- A session is one refresh-token family: a login starts one, each refresh
-- spends a token and adds the next, and logout, reuse of a spent token or a
-- password change revokes it. Access tokens name their session (claim
-- `sid`), so revoking it also ends the access tokens issued in it.
-- Both go with their user (ON DELETE CASCADE).
CREATE TABLE sessions (
    id         TEXT        PRIMARY KEY,
    user_id    BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

-- Only the SHA-256 of each refresh token is stored.
CREATE TABLE refresh_tokens (
    token_hash TEXT        PRIMARY KEY,
    session_id TEXT        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    -- Set when the token is exchanged; presenting it again revokes the session.
    spent_at   TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);
