-- The order in which sessions and refresh tokens were made (timestamps are
-- whole seconds): a login past `max_sessions_per_user` ends the user's
-- oldest sessions, and a session keeps only its most recently spent refresh
-- tokens. SQLite needs no column for it: both tables order by rowid, which
-- grows with every insert (PostgreSQL's 0007 adds identity columns). This
-- file keeps the two migration histories in step.
SELECT 1;
