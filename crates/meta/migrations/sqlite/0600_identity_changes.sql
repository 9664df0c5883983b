-- The identity change counter. Every change that can alter what someone may do (users,
-- teams, memberships, service accounts, token revocations and deletions, policy rules)
-- bumps it in the same transaction, through the triggers below, whoever makes the change:
-- a server, another instance, `berth user ...` at the command line, or plain SQL. Every
-- berth instance polls it and empties its access caches when it moves.
CREATE TABLE identity_changes (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  INTEGER NOT NULL
);
INSERT INTO identity_changes (id, generation) VALUES (1, 0);

CREATE TRIGGER users_inserted AFTER INSERT ON users
BEGIN UPDATE identity_changes SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER users_updated AFTER UPDATE ON users
BEGIN UPDATE identity_changes SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER users_deleted AFTER DELETE ON users
BEGIN UPDATE identity_changes SET generation = generation + 1 WHERE id = 1; END;

CREATE TRIGGER teams_inserted AFTER INSERT ON teams
BEGIN UPDATE identity_changes SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER teams_deleted AFTER DELETE ON teams
BEGIN UPDATE identity_changes SET generation = generation + 1 WHERE id = 1; END;

CREATE TRIGGER team_members_inserted AFTER INSERT ON team_members
BEGIN UPDATE identity_changes SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER team_members_deleted AFTER DELETE ON team_members
BEGIN UPDATE identity_changes SET generation = generation + 1 WHERE id = 1; END;

CREATE TRIGGER service_accounts_inserted AFTER INSERT ON service_accounts
BEGIN UPDATE identity_changes SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER service_accounts_updated AFTER UPDATE ON service_accounts
BEGIN UPDATE identity_changes SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER service_accounts_deleted AFTER DELETE ON service_accounts
BEGIN UPDATE identity_changes SET generation = generation + 1 WHERE id = 1; END;

-- New tokens grant nothing their owner may not do, and `last_used_at` moves on every use:
-- only revocations and deletions count.
CREATE TRIGGER access_tokens_revoked AFTER UPDATE OF revoked_at ON access_tokens
BEGIN UPDATE identity_changes SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER access_tokens_deleted AFTER DELETE ON access_tokens
BEGIN UPDATE identity_changes SET generation = generation + 1 WHERE id = 1; END;

CREATE TRIGGER policy_rules_inserted AFTER INSERT ON policy_rules
BEGIN UPDATE identity_changes SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER policy_rules_updated AFTER UPDATE ON policy_rules
BEGIN UPDATE identity_changes SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER policy_rules_deleted AFTER DELETE ON policy_rules
BEGIN UPDATE identity_changes SET generation = generation + 1 WHERE id = 1; END;
