-- The registry's metadata on PostgreSQL; the same model as migrations/sqlite (see there for
-- what each table means). Names are ordered bytewise (COLLATE "C") so that listings page in
-- the same lexical order on every engine. Times are Unix milliseconds.

CREATE TABLE repositories (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE blobs (
    digest      TEXT PRIMARY KEY,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE repository_blobs (
    repository_id  BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest         TEXT NOT NULL REFERENCES blobs(digest),
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repository_blobs_by_digest ON repository_blobs(digest);

CREATE TABLE manifests (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repository_id  BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest         TEXT NOT NULL,
    media_type     TEXT NOT NULL,
    size           BIGINT NOT NULL,
    subject        TEXT,
    artifact_type  TEXT,
    annotations    TEXT,
    created_at     BIGINT NOT NULL,
    content        BYTEA NOT NULL,
    UNIQUE (repository_id, digest)
);
CREATE INDEX manifests_by_subject ON manifests(repository_id, subject) WHERE subject IS NOT NULL;

CREATE TABLE manifest_references (
    manifest_id  BIGINT NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
    digest       TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
    PRIMARY KEY (manifest_id, kind, digest)
);
CREATE INDEX manifest_references_by_digest ON manifest_references(digest);

CREATE TABLE tags (
    repository_id  BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    name           TEXT COLLATE "C" NOT NULL,
    manifest_id    BIGINT NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (repository_id, name)
);
CREATE INDEX tags_by_manifest ON tags(manifest_id);

CREATE TABLE uploads (
    id          TEXT PRIMARY KEY,
    repository  TEXT NOT NULL,
    size        BIGINT NOT NULL,
    hash_state  BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX uploads_by_update ON uploads(updated_at);
