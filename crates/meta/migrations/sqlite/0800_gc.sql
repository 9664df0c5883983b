-- Garbage collection. Times are Unix milliseconds.

-- Every garbage collection run that changed something (dry runs change nothing and are not
-- recorded): who asked, which instance ran it, how far it got, and what it freed. A run
-- whose instance died stays 'running' until the next run, which marks it 'interrupted' and
-- finishes its deletions.
CREATE TABLE gc_runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    status       TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'interrupted')),
    trigger      TEXT NOT NULL,
    actor        TEXT NOT NULL,
    holder       TEXT NOT NULL,
    -- The phase and counts so far, while it runs (JSON).
    progress     TEXT,
    -- What it freed, in total and per repository, and the problems it met (JSON).
    report       TEXT,
    error        TEXT
);
CREATE INDEX gc_runs_by_status ON gc_runs(status);

-- Blobs whose deletion garbage collection began. A row appears in the transaction that
-- removes the blob's records ('marked': invisible to clients, its bytes still stored, a push
-- of the same digest cancels the deletion), moves to 'deleting' when the bytes are about to
-- be deleted (a push of the digest now waits), then stays as 'deleted' for some days: a push
-- that relied on bytes it saw before the deletion can tell that they are gone. `kind`:
-- 'unreferenced' (a recorded blob no manifest references) or 'orphan' (bytes found in
-- storage without any record: a crash between storage and database).
CREATE TABLE blob_deletions (
    digest      TEXT PRIMARY KEY,
    run_id      INTEGER NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('marked', 'deleting', 'deleted')),
    size        INTEGER NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('unreferenced', 'orphan')),
    -- The content id of a content-addressed store (IPFS), to unpin it.
    cid         TEXT,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX blob_deletions_by_state ON blob_deletions(state, updated_at);

-- Manifests are found by what they reference (reachability), and untagged ones by age.
CREATE INDEX manifests_by_repository_age ON manifests(repository_id, created_at);
