-- Passkeys (WebAuthn credentials) and their ceremonies (issue 12).
--
-- Each user who registers a passkey gets a WebAuthn user handle: 16 random bytes (a UUID,
-- as text), which the authenticator keeps with a discoverable credential and returns at a
-- passwordless sign-in. It is never the user name, so a credential of a deleted user
-- cannot sign in a later user of the same name.
CREATE TABLE passkey_users (
    user_id     INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    handle      TEXT NOT NULL UNIQUE
);

-- A user's passkeys. `credential_id` is the authenticator's id for it (base64url), unique
-- across users; `credential` is the verified credential as webauthn-rs serialises it (public
-- key, algorithm, signature counter, backup state); `counter` and `backup_state` repeat what
-- the last use reported, for people to read. Times are Unix milliseconds.
CREATE TABLE passkeys (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential_id   TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    credential      TEXT NOT NULL,
    counter         INTEGER NOT NULL DEFAULT 0,
    backup_state    INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER
);
CREATE INDEX passkeys_by_user ON passkeys(user_id);

-- A ceremony in progress: the challenge sent to the browser and what webauthn-rs needs to
-- check the answer, kept here (never in the browser) and used once. `id` is the SHA-256 of
-- the secret in the browser's cookie; `user_id` is NULL for a passwordless sign-in (the
-- passkey names its user); `purpose` is 'register', 'authenticate' (a second factor) or
-- 'discover' (a passwordless sign-in).
CREATE TABLE passkey_challenges (
    id          TEXT PRIMARY KEY,
    user_id     INTEGER REFERENCES users(id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX passkey_challenges_by_expiry ON passkey_challenges(expires_at);
