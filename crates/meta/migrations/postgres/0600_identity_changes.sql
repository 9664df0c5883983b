-- The identity change counter: see migrations/sqlite/0600_identity_changes.sql. Here the
-- triggers fire once per statement.
CREATE TABLE identity_changes (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  BIGINT NOT NULL
);
INSERT INTO identity_changes (id, generation) VALUES (1, 0);

CREATE FUNCTION berth_identity_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE identity_changes SET generation = generation + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION berth_identity_changed();
CREATE TRIGGER teams_changed AFTER INSERT OR UPDATE OR DELETE ON teams
    FOR EACH STATEMENT EXECUTE FUNCTION berth_identity_changed();
CREATE TRIGGER team_members_changed AFTER INSERT OR UPDATE OR DELETE ON team_members
    FOR EACH STATEMENT EXECUTE FUNCTION berth_identity_changed();
CREATE TRIGGER service_accounts_changed AFTER INSERT OR UPDATE OR DELETE ON service_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION berth_identity_changed();
-- New tokens grant nothing their owner may not do, and `last_used_at` moves on every use:
-- only revocations and deletions count.
CREATE TRIGGER access_tokens_changed AFTER UPDATE OF revoked_at OR DELETE ON access_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION berth_identity_changed();
CREATE TRIGGER policy_rules_changed AFTER INSERT OR UPDATE OR DELETE ON policy_rules
    FOR EACH STATEMENT EXECUTE FUNCTION berth_identity_changed();
