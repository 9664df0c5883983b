-- Second factors and the step between the password and a session (issue 12).
--
-- A TOTP authenticator (RFC 6238) per user: `secret` (base32) is the confirmed one, NULL until
-- the first enrolment is confirmed; `pending_secret` is one being enrolled (replacing the
-- confirmed one only when a first code from it is given). `last_step` is the newest time step
-- whose code was accepted: a code of that step or an earlier one is refused (RFC 6238 5.2:
-- each code is accepted once). The secret must be readable to check codes, so it is stored
-- as is. Times are Unix milliseconds.
CREATE TABLE totp_factors (
    user_id         INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret          TEXT,
    confirmed_at    INTEGER,
    last_step       INTEGER NOT NULL DEFAULT 0,
    pending_secret  TEXT,
    pending_at      INTEGER
);

-- One-time recovery codes, stored as argon2 hashes; `used_at` is set once, when one is used.
CREATE TABLE recovery_codes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash   TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX recovery_codes_by_user ON recovery_codes(user_id);

-- A sign-in halfway: the first factor (password or access token) was right, and the second
-- (`purpose` 'code') or an enrolment ('enrol') is still to come. `id` is the SHA-256 of the
-- secret in the browser's cookie.
CREATE TABLE sign_in_challenges (
    id          TEXT PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL,
    method      TEXT NOT NULL,
    client      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sign_in_challenges_by_expiry ON sign_in_challenges(expires_at);
