//! `berth user|team|service-account|token|policy|htpasswd|audit ...`: managing identities and
//! access from the command line, straight against the database the configuration names.
//!
//! Every command goes through [`Administration`], the same write path as the admin API and
//! the dashboard, acting as the operator at the command line (`cli:<login name>` in the audit
//! log): it validates, records the change in the audit log and moves the database's identity
//! change counter, which running servers follow (within `CHANGE_POLL`, a second). Lists
//! print a table, or JSON with `--json`.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use berth_auth::admin::{Actor, AdminError, Administration, NewToken, NewUser, parse_owner};
use berth_auth::secret::random_token;
use clap::Subcommand;

use crate::management::{CommandError, Output, StoreArgs, run_management, table, value};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user. Without --password-stdin or --no-password, a random password is
    /// generated and printed once.
    Add {
        name: String,
        /// May do everything, including managing users and policy.
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        email: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long, conflicts_with = "no_password")]
        password_stdin: bool,
        /// No password: the user logs in with access tokens only.
        #[arg(long)]
        no_password: bool,
    },
    /// List users.
    List,
    /// Set a user's password (random and printed once, unless --password-stdin).
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user: their logins and tokens stop working.
    Disable { name: String },
    /// Enable a disabled user.
    Enable { name: String },
    /// Make a user an administrator.
    Promote { name: String },
    /// Take a user's administrator rights away.
    Demote { name: String },
    /// Delete a user, their team memberships and their tokens.
    Delete { name: String },
    /// Reset a user's second factors (a lost authenticator or passkey): their authenticator,
    /// recovery codes and passkeys are removed.
    ResetSecondFactors { name: String },
}

#[derive(Subcommand)]
pub enum TeamCommand {
    /// Create a team.
    Add { name: String },
    /// List teams and their members.
    List,
    /// Delete a team (its members stay).
    Delete { name: String },
    /// Add a user to a team.
    AddMember { team: String, user: String },
    /// Remove a user from a team.
    RemoveMember { team: String, user: String },
}

