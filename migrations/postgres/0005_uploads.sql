-- Uploaded files: the metadata here, the bytes in upload.dir/files/<id>.
--
-- The file is renamed into place before its row commits, and a row is
-- deleted before its file, so a crash leaves at most an orphan file, which
-- start-up removes; never a row pointing at nothing. Rows go with their
-- owner (ON DELETE CASCADE); the application removes the files.
-- seq orders uploads newest first (timestamps are whole seconds).
CREATE TABLE uploads (
    seq          BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT        NOT NULL UNIQUE,
    owner_id     BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    filename     TEXT        NOT NULL,
    content_type TEXT        NOT NULL,
    size         BIGINT      NOT NULL CHECK (size > 0),
    sha256       TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX uploads_owner_seq_idx ON uploads (owner_id, seq);
