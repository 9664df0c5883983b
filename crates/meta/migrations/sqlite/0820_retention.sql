-- Retention rules (see crates/meta/src/tag_rules.rs): in the repositories matching
-- `repositories`, a tag is kept if any matching rule keeps it, and untagged otherwise.
-- Durations and times are milliseconds; NULL means the criterion is not used.
CREATE TABLE retention_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repositories        TEXT NOT NULL,
    keep_last_pushed    INTEGER,
    keep_last_pulled    INTEGER,
    -- A JSON array of tag globs.
    keep_tags           TEXT NOT NULL,
    keep_pushed_within  INTEGER,
    keep_pulled_within  INTEGER,
    created_at          INTEGER NOT NULL,
    created_by          TEXT NOT NULL
);
