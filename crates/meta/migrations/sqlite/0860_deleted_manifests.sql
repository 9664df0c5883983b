-- Tagged manifests deleted by digest (skopeo delete, the dashboard's manifest delete): a
-- copy kept with the tag history entries of their tags, so that a restore can store them
-- again; garbage collection keeps what a copy references until the history expires (see
-- crates/meta/src/tag_history.rs). Times are Unix milliseconds.
CREATE TABLE deleted_manifests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repository_id  INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest         TEXT NOT NULL,
    media_type     TEXT NOT NULL,
    size           INTEGER NOT NULL,
    subject        TEXT,
    artifact_type  TEXT,
    annotations    TEXT,
    content        BLOB NOT NULL,
    deleted_at     INTEGER NOT NULL
);
CREATE INDEX deleted_manifests_by_digest ON deleted_manifests(repository_id, digest, deleted_at);
CREATE INDEX deleted_manifests_by_age ON deleted_manifests(deleted_at);

CREATE TABLE deleted_manifest_references (
    deleted_id  INTEGER NOT NULL REFERENCES deleted_manifests(id) ON DELETE CASCADE,
    digest      TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
    PRIMARY KEY (deleted_id, kind, digest)
) WITHOUT ROWID;
CREATE INDEX deleted_manifest_references_by_digest ON deleted_manifest_references(digest);
