-- Substring search over usernames and emails.
--
-- An FTS5 table with the trigram tokenizer indexes every three-character
-- sequence of both columns, case-insensitively, so "contains" queries of
-- three or more characters are answered from the index instead of scanning
-- every user. It stores no copy of the text (content='users'); triggers keep
-- it in step with the users table.
CREATE VIRTUAL TABLE users_search USING fts5(
    username, email,
    content = 'users', content_rowid = 'id',
    tokenize = 'trigram'
);

INSERT INTO users_search (rowid, username, email) SELECT id, username, email FROM users;

CREATE TRIGGER users_search_insert AFTER INSERT ON users BEGIN
    INSERT INTO users_search (rowid, username, email) VALUES (new.id, new.username, new.email);
END;

CREATE TRIGGER users_search_delete AFTER DELETE ON users BEGIN
    INSERT INTO users_search (users_search, rowid, username, email)
    VALUES ('delete', old.id, old.username, old.email);
END;

CREATE TRIGGER users_search_update AFTER UPDATE OF username, email ON users BEGIN
    INSERT INTO users_search (users_search, rowid, username, email)
    VALUES ('delete', old.id, old.username, old.email);
    INSERT INTO users_search (rowid, username, email) VALUES (new.id, new.username, new.email);
END;
