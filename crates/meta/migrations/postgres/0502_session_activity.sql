-- What a user's list of their sessions shows (see migrations/sqlite/0502_session_activity.sql).
ALTER TABLE sessions ADD COLUMN last_seen_at BIGINT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
