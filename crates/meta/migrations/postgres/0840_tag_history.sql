-- Tag history (see crates/meta/src/tag_history.rs): where a tag pointed before it was deleted
-- or moved, written in the transaction that untagged it. Kept for `retention.taghistory`;
-- garbage collection treats the manifests of unexpired entries as reachable, so a tag can be
-- restored. Times are Unix milliseconds.
CREATE TABLE tag_history (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repository_id BIGINT NOT NULL REFERENCES repositories(id),
    tag          TEXT NOT NULL,
    digest       TEXT NOT NULL,
    -- 'deleted' (by a client, the dashboard or retention) or 'moved' (a push took the tag).
    reason       TEXT NOT NULL CHECK (reason IN ('deleted', 'moved')),
    actor        TEXT NOT NULL,
    removed_at   BIGINT NOT NULL
);
CREATE INDEX tag_history_by_tag ON tag_history(repository_id, tag, removed_at);
CREATE INDEX tag_history_by_manifest ON tag_history(repository_id, digest, removed_at);
CREATE INDEX tag_history_by_age ON tag_history(removed_at);
