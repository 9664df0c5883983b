-- See migrations/sqlite/0401_session_second_factor.sql.
ALTER TABLE sessions ADD COLUMN second_factor BIGINT NOT NULL DEFAULT 0;
