//! "Who can access this repository": for every user, team, service account, and for
//! everyone and every signed-in user, the pull, push and delete rights they have on the
//! repository and the rule that grants each, computed by the same policy function that
//! decides `/v2/` requests. Administrators see everyone and can add a rule here; other
//! viewers see their own rights.

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Redirect};
use berth_auth::admin::{Administration, RuleInfo};
use berth_auth::pattern::Pattern;
use berth_auth::policy::{self, Grant, Principal, Rule, Subject};
use berth_auth::{Action, Mode};
use http::request::Parts;
use maud::{Markup, html};

use crate::WebState;
use crate::errors::PageResult;
use crate::forms::Fields;
use crate::layout::{page, repository_url};
use crate::pages::repository::visible_repository;
use crate::session::{CSRF_FIELD, Viewer};

/// The management layer the pages call, as the CLI and the admin API do.
pub fn administration(state: &WebState) -> Administration {
    Administration::serving(Arc::clone(&state.access))
}

/// The rules as the policy evaluates them, each with what the operator sees.
fn parsed(rules: &[RuleInfo]) -> (Vec<Rule>, Vec<&RuleInfo>) {
    rules
        .iter()
        .filter_map(|info| {
            Some((
                Rule {
                    subject: Subject::parse(&info.subject)?,
                    pattern: Pattern::parse(&info.pattern).ok()?,
                    grant: Grant::parse(&info.actions)?,
                },
                info,
            ))
        })
        .unzip()
}

/// How one action is granted: by being an administrator, by a rule, or not at all.
enum Granted<'a> {
    Administrator,
    Rule(&'a RuleInfo),
    No,
}

/// A row of the table: who, and how each of pull, push and delete is granted.
struct Row<'a> {
    who: String,
    note: Option<&'static str>,
    granted: [Granted<'a>; 3],
}

fn row<'a>(
    who: String,
    note: Option<&'static str>,
    principal: &Principal,
    repository: &str,
    rules: &[Rule],
    infos: &[&'a RuleInfo],
    only: Option<&Subject>,
) -> Row<'a> {
    let granted = Action::ALL.map(|action| {
        if principal.is_admin() {
            return Granted::Administrator;
        }
        policy::granting(principal, repository, rules)
            .filter(|(_, rule)| only.is_none_or(|subject| rule.subject == *subject))
            .find(|(_, rule)| rule.grant.effective().contains(action))
            .map_or(Granted::No, |(i, _)| Granted::Rule(infos[i]))
    });
    Row { who, note, granted }
}

fn cell(granted: &Granted) -> Markup {
    html! {
        @match granted {
            Granted::Administrator => { span.yes { "yes" } " " span.muted { "administrator" } }
            Granted::Rule(rule) => {
                span.yes { "yes" } " "
                span.muted { "rule " (rule.id) ": " code { (rule.subject) " " (rule.pattern) " " (rule.actions) } }
            }
            Granted::No => span.no { "no" },
        }
    }
}

fn table(rows: &[Row]) -> Markup {
    html! {
        div.table-wrap {
            table #access {
                thead { tr {
                    th scope="col" { "Who" }
                    th scope="col" { "Pull" }
                    th scope="col" { "Push" }
                    th scope="col" { "Delete" }
                } }
                tbody {
                    @for r in rows {
                        tr data-subject=(r.who) {
                            th scope="row" { code { (r.who) } @if let Some(note) = r.note { " " span.muted { (note) } } }
                            @for g in &r.granted { td { (cell(g)) } }
                        }
                    }
                }
            }
        }
    }
}

