-- Accounts.
--
-- Usernames keep the case they were given but are unique ignoring case (the
-- index on lower(username), which also serves login lookups). Emails are
-- lowercased by the application before they are stored, so a plain unique
-- index makes them unique ignoring case.
--
-- Identity ids are never reused, so a token naming a deleted user never
-- names a new one. The application writes timestamps at whole seconds so
-- that both backends answer alike.
CREATE TABLE users (
    id            BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT        NOT NULL,
    email         TEXT        NOT NULL,
    password_hash TEXT        NOT NULL,
    age           INTEGER     CHECK (age BETWEEN 0 AND 150),
    role          TEXT        NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    is_active     BOOLEAN     NOT NULL DEFAULT TRUE,
    -- Bumped to end every session of the user at once.
    token_version BIGINT      NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (email);
-- The last-admin checks look up active admins.
CREATE INDEX users_role_active_idx ON users (role, is_active);
