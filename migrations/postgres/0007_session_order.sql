-- The order in which sessions and refresh tokens were made (timestamps are
-- whole seconds): a login past `max_sessions_per_user` ends the user's
-- oldest sessions, and a session keeps only its most recently spent refresh
-- tokens. (SQLite orders both by rowid, which grows with every insert.)
ALTER TABLE sessions ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY;
ALTER TABLE refresh_tokens ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY;
