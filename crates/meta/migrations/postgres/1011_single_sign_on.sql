-- OpenID Connect sign-ins under way: the same model as migrations/sqlite/1011_single_sign_on.sql.
CREATE TABLE sso_requests (
    id          TEXT COLLATE "C" PRIMARY KEY,
    provider    TEXT NOT NULL,
    state       TEXT NOT NULL,
    nonce       TEXT NOT NULL,
    verifier    TEXT NOT NULL,
    next        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
