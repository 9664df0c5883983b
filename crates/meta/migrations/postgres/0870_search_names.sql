-- Repository names (the search entries of ordinal 0) in a text index of their own, so that a
-- search finds the matching names without the tags' matches or a walk over every name: the
-- search reads its window as the matching names, then the matching tags (the PostgreSQL
-- `MATCHES` statement in crates/meta/src/sql_browse.rs). PostgreSQL only: SQLite's FTS5
-- returns matches in the window's order already.
CREATE INDEX search_entries_names ON search_entries USING GIN (document) WHERE ordinal = 0;
