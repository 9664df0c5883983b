-- What a user's list of their sessions shows: when each was last used (written at most once a
-- minute per session, not on every request) and the browser it was begun from.
ALTER TABLE sessions ADD COLUMN last_seen_at INTEGER;
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
