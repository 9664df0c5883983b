-- Passkeys: the same model as migrations/sqlite/1050_passkeys.sql.
CREATE TABLE passkey_users (
    user_id     BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    handle      TEXT COLLATE "C" NOT NULL UNIQUE
);

CREATE TABLE passkeys (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential_id   TEXT COLLATE "C" NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    credential      TEXT NOT NULL,
    counter         BIGINT NOT NULL DEFAULT 0,
    backup_state    BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT
);
CREATE INDEX passkeys_by_user ON passkeys(user_id);

CREATE TABLE passkey_challenges (
    id          TEXT COLLATE "C" PRIMARY KEY,
    user_id     BIGINT REFERENCES users(id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX passkey_challenges_by_expiry ON passkey_challenges(expires_at);
