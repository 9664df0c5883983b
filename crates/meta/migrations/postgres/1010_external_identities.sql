-- External identities: the same model as migrations/sqlite/1010_external_identities.sql.
CREATE TABLE external_identities (
    user_id       BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    source        TEXT COLLATE "C" NOT NULL,
    subject       TEXT COLLATE "C" NOT NULL,
    display_name  TEXT,
    synced_at     BIGINT NOT NULL,
    UNIQUE (source, subject)
);
ALTER TABLE team_members ADD COLUMN synced_from TEXT;
