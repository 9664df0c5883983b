-- OpenID Connect sign-ins under way (issue 12): between the redirect to the provider and its
-- callback. `id` is the SHA-256 of the browser's cookie; a request is used once and lives ten
-- minutes. `state`, `nonce` and the PKCE `verifier` stay on the server.
CREATE TABLE sso_requests (
    id          TEXT PRIMARY KEY,
    provider    TEXT NOT NULL,
    state       TEXT NOT NULL,
    nonce       TEXT NOT NULL,
    verifier    TEXT NOT NULL,
    next        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
