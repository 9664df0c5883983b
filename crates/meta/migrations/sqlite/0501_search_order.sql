-- The search reads the full-text index's matches in the order of their ids and ranks only the
-- first of them, so that a query matching many entries costs a bounded amount of work. The ids
-- are laid out so that this order spreads over repositories instead of following one
-- repository with thousands of matching tags:
--   id = (ordinal << 40) | repository_id
-- where the ordinal is the entry's number in its repository (0: the repository's name;
-- 1, 2, ...: its tags, in the order they were first indexed). Every repository's name comes
-- first, then every repository's first tag, and so on. (An ordinal stays below 2^23: that many
-- tags created in one repository.)

-- The full-text index is rebuilt once after renumbering instead of following every change
-- through its triggers (ten times faster on 100k repositories); SQLite cannot suspend
-- triggers, so these three are dropped and created again as they were.
DROP TRIGGER search_entries_insert;
DROP TRIGGER search_entries_delete;
DROP TRIGGER search_entries_update;
DROP TRIGGER search_repository_created;
DROP TRIGGER search_tag_created;

CREATE TEMP TABLE search_renumbered AS
    SELECT id AS old,
           ((row_number() OVER (PARTITION BY repository_id ORDER BY tag <> '', id) - 1) << 40)
               | repository_id AS new
    FROM search_entries;
CREATE UNIQUE INDEX temp.search_renumbered_old ON search_renumbered(old);
-- Negated first: a new id may be another entry's old one.
UPDATE search_entries SET id = -id;
UPDATE search_entries SET id = (SELECT new FROM search_renumbered WHERE old = -search_entries.id);
DROP TABLE search_renumbered;
INSERT INTO search_index (search_index) VALUES ('rebuild');

-- A repository's entries by id, for the next ordinal.
CREATE INDEX search_entries_by_repository ON search_entries(repository_id, id);

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
    INSERT INTO search_entries (id, repository_id, tag, words) VALUES (new.id, new.id, '', new.name)
    ON CONFLICT DO NOTHING;
END;
CREATE TRIGGER search_tag_created AFTER INSERT ON tags BEGIN
    INSERT INTO search_entries (id, repository_id, tag, words)
    VALUES ((((SELECT coalesce(max(id), 0) FROM search_entries
               WHERE repository_id = new.repository_id) >> 40) + 1) << 40 | new.repository_id,
            new.repository_id, new.name,
            (SELECT name FROM repositories WHERE id = new.repository_id) || ' ' || new.name || ' ' ||
            coalesce((SELECT words FROM manifest_details WHERE manifest_id = new.manifest_id), ''))
    ON CONFLICT (repository_id, tag) DO UPDATE SET words = excluded.words;
END;
