-- Substring search over usernames and emails.
--
-- Trigram GIN indexes (pg_trgm, a trusted extension: the database owner may
-- create it) answer `LIKE '%...%'` on lower(username) and on email (stored
-- lowercased) without scanning every user.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX users_username_trgm_idx ON users USING gin (lower(username) gin_trgm_ops);
CREATE INDEX users_email_trgm_idx ON users USING gin (email gin_trgm_ops);
