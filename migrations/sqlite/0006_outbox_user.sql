-- A job about a user goes with the user: deleting the user deletes its
-- pending, sent and dead jobs (and the address they hold). Jobs written
-- before this column existed take their user from the payload; those whose
-- user is already gone are deleted.
ALTER TABLE outbox ADD COLUMN user_id INTEGER REFERENCES users (id) ON DELETE CASCADE;
UPDATE outbox SET user_id = json_extract(payload, '$.user_id')
    WHERE kind = 'welcome_email'
      AND EXISTS (SELECT 1 FROM users WHERE users.id = json_extract(outbox.payload, '$.user_id'));
DELETE FROM outbox WHERE kind = 'welcome_email' AND user_id IS NULL;
CREATE INDEX outbox_user_id_idx ON outbox (user_id);
-- Sent jobs are deleted after smtp.keep_sent_days.
CREATE INDEX outbox_status_updated_idx ON outbox (status, updated_at);
