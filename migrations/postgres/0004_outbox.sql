-- Work to do after a transaction commits (welcome emails), written in the
-- same transaction as the change that causes it: a rolled-back registration
-- leaves no job, and a committed one cannot lose its job.
--
-- Workers claim due jobs with FOR UPDATE SKIP LOCKED and a lease
-- (locked_until, lock_token); a job whose worker died is claimed again once
-- its lease expires, so delivery is at least once. After max_attempts
-- failures the job is 'dead' and stays, with its last error, for an operator
-- to see.
CREATE TABLE outbox (
    id              BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            TEXT        NOT NULL,
    payload         TEXT        NOT NULL,
    status          TEXT        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    locked_until    TIMESTAMPTZ,
    lock_token      TEXT,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX outbox_due_idx ON outbox (status, next_attempt_at);
