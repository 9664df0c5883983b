-- The text indexes take each new entry at once instead of in a pending list: with GIN's
-- default `fastupdate`, entries wait in a list of up to 4 MB that every search scans until a
-- vacuum merges it, so a search after a burst of pushes took milliseconds longer (a narrow one
-- 0.1 -> 7 ms with 17,000 entries pending). A push pays for its one document instead.
-- PostgreSQL only: SQLite's FTS5 has no such list.
ALTER INDEX search_entries_document SET (fastupdate = off);
ALTER INDEX search_entries_names SET (fastupdate = off);
SELECT gin_clean_pending_list('search_entries_document'::regclass);
SELECT gin_clean_pending_list('search_entries_names'::regclass);
