-- Identities and access: berth's own users, teams, service accounts, access and refresh
-- tokens, policy rules, the audit log, and the key registry tokens are signed with (kept
-- here so that every instance signs with the same one). Times are Unix milliseconds.

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    email          TEXT,
    -- argon2id (berth's own) or bcrypt (imported from htpasswd); NULL: no password login.
    password_hash  TEXT,
    admin          BOOLEAN NOT NULL DEFAULT FALSE,
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

CREATE TABLE teams (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE team_members (
    team_id  INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, user_id)
) WITHOUT ROWID;
CREATE INDEX team_members_by_user ON team_members(user_id);

CREATE TABLE service_accounts (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL DEFAULT '',
    disabled     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   INTEGER NOT NULL
);

-- Tokens belong to a user or to a service account. Only the SHA-256 of the secret is kept.
-- `scopes` is a JSON list of {"pattern","actions"} limiting what the token may do (empty:
-- whatever its owner may do).
CREATE TABLE access_tokens (
    id                  TEXT PRIMARY KEY,
    kind                TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    user_id             INTEGER REFERENCES users(id) ON DELETE CASCADE,
    service_account_id  INTEGER REFERENCES service_accounts(id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    secret_hash         TEXT NOT NULL,
    scopes              TEXT NOT NULL,
    expires_at          INTEGER,
    created_at          INTEGER NOT NULL,
    last_used_at        INTEGER,
    revoked_at          INTEGER,
    CHECK ((user_id IS NULL) <> (service_account_id IS NULL))
) WITHOUT ROWID;
CREATE INDEX access_tokens_by_user ON access_tokens(user_id);
CREATE INDEX access_tokens_by_service_account ON access_tokens(service_account_id);

-- `subject` is user:<name>, team:<name>, service-account:<name>, anonymous or
-- authenticated; `actions` is a list such as pull,push or admin.
CREATE TABLE policy_rules (
    id          INTEGER PRIMARY KEY,
    subject     TEXT NOT NULL,
    pattern     TEXT NOT NULL,
    actions     TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Authentication and authorization decisions. Identical decisions close together are
-- stored once with a count.
CREATE TABLE audit_events (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    client   TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    detail   TEXT NOT NULL,
    count    INTEGER NOT NULL
);
CREATE INDEX audit_events_by_time ON audit_events(at);

CREATE TABLE signing_keys (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    key_pem          TEXT NOT NULL,
    certificate_pem  TEXT NOT NULL,
    created_at       INTEGER NOT NULL
);
