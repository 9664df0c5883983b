-- Second factors: the same model as migrations/sqlite/1000_second_factors.sql.
CREATE TABLE totp_factors (
    user_id         BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret          TEXT,
    confirmed_at    BIGINT,
    last_step       BIGINT NOT NULL DEFAULT 0,
    pending_secret  TEXT,
    pending_at      BIGINT
);

CREATE TABLE recovery_codes (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX recovery_codes_by_user ON recovery_codes(user_id);

CREATE TABLE sign_in_challenges (
    id          TEXT COLLATE "C" PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL,
    method      TEXT NOT NULL,
    client      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sign_in_challenges_by_expiry ON sign_in_challenges(expires_at);
