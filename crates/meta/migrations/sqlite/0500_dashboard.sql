-- The dashboard's derived data: what each manifest is (for its pages and the search filters),
-- a full-text index over repository names, tags, labels and annotations, and pull and push
-- statistics. Everything here is derived from the registry's tables, the config blobs and the
-- pulls berth served; losing it loses no content. Times are Unix milliseconds.

-- Facts read from a manifest and its config when it is pushed. A manifest is immutable, so
-- its details are written once.
CREATE TABLE manifest_details (
    manifest_id  INTEGER PRIMARY KEY REFERENCES manifests(id) ON DELETE CASCADE,
    -- image, index, signature, sbom, attestation, helm, wasm, artifact
    kind         TEXT NOT NULL,
    -- os/architecture[/variant] of the image, or of every image an index lists, space separated
    platforms    TEXT NOT NULL,
    -- compressed bytes: the manifest, its config and layers (an index: with its children's)
    total_size   INTEGER NOT NULL,
    -- the image's own description (org.opencontainers.image.description)
    description  TEXT,
    -- the values of its labels and annotations, for the search index
    words        TEXT NOT NULL
);

-- What the search finds: one entry per repository (tag '') and one per tag, each with the
-- words it is found by (the repository's name; the tag; its manifest's labels and
-- annotations). Kept up to date by the triggers below, in the transactions that change tags.
-- A repository's tags by when they were pushed, for its page sorted by push time.
CREATE INDEX tags_by_push ON tags(repository_id, updated_at);

CREATE TABLE search_entries (
    id             INTEGER PRIMARY KEY,
    repository_id  INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    tag            TEXT NOT NULL,
    words          TEXT NOT NULL,
    UNIQUE (repository_id, tag)
);

-- unicode61 splits names such as team/app-server:1.2 into team, app, server, 1, 2.
CREATE VIRTUAL TABLE search_index USING fts5(
    words, content = 'search_entries', content_rowid = 'id', tokenize = 'unicode61', prefix = '2 3'
);

CREATE TRIGGER search_entries_insert AFTER INSERT ON search_entries BEGIN
    INSERT INTO search_index (rowid, words) VALUES (new.id, new.words);
END;
CREATE TRIGGER search_entries_delete AFTER DELETE ON search_entries BEGIN
    INSERT INTO search_index (search_index, rowid, words) VALUES ('delete', old.id, old.words);
END;
CREATE TRIGGER search_entries_update AFTER UPDATE ON search_entries BEGIN
    INSERT INTO search_index (search_index, rowid, words) VALUES ('delete', old.id, old.words);
    INSERT INTO search_index (rowid, words) VALUES (new.id, new.words);
END;

CREATE TRIGGER search_repository_created AFTER INSERT ON repositories BEGIN
    INSERT INTO search_entries (repository_id, tag, words) VALUES (new.id, '', new.name)
    ON CONFLICT DO NOTHING;
END;
CREATE TRIGGER search_tag_created AFTER INSERT ON tags BEGIN
    INSERT INTO search_entries (repository_id, tag, words)
    VALUES (new.repository_id, new.name,
            (SELECT name FROM repositories WHERE id = new.repository_id) || ' ' || new.name || ' ' ||
            coalesce((SELECT words FROM manifest_details WHERE manifest_id = new.manifest_id), ''))
    ON CONFLICT (repository_id, tag) DO UPDATE SET words = excluded.words;
END;
CREATE TRIGGER search_tag_moved AFTER UPDATE OF manifest_id ON tags BEGIN
    UPDATE search_entries SET words =
        (SELECT name FROM repositories WHERE id = new.repository_id) || ' ' || new.name || ' ' ||
        coalesce((SELECT words FROM manifest_details WHERE manifest_id = new.manifest_id), '')
    WHERE repository_id = new.repository_id AND tag = new.name;
END;
CREATE TRIGGER search_tag_deleted AFTER DELETE ON tags BEGIN
    DELETE FROM search_entries WHERE repository_id = old.repository_id AND tag = old.name;
END;
CREATE TRIGGER search_details_added AFTER INSERT ON manifest_details BEGIN
    UPDATE search_entries SET words = words || ' ' || new.words
    WHERE (repository_id, tag) IN (SELECT repository_id, name FROM tags WHERE manifest_id = new.manifest_id);
END;

-- What exists already is found by name and tag at once; labels as manifests get details.
INSERT INTO search_entries (repository_id, tag, words) SELECT id, '', name FROM repositories;
INSERT INTO search_entries (repository_id, tag, words)
    SELECT t.repository_id, t.name, r.name || ' ' || t.name FROM tags t
    JOIN repositories r ON r.id = t.repository_id;

-- Pulls served, written in batches (not one write per pull): per manifest, per tag, and per
-- repository and day for the activity chart, which also counts the manifests pushed that day.
CREATE TABLE manifest_pulls (
    manifest_id     INTEGER PRIMARY KEY REFERENCES manifests(id) ON DELETE CASCADE,
    pulls           INTEGER NOT NULL,
    last_pulled_at  INTEGER NOT NULL
);
CREATE TABLE tag_pulls (
    repository_id   INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    tag             TEXT NOT NULL,
    pulls           INTEGER NOT NULL,
    last_pulled_at  INTEGER NOT NULL,
    PRIMARY KEY (repository_id, tag)
) WITHOUT ROWID;
CREATE TRIGGER tag_pulls_forgotten AFTER DELETE ON tags BEGIN
    DELETE FROM tag_pulls WHERE repository_id = old.repository_id AND tag = old.name;
END;
-- `day` counts days since 1970-01-01 (UTC).
CREATE TABLE repository_activity (
    repository_id  INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    day            INTEGER NOT NULL,
    pulls          INTEGER NOT NULL,
    pushes         INTEGER NOT NULL,
    PRIMARY KEY (repository_id, day)
) WITHOUT ROWID;
CREATE TRIGGER activity_manifest_pushed AFTER INSERT ON manifests BEGIN
    INSERT INTO repository_activity (repository_id, day, pulls, pushes)
    VALUES (new.repository_id, new.created_at / 86400000, 0, 1)
    ON CONFLICT (repository_id, day) DO UPDATE SET pushes = pushes + 1;
END;
INSERT INTO repository_activity (repository_id, day, pulls, pushes)
    SELECT repository_id, created_at / 86400000, 0, count(*) FROM manifests
    GROUP BY repository_id, created_at / 86400000;
