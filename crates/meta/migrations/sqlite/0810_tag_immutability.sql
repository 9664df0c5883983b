-- Tag immutability rules (see crates/meta/src/tag_rules.rs): a tag whose repository matches
-- `repositories` and whose name matches `tags` is never moved or deleted. Times are Unix
-- milliseconds.
CREATE TABLE immutable_tag_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repositories TEXT NOT NULL,
    tags         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    UNIQUE (repositories, tags)
);
