-- Password reset links sent by email (issue 12): `id` is the SHA-256 of the token in the link;
-- a link works once (`used_at`) until `expires_at`. Times are Unix milliseconds.
CREATE TABLE password_resets (
    id          TEXT PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) WITHOUT ROWID;
CREATE INDEX password_resets_by_user ON password_resets(user_id);
