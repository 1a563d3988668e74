-- Account lifecycle: verified emails, the last login, what a user sees of
-- their sessions, and the one-time tokens of password resets and email
-- verification.
--
-- Existing users start unverified: nothing has proved their addresses.
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN last_login_at TIMESTAMPTZ;

-- Set at login and at each refresh; the User-Agent of the login.
ALTER TABLE sessions ADD COLUMN last_used_at TIMESTAMPTZ;
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
UPDATE sessions SET last_used_at = created_at;

-- Only the SHA-256 of each token is stored. `kind` is `password_reset` or
-- `verify_email`; a user has at most one live token of each kind (a newer
-- one replaces the older). A verification token names the address it was
-- sent to, and is void once the user's email is another.
CREATE TABLE account_tokens (
    token_hash TEXT        PRIMARY KEY,
    user_id    BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT        NOT NULL CHECK (kind IN ('password_reset', 'verify_email')),
    email      TEXT        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX account_tokens_user_kind_key ON account_tokens (user_id, kind);
CREATE INDEX account_tokens_expires_at_idx ON account_tokens (expires_at);
