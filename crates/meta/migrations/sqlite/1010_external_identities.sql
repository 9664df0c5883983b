-- Users who sign in through a directory (LDAP) or an OpenID provider (issue 12). `source` is
-- `ldap` or `oidc:<provider>`; `subject` is who the source says the user is (the directory's
-- login, the provider's `sub`), so a provider's user keeps its berth account whatever its
-- name claim becomes. A local user has no row here, and no source can take it over.
CREATE TABLE external_identities (
    user_id       INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    source        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    display_name  TEXT,
    synced_at     INTEGER NOT NULL,
    UNIQUE (source, subject)
);
-- Memberships that a source's groups gave (the source's name); NULL: added by an
-- administrator. A sign-in removes only the memberships its source gave and no longer gives.
ALTER TABLE team_members ADD COLUMN synced_from TEXT;
