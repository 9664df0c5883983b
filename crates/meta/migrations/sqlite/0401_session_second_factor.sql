-- Whether a session's sign-in included a second factor, so that `auth.berth.requiremfa`
-- ends the sessions it newly covers (a user promoted to administrator, the setting raised)
-- instead of letting them run to their expiry. Sessions from before this migration count as
-- without one: a covered user signs in once more.
ALTER TABLE sessions ADD COLUMN second_factor INTEGER NOT NULL DEFAULT 0;