/// GET /r/<name>/-/access
pub async fn access_page(state: &WebState, parts: &Parts, name: &str) -> PageResult {
    let viewer = Viewer::of(state, parts).await?;
    let repository = visible_repository(state, &viewer, name).await?;
    let repo = repository.as_str();
    let title = format!("Access to {repo}");
    if !matches!(state.access.mode(), Mode::Berth(_)) {
        let body = html! {
            h1 { (title) }
            p.notice { "This registry does not run berth's own authentication: "
                "without authentication everyone may do everything; with htpasswd every user in the file may." }
        };
        return Ok(page(&viewer, &title, None, body).into_response());
    }
    let admin = administration(state);
    let infos = admin.list_rules().await?;
    let (rules, infos) = parsed(&infos);
    let mut rows = Vec::new();
    if viewer.is_admin() {
        for user in admin.list_users().await? {
            let principal = Principal::User {
                name: user.name.clone(),
                admin: user.admin,
                teams: user.teams.clone(),
            };
            let note = if user.disabled {
                Some("(disabled)")
            } else {
                None
            };
            rows.push(row(
                format!("user:{}", user.name),
                note,
                &principal,
                repo,
                &rules,
                &infos,
                None,
            ));
        }
        for team in admin.list_teams().await? {
            let subject = Subject::Team(team.name.clone());
            let principal = Principal::User {
                name: String::new(),
                admin: false,
                teams: vec![team.name.clone()],
            };
            rows.push(row(
                subject.to_string(),
                Some("(what the team grants its members)"),
                &principal,
                repo,
                &rules,
                &infos,
                Some(&subject),
            ));
        }
        for account in admin.list_service_accounts().await? {
            let principal = Principal::ServiceAccount {
                name: account.name.clone(),
            };
            let note = if account.disabled {
                Some("(disabled)")
            } else {
                None
            };
            rows.push(row(
                format!("service-account:{}", account.name),
                note,
                &principal,
                repo,
                &rules,
                &infos,
                None,
            ));
        }
    } else if let Some(user) = &viewer.user {
        rows.push(row(
            format!("user:{}", user.name),
            Some("(you)"),
            &viewer.caller.principal,
            repo,
            &rules,
            &infos,
            None,
        ));
    }
    // A user without teams and without rules of their own: what signing in alone gives.
    let signed_in = Principal::User {
        name: String::new(),
        admin: false,
        teams: Vec::new(),
    };
    rows.push(row(
        "authenticated".into(),
        Some("(every signed-in user)"),
        &signed_in,
        repo,
        &rules,
        &infos,
        None,
    ));
    rows.push(row(
        "anonymous".into(),
        Some("(everyone, signed in or not)"),
        &Principal::Anonymous,
        repo,
        &rules,
        &infos,
        None,
    ));
    let csrf = viewer
        .user
        .as_ref()
        .map(|u| u.csrf.as_str())
        .unwrap_or_default();
    let body = html! {
        div.crumbs { a href="/" { "Repositories" } " / " a href=(repository_url(repo)) { (repo) } " /" }
        h1 { (title) }
        p.muted { "Rights add up: push includes pull, admin grants all three. Administrators may do everything everywhere." }
        (table(&rows))
        @if viewer.is_admin() {
            h2 { "Add a rule" }
            form.row method="post" action={ (repository_url(repo)) "/-/access" } {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                label { "Subject" input type="text" name="subject" required placeholder="user:alice, team:devs, authenticated"; }
                label { "Pattern" input type="text" name="pattern" required value=(repo); }
                fieldset {
                    legend { "Actions" }
                    @for action in ["pull", "push", "delete", "admin"] {
                        label { input type="checkbox" name="actions" value=(action) checked[action == "pull"]; " " (action) }
                    }
                }
                button type="submit" { "Add rule" }
            }
        }
    };
    Ok(page(&viewer, &title, None, body).into_response())
}

/// POST /r/<name>/-/access: an administrator adds a rule.
pub async fn add_rule(state: &WebState, parts: &Parts, body: Body, name: &str) -> PageResult {
    let form = Fields::body(body).await?;
    let viewer = Viewer::of(state, parts).await?;
    let repository = visible_repository(state, &viewer, name).await?;
    viewer.check_csrf(&form)?;
    let admin = administration(state);
    let actor = admin
        .authorize(&viewer.caller, &format!("POST {}", parts.uri.path()))
        .await?;
    let actions: Vec<&str> = form.all("actions").collect();
    let subject = form.text("subject").unwrap_or_default();
    let pattern = form.text("pattern").unwrap_or_default();
    admin
        .add_rule(&actor, subject, pattern, &actions.join(","))
        .await?;
    Ok(Redirect::to(&format!("{}/-/access", repository_url(repository.as_str()))).into_response())
}
