-- The search reads the full-text index's matches in the order (ordinal, id) and ranks only the
-- first of them, so that a query matching many entries costs a bounded amount of work. The
-- ordinal is the entry's number in its repository (0: the repository's name; 1, 2, ...: its
-- tags, in the order they were first indexed), so that this order spreads over repositories
-- (every repository's name first, then every repository's first tag, ...) instead of following
-- one repository with thousands of matching tags. Same order as SQLite's ids (see there).
-- Concurrent pushes to one repository may give two tags the same ordinal: only the order is
-- affected, ids stay unique.

ALTER TABLE search_entries ADD COLUMN ordinal BIGINT NOT NULL DEFAULT 0;
UPDATE search_entries s SET ordinal = n.ordinal
FROM (SELECT id, row_number() OVER (PARTITION BY repository_id ORDER BY tag <> '', id) - 1 AS ordinal
      FROM search_entries) AS n
WHERE n.id = s.id AND n.ordinal <> 0;
CREATE INDEX search_entries_in_order ON search_entries(ordinal, id);
CREATE INDEX search_entries_by_repository ON search_entries(repository_id, ordinal);

CREATE OR REPLACE FUNCTION berth_search_tag_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_entries (repository_id, tag, words, ordinal)
    VALUES (NEW.repository_id, NEW.name,
            (SELECT name FROM repositories WHERE id = NEW.repository_id) || ' ' || NEW.name || ' ' ||
            coalesce((SELECT words FROM manifest_details WHERE manifest_id = NEW.manifest_id), ''),
            (SELECT coalesce(max(ordinal), 0) + 1 FROM search_entries
             WHERE repository_id = NEW.repository_id))
    ON CONFLICT (repository_id, tag) DO UPDATE SET words = excluded.words;
    RETURN NULL;
END $$;
