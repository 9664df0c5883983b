-- What each remote's upstream last answered about a repository's tag or digest, shared by
-- every instance and kept across restarts: `found` is 1 when the upstream had it (a tag
-- checked then: served without asking again until its remote's `revalidateafter` has
-- passed), 0 when it answered 404 (not asked again until its remote's `negativettl` has
-- passed). Rows past their window are useless and purged by the `cache-answers` job.
CREATE TABLE cache_upstream_answers (
    repository   TEXT NOT NULL,
    reference    TEXT NOT NULL,
    found        BIGINT NOT NULL CHECK (found IN (0, 1)),
    answered_at  BIGINT NOT NULL,
    PRIMARY KEY (repository, reference)
);
CREATE INDEX cache_upstream_answers_by_age ON cache_upstream_answers (answered_at);