#[derive(Subcommand)]
pub enum ServiceAccountCommand {
    /// Create a service account (no password: give it access tokens with `berth token create`).
    Add {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List service accounts.
    List,
    /// Disable a service account: its tokens stop working.
    Disable { name: String },
    /// Enable a disabled service account.
    Enable { name: String },
    /// Delete a service account and its tokens.
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an access token, used as a password (`podman login -u OWNER-NAME -p TOKEN`).
    /// The token is printed once.
    Create {
        /// user:NAME or service-account:NAME (a bare NAME is a user).
        owner: String,
        /// What the token is for, to recognise it in listings.
        #[arg(long)]
        name: String,
        /// Limit the token to PATTERN:ACTIONS (e.g. 'team/**:pull,push'); repeatable. Without
        /// any, the token may do whatever its owner may.
        #[arg(long = "scope", value_name = "PATTERN:ACTIONS")]
        scopes: Vec<String>,
        /// Lifetime such as 90d or 720h; without it, the token lives until revoked.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens (never their secrets).
    List {
        /// Only this owner's: user:NAME or service-account:NAME.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Revoke a token by id.
    Revoke { id: String },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Grant ACTIONS on repositories matching PATTERN to SUBJECT.
    Add {
        /// user:NAME, team:NAME, service-account:NAME, anonymous (everyone) or authenticated.
        subject: String,
        /// A glob over repository names: `team-a/**`, `*/public-*`, `library/*`.
        pattern: String,
        /// pull, push, delete (comma-separated), or admin.
        actions: String,
    },
    /// List rules.
    List,
    /// Remove a rule by id.
    Remove { id: i64 },
}

#[derive(Subcommand)]
pub enum HtpasswdCommand {
    /// Create users from an htpasswd file (bcrypt entries, `htpasswd -B`), keeping their
    /// passwords. Existing users are skipped unless --replace-passwords.
    Import {
        file: PathBuf,
        #[arg(long)]
        replace_passwords: bool,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Show the newest authentication and authorization decisions.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only events older than this event id (to page back).
        #[arg(long)]
        before: Option<i64>,
    },
    /// Delete events older than a duration (e.g. 2160h); `serve` also does this daily
    /// according to auth.berth.auditretention.
    Prune {
        #[arg(long)]
        older_than: String,
    },
}

pub enum Command {
    User(UserCommand),
    Team(TeamCommand),
    ServiceAccount(ServiceAccountCommand),
    Token(TokenCommand),
    Policy(PolicyCommand),
    Htpasswd(HtpasswdCommand),
    Audit(AuditCommand),
}

fn yes(flag: bool) -> String {
    if flag { "yes".into() } else { "".into() }
}

fn read_password_line() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        eprint!("password: ");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the password from standard input: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// The password to set: read from stdin, or generated (and then printed by the caller).
fn password(from_stdin: bool) -> Result<(String, bool), String> {
    if from_stdin {
        Ok((read_password_line()?, false))
    } else {
        Ok((random_token(16), true))
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

pub fn run(command: Command, store: StoreArgs) -> ExitCode {
    run_management(store, |context| async move {
        execute(command, &context.admin, &context.actor).await
    })
}

async fn execute(
    command: Command,
    admin: &Administration,
    actor: &Actor,
) -> Result<Output, CommandError> {
    Ok(match command {
        Command::User(command) => user(command, admin, actor).await?,
        Command::Team(command) => team(command, admin, actor).await?,
        Command::ServiceAccount(command) => service_account(command, admin, actor).await?,
        Command::Token(command) => token(command, admin, actor).await?,
        Command::Policy(command) => policy(command, admin, actor).await?,
        Command::Htpasswd(HtpasswdCommand::Import {
            file,
            replace_passwords,
        }) => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("reading {}: {e}", file.display()))?;
            let report = admin
                .import_htpasswd(actor, &text, replace_passwords)
                .await?;
            let mut text = format!(
                "created {} users, updated {}, skipped {} existing\n",
                report.created.len(),
                report.updated.len(),
                report.skipped.len()
            );
            for refused in &report.refused {
                text.push_str(&format!("refused: {refused}\n"));
            }
            value(&report, text)
        }
        Command::Audit(AuditCommand::List { limit, before }) => {
            let entries = admin.audit(limit, before).await?;
            let rows = entries
                .iter()
                .map(|e| {
                    vec![
                        e.id.to_string(),
                        e.at.clone(),
                        e.actor.clone(),
                        e.action.clone(),
                        e.target.clone(),
                        e.client.clone(),
                        e.outcome.clone(),
                        e.count.to_string(),
                        e.detail.clone(),
                    ]
                })
                .collect();
            let text = table(
                &[
                    "ID", "AT", "ACTOR", "ACTION", "TARGET", "CLIENT", "OUTCOME", "COUNT", "DETAIL",
                ],
                rows,
            );
            value(&entries, text)
        }
        Command::Audit(AuditCommand::Prune { older_than }) => {
            let pruned = admin
                .prune_audit(actor, parse_duration(&older_than)?)
                .await?;
            Output::Message(format!("deleted {pruned} audit events"))
        }
    })
}

async fn user(
    command: UserCommand,
    admin: &Administration,
    actor: &Actor,
) -> Result<Output, CommandError> {
    Ok(match command {
        UserCommand::Add {
            name,
            admin: is_admin,
            email,
            password_stdin,
            no_password,
        } => {
            let (password, generated) = if no_password {
                (None, false)
            } else {
                let (password, generated) = password(password_stdin)?;
                (Some(password), generated)
            };
            let created = admin
                .create_user(
                    actor,
                    NewUser {
                        name,
                        password: password.clone(),
                        email,
                        admin: is_admin,
                    },
                )
                .await?;
            let mut text = format!("created user {}\n", created.name);
            let mut json = serde_json::to_value(&created).expect("admin views serialise");
            if let (true, Some(password)) = (generated, password) {
                text.push_str(&format!("password (shown only now): {password}\n"));
                json["password"] = password.into();
            }
            Output::Value { json, text }
        }
        UserCommand::List => {
            let users = admin.list_users().await?;
            let rows = users
                .iter()
                .map(|u| {
                    vec![
                        u.name.clone(),
                        yes(u.admin),
                        yes(u.disabled),
                        u.email.clone().unwrap_or_default(),
                        u.teams.join(","),
                        u.created_at.clone(),
                    ]
                })
                .collect();
            let text = table(
                &["NAME", "ADMIN", "DISABLED", "EMAIL", "TEAMS", "CREATED"],
                rows,
            );
            value(&users, text)
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let (password, generated) = password(password_stdin)?;
            admin.set_password(actor, &name, &password).await?;
            if generated {
                Output::Value {
                    json: serde_json::json!({ "name": name, "password": password }),
                    text: format!("new password for {name} (shown only now): {password}\n"),
                }
            } else {
                Output::Message(format!("password of {name} changed"))
            }
        }
        UserCommand::ResetSecondFactors { name } => {
            admin.reset_second_factors(actor, &name).await?;
            Output::Message(format!("second factors of user {name} reset"))
        }
        UserCommand::Disable { name } => {
            admin.set_user_disabled(actor, &name, true).await?;
            Output::Message(format!("user {name} disabled"))
        }
        UserCommand::Enable { name } => {
            admin.set_user_disabled(actor, &name, false).await?;
            Output::Message(format!("user {name} enabled"))
        }
        UserCommand::Promote { name } => {
            admin.set_user_admin(actor, &name, true).await?;
            Output::Message(format!("user {name} is an administrator"))
        }
        UserCommand::Demote { name } => {
            admin.set_user_admin(actor, &name, false).await?;
            Output::Message(format!("user {name} is no longer an administrator"))
        }
        UserCommand::Delete { name } => {
            admin.delete_user(actor, &name).await?;
            Output::Message(format!("user {name} deleted"))
        }
    })
}

fn team_text(team: &berth_auth::admin::TeamInfo) -> String {
    format!("team {}: {}\n", team.name, team.members.join(", "))
}

async fn team(
    command: TeamCommand,
    admin: &Administration,
    actor: &Actor,
) -> Result<Output, CommandError> {
    Ok(match command {
        TeamCommand::Add { name } => {
            let team = admin.create_team(actor, &name).await?;
            value(&team, format!("created team {}\n", team.name))
        }
        TeamCommand::List => {
            let teams = admin.list_teams().await?;
            let rows = teams
                .iter()
                .map(|t| vec![t.name.clone(), t.members.join(",")])
                .collect();
            let text = table(&["NAME", "MEMBERS"], rows);
            value(&teams, text)
        }
        TeamCommand::Delete { name } => {
            admin.delete_team(actor, &name).await?;
            Output::Message(format!("team {name} deleted"))
        }
        TeamCommand::AddMember { team, user } => {
            let team = admin.add_team_member(actor, &team, &user).await?;
            value(&team, team_text(&team))
        }
        TeamCommand::RemoveMember { team, user } => {
            let team = admin.remove_team_member(actor, &team, &user).await?;
            value(&team, team_text(&team))
        }
    })
}

async fn service_account(
    command: ServiceAccountCommand,
    admin: &Administration,
    actor: &Actor,
) -> Result<Output, CommandError> {
    Ok(match command {
        ServiceAccountCommand::Add { name, description } => {
            let account = admin
                .create_service_account(actor, &name, &description)
                .await?;
            value(
                &account,
                format!(
                    "created service account {0}; give it a token with: berth token create service-account:{0} --name NAME\n",
                    account.name
                ),
            )
        }
        ServiceAccountCommand::List => {
            let accounts = admin.list_service_accounts().await?;
            let rows = accounts
                .iter()
                .map(|a| {
                    vec![
                        a.name.clone(),
                        yes(a.disabled),
                        a.created_at.clone(),
                        a.description.clone(),
                    ]
                })
                .collect();
            let text = table(&["NAME", "DISABLED", "CREATED", "DESCRIPTION"], rows);
            value(&accounts, text)
        }
        ServiceAccountCommand::Disable { name } => {
            admin
                .set_service_account_disabled(actor, &name, true)
                .await?;
            Output::Message(format!("service account {name} disabled"))
        }
        ServiceAccountCommand::Enable { name } => {
            admin
                .set_service_account_disabled(actor, &name, false)
                .await?;
            Output::Message(format!("service account {name} enabled"))
        }
        ServiceAccountCommand::Delete { name } => {
            admin.delete_service_account(actor, &name).await?;
            Output::Message(format!("service account {name} deleted"))
        }
    })
}

/// `user:NAME`, `service-account:NAME`, or a bare user name.
fn owner(text: &str) -> Result<berth_meta::identity::TokenOwner, AdminError> {
    if text.contains(':') {
        parse_owner(text)
    } else {
        parse_owner(&format!("user:{text}"))
    }
}

/// `PATTERN:ACTIONS`, split at the last colon (patterns have none).
fn scope(text: &str) -> Result<(String, String), String> {
    text.rsplit_once(':')
        .map(|(pattern, actions)| (pattern.to_string(), actions.to_string()))
        .ok_or_else(|| format!("invalid scope {text:?}: expected PATTERN:ACTIONS"))
}

async fn token(
    command: TokenCommand,
    admin: &Administration,
    actor: &Actor,
) -> Result<Output, CommandError> {
    Ok(match command {
        TokenCommand::Create {
            owner: owner_text,
            name,
            scopes,
            expires,
        } => {
            let owner = owner(&owner_text)?;
            let scopes = scopes
                .iter()
                .map(|s| scope(s))
                .collect::<Result<Vec<_>, _>>()?;
            let expires_in = expires.as_deref().map(parse_duration).transpose()?;
            let created = admin
                .create_token(
                    actor,
                    NewToken {
                        owner,
                        name,
                        scopes,
                        expires_in,
                    },
                )
                .await?;
            let login_name = created
                .info
                .owner
                .split_once(':')
                .map_or("", |(_, name)| name);
            let text = format!(
                "created token {} for {} (shown only now):\n\n    {}\n\nuse it as the password: podman login -u {login_name} --password-stdin REGISTRY\n",
                created.info.id, created.info.owner, created.secret
            );
            value(&created, text)
        }
        TokenCommand::List { owner: filter } => {
            let filter = filter.as_deref().map(owner).transpose()?;
            let tokens = admin.list_tokens(filter.as_ref()).await?;
            let rows = tokens
                .iter()
                .map(|t| {
                    let state = if t.revoked_at.is_some() {
                        "revoked".to_string()
                    } else {
                        t.expires_at
                            .clone()
                            .map_or("no expiry".into(), |at| format!("expires {at}"))
                    };
                    vec![
                        t.id.clone(),
                        t.kind.to_string(),
                        t.owner.clone(),
                        t.name.clone(),
                        t.scopes
                            .iter()
                            .map(|s| format!("{}:{}", s.pattern, s.actions))
                            .collect::<Vec<_>>()
                            .join(" "),
                        state,
                        t.last_used_at.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            let text = table(
                &[
                    "ID",
                    "KIND",
                    "OWNER",
                    "NAME",
                    "SCOPES",
                    "STATE",
                    "LAST USED",
                ],
                rows,
            );
            value(&tokens, text)
        }
        TokenCommand::Revoke { id } => {
            let token = admin.revoke_token(actor, &id).await?;
            value(&token, format!("token {id} revoked\n"))
        }
    })
}

async fn policy(
    command: PolicyCommand,
    admin: &Administration,
    actor: &Actor,
) -> Result<Output, CommandError> {
    Ok(match command {
        PolicyCommand::Add {
            subject,
            pattern,
            actions,
        } => {
            let rule = admin.add_rule(actor, &subject, &pattern, &actions).await?;
            value(
                &rule,
                format!(
                    "rule {}: {} may {} on {}\n",
                    rule.id, rule.subject, rule.actions, rule.pattern
                ),
            )
        }
        PolicyCommand::List => {
            let rules = admin.list_rules().await?;
            let rows = rules
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.subject.clone(),
                        r.pattern.clone(),
                        r.actions.clone(),
                        r.created_at.clone(),
                    ]
                })
                .collect();
            let text = table(&["ID", "SUBJECT", "PATTERN", "ACTIONS", "CREATED"], rows);
            value(&rules, text)
        }
        PolicyCommand::Remove { id } => {
            admin.remove_rule(actor, id).await?;
            Output::Message(format!("rule {id} removed"))
        }
    })
}
