-- Password reset links: the same model as migrations/sqlite/1001_password_resets.sql.
CREATE TABLE password_resets (
    id          TEXT COLLATE "C" PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX password_resets_by_user ON password_resets(user_id);
