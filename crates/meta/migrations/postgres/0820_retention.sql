-- Retention rules (see crates/meta/src/tag_rules.rs): in the repositories matching
-- `repositories`, a tag is kept if any matching rule keeps it, and untagged otherwise.
-- Durations and times are milliseconds; NULL means the criterion is not used.
CREATE TABLE retention_rules (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repositories        TEXT NOT NULL,
    keep_last_pushed    BIGINT,
    keep_last_pulled    BIGINT,
    -- A JSON array of tag globs.
    keep_tags           TEXT NOT NULL,
    keep_pushed_within  BIGINT,
    keep_pulled_within  BIGINT,
    created_at          BIGINT NOT NULL,
    created_by          TEXT NOT NULL
);
