-- Retention rules keep tags matching regular expressions too (a JSON array of patterns,
-- validated when the rule is added), beside the globs of `keep_tags`.
ALTER TABLE retention_rules ADD COLUMN keep_tags_regex TEXT NOT NULL DEFAULT '[]';
