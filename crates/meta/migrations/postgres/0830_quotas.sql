-- Quotas (see crates/meta/src/quotas.rs): a byte limit on the repositories matching
-- `repositories` (a namespace `acme` is `acme/**`), counting each blob once however many of
-- those repositories hold it. `used_bytes` is kept by the transactions that link and unlink
-- blobs, never recomputed by scanning (except by `berth usage --recompute`, a repair).
CREATE TABLE quotas (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repositories TEXT NOT NULL UNIQUE,
    limit_bytes  BIGINT NOT NULL CHECK (limit_bytes >= 0),
    used_bytes   BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL
);

-- The blobs a quota counts: one row per quota and digest while any repository the quota
-- covers holds the blob. `used_bytes` is the sum of `size` over a quota's rows.
CREATE TABLE quota_blobs (
    quota_id BIGINT NOT NULL REFERENCES quotas(id) ON DELETE CASCADE,
    digest   TEXT NOT NULL,
    size     BIGINT NOT NULL,
    PRIMARY KEY (quota_id, digest)
);
CREATE INDEX quota_blobs_by_digest ON quota_blobs(digest);
