-- The dashboard's derived data on PostgreSQL; the same model as migrations/sqlite (see there
-- for what each table means). The search index is a tsvector of the entry's words, split on
-- everything that is not a letter or digit (as SQLite's unicode61 tokenizer does), so both
-- engines find the same entries.

CREATE TABLE manifest_details (
    manifest_id  BIGINT PRIMARY KEY REFERENCES manifests(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    platforms    TEXT NOT NULL,
    total_size   BIGINT NOT NULL,
    description  TEXT,
    words        TEXT NOT NULL
);

-- A repository's tags by when they were pushed, for its page sorted by push time.
CREATE INDEX tags_by_push ON tags(repository_id, updated_at);

CREATE TABLE search_entries (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repository_id  BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    tag            TEXT COLLATE "C" NOT NULL,
    words          TEXT NOT NULL,
    document       TSVECTOR GENERATED ALWAYS AS
                       (to_tsvector('simple', regexp_replace(lower(words), '[^[:alnum:]]+', ' ', 'g'))) STORED,
    UNIQUE (repository_id, tag)
);
CREATE INDEX search_entries_document ON search_entries USING GIN (document);

CREATE FUNCTION berth_search_repository_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_entries (repository_id, tag, words) VALUES (NEW.id, '', NEW.name)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER search_repository_created AFTER INSERT ON repositories
    FOR EACH ROW EXECUTE FUNCTION berth_search_repository_created();

CREATE FUNCTION berth_search_tag_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_entries (repository_id, tag, words)
    VALUES (NEW.repository_id, NEW.name,
            (SELECT name FROM repositories WHERE id = NEW.repository_id) || ' ' || NEW.name || ' ' ||
            coalesce((SELECT words FROM manifest_details WHERE manifest_id = NEW.manifest_id), ''))
    ON CONFLICT (repository_id, tag) DO UPDATE SET words = excluded.words;
    RETURN NULL;
END $$;
CREATE TRIGGER search_tag_created AFTER INSERT ON tags
    FOR EACH ROW EXECUTE FUNCTION berth_search_tag_written();
CREATE TRIGGER search_tag_moved AFTER UPDATE OF manifest_id ON tags
    FOR EACH ROW EXECUTE FUNCTION berth_search_tag_written();

CREATE FUNCTION berth_tag_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM search_entries WHERE repository_id = OLD.repository_id AND tag = OLD.name;
    DELETE FROM tag_pulls WHERE repository_id = OLD.repository_id AND tag = OLD.name;
    RETURN NULL;
END $$;

CREATE FUNCTION berth_search_details_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE search_entries SET words = words || ' ' || NEW.words
    WHERE (repository_id, tag) IN
        (SELECT repository_id, name FROM tags WHERE manifest_id = NEW.manifest_id);
    RETURN NULL;
END $$;
CREATE TRIGGER search_details_added AFTER INSERT ON manifest_details
    FOR EACH ROW EXECUTE FUNCTION berth_search_details_added();

INSERT INTO search_entries (repository_id, tag, words) SELECT id, '', name FROM repositories;
INSERT INTO search_entries (repository_id, tag, words)
    SELECT t.repository_id, t.name, r.name || ' ' || t.name FROM tags t
    JOIN repositories r ON r.id = t.repository_id;

CREATE TABLE manifest_pulls (
    manifest_id     BIGINT PRIMARY KEY REFERENCES manifests(id) ON DELETE CASCADE,
    pulls           BIGINT NOT NULL,
    last_pulled_at  BIGINT NOT NULL
);
CREATE TABLE tag_pulls (
    repository_id   BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    tag             TEXT COLLATE "C" NOT NULL,
    pulls           BIGINT NOT NULL,
    last_pulled_at  BIGINT NOT NULL,
    PRIMARY KEY (repository_id, tag)
);
CREATE TRIGGER tag_deleted AFTER DELETE ON tags
    FOR EACH ROW EXECUTE FUNCTION berth_tag_deleted();

CREATE TABLE repository_activity (
    repository_id  BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    day            BIGINT NOT NULL,
    pulls          BIGINT NOT NULL,
    pushes         BIGINT NOT NULL,
    PRIMARY KEY (repository_id, day)
);
CREATE FUNCTION berth_activity_manifest_pushed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO repository_activity (repository_id, day, pulls, pushes)
    VALUES (NEW.repository_id, NEW.created_at / 86400000, 0, 1)
    ON CONFLICT (repository_id, day) DO UPDATE SET pushes = repository_activity.pushes + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER activity_manifest_pushed AFTER INSERT ON manifests
    FOR EACH ROW EXECUTE FUNCTION berth_activity_manifest_pushed();
INSERT INTO repository_activity (repository_id, day, pulls, pushes)
    SELECT repository_id, created_at / 86400000, 0, count(*) FROM manifests
    GROUP BY repository_id, created_at / 86400000;
