-- Garbage collection; the same model as migrations/sqlite/0800_gc.sql (see there for what
-- each table means). Times are Unix milliseconds.

CREATE TABLE gc_runs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    status       TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'interrupted')),
    trigger      TEXT NOT NULL,
    actor        TEXT NOT NULL,
    holder       TEXT NOT NULL,
    progress     TEXT,
    report       TEXT,
    error        TEXT
);
CREATE INDEX gc_runs_by_status ON gc_runs(status);

CREATE TABLE blob_deletions (
    digest      TEXT PRIMARY KEY,
    run_id      BIGINT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('marked', 'deleting', 'deleted')),
    size        BIGINT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('unreferenced', 'orphan')),
    -- The content id of a content-addressed store (IPFS), to unpin it.
    cid         TEXT,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX blob_deletions_by_state ON blob_deletions(state, updated_at);

CREATE INDEX manifests_by_repository_age ON manifests(repository_id, created_at);
