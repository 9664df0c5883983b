-- Remote and virtual repositories made through the admin API or the dashboard (those of the
-- configuration file are not here). `definition` is the JSON of the configuration's keys
-- for it (`remotes.<name>` or `virtuals.<name>`), upstream password included: berth needs
-- it to sign in upstream, and no API or page returns it.
CREATE TABLE cache_definitions (
    kind        TEXT NOT NULL CHECK (kind IN ('remote', 'virtual')),
    name        TEXT NOT NULL,
    definition  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (kind, name)
);
