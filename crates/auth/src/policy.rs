//! Who may do what, where: a pure function of the identity, the repository and the rules.
//!
//! A rule grants actions on the repositories its pattern matches to a subject: one user,
//! every member of a team, one service account, everyone (`anonymous`, which includes
//! those who logged in) or everyone who logged in (`authenticated`). Grants only add up;
//! there are no denials. Administrators may do everything. `admin` of a repository grants
//! pull, push and delete there; `push` includes `pull`, since a client cannot push without
//! reading back what it pushed.

use std::fmt;

use crate::pattern::Pattern;
use crate::scope::{Action, ActionSet};

/// Who a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    User(String),
    Team(String),
    ServiceAccount(String),
    /// Everyone, logged in or not.
    Anonymous,
    /// Everyone who logged in.
    Authenticated,
}

impl Subject {
    /// `user:alice`, `team:devs`, `service-account:ci`, `anonymous`, `authenticated`.
    pub fn parse(text: &str) -> Option<Subject> {
        match text.split_once(':') {
            Some(("user", name)) if !name.is_empty() => Some(Subject::User(name.to_string())),
            Some(("team", name)) if !name.is_empty() => Some(Subject::Team(name.to_string())),
            Some(("service-account", name)) if !name.is_empty() => {
                Some(Subject::ServiceAccount(name.to_string()))
            }
            None if text == "anonymous" => Some(Subject::Anonymous),
            None if text == "authenticated" => Some(Subject::Authenticated),
            _ => None,
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::User(name) => write!(f, "user:{name}"),
            Subject::Team(name) => write!(f, "team:{name}"),
            Subject::ServiceAccount(name) => write!(f, "service-account:{name}"),
            Subject::Anonymous => f.write_str("anonymous"),
            Subject::Authenticated => f.write_str("authenticated"),
        }
    }
}

/// What a rule grants: actions, or administration of the matching repositories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Grant {
    pub actions: ActionSet,
    pub admin: bool,
}

impl Grant {
    /// Parses `pull,push`, `delete`, `admin`, `*` (everything).
    pub fn parse(list: &str) -> Option<Grant> {
        let mut grant = Grant {
            actions: ActionSet::NONE,
            admin: false,
        };
        for name in list.split(',').map(str::trim) {
            match name {
                "admin" | "*" => grant.admin = true,
                "pull" => grant.actions = grant.actions.with(Action::Pull),
                "push" => grant.actions = grant.actions.with(Action::Push),
                "delete" => grant.actions = grant.actions.with(Action::Delete),
                _ => return None,
            }
        }
        (grant.admin || !grant.actions.is_empty()).then_some(grant)
    }

    /// The actions this grant allows, implications included.
    pub fn effective(self) -> ActionSet {
        if self.admin {
            return ActionSet::ALL;
        }
        self.actions.implied()
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.admin {
            f.write_str("admin")
        } else {
            f.write_str(&self.actions.to_list())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub subject: Subject,
    pub pattern: Pattern,
    pub grant: Grant,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    User {
        name: String,
        admin: bool,
        teams: Vec<String>,
    },
    ServiceAccount {
        name: String,
    },
}

impl Principal {
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Principal::Anonymous)
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::User { admin: true, .. })
    }

    /// How the principal appears in tokens (`sub`) and the audit log: `user:alice`,
    /// `service-account:ci`, or empty for anonymous.
    pub fn subject_name(&self) -> String {
        match self {
            Principal::Anonymous => String::new(),
            Principal::User { name, .. } => format!("user:{name}"),
            Principal::ServiceAccount { name } => format!("service-account:{name}"),
        }
    }

    fn is(&self, subject: &Subject) -> bool {
        match (subject, self) {
            (Subject::Anonymous, _) => true,
            (Subject::Authenticated, principal) => !principal.is_anonymous(),
            (Subject::User(name), Principal::User { name: own, .. }) => name == own,
            (Subject::Team(team), Principal::User { teams, .. }) => teams.contains(team),
            (Subject::ServiceAccount(name), Principal::ServiceAccount { name: own }) => name == own,
            _ => false,
        }
    }
}

/// The actions `principal` may take on `repository` under `rules`.
pub fn allowed(principal: &Principal, repository: &str, rules: &[Rule]) -> ActionSet {
    if principal.is_admin() {
        return ActionSet::ALL;
    }
    rules
        .iter()
        .filter(|rule| principal.is(&rule.subject) && rule.pattern.matches(repository))
        .fold(ActionSet::NONE, |set, rule| {
            set.union(rule.grant.effective())
        })
}

/// The rules that grant `principal` something on `repository`, with their positions in
/// `rules` (to show who may do what, and why).
pub fn granting<'a>(
    principal: &'a Principal,
    repository: &'a str,
    rules: &'a [Rule],
) -> impl Iterator<Item = (usize, &'a Rule)> + 'a {
    rules
        .iter()
        .enumerate()
        .filter(move |(_, rule)| principal.is(&rule.subject) && rule.pattern.matches(repository))
}

/// Whether `principal` may take `action` on `repository` under `rules`.
pub fn can(principal: &Principal, repository: &str, action: Action, rules: &[Rule]) -> bool {
    allowed(principal, repository, rules).contains(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(subject: &str, pattern: &str, grant: &str) -> Rule {
        Rule {
            subject: Subject::parse(subject).unwrap(),
            pattern: Pattern::parse(pattern).unwrap(),
            grant: Grant::parse(grant).unwrap(),
        }
    }

    fn user(name: &str, teams: &[&str]) -> Principal {
        Principal::User {
            name: name.into(),
            admin: false,
            teams: teams.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn rules() -> Vec<Rule> {
        vec![
            rule("team:team-a", "team-a/**", "pull,push"),
            rule("user:carol", "team-a/api", "delete"),
            rule("service-account:ci", "team-a/**", "push"),
            rule("service-account:deployer", "*/release-*", "pull"),
            rule("anonymous", "*/public-*", "pull"),
            rule("authenticated", "library/*", "pull"),
            rule("user:dana", "ops/**", "admin"),
        ]
    }

    /// The decision table: (principal, repository) -> the actions allowed.
    #[test]
    fn decision_matrix() {
        let rules = rules();
        let alice = user("alice", &["team-a"]);
        let bob = user("bob", &[]);
        let carol = user("carol", &["team-a"]);
        let dana = user("dana", &[]);
        let admin = Principal::User {
            name: "root".into(),
            admin: true,
            teams: vec![],
        };
        let ci = Principal::ServiceAccount { name: "ci".into() };
        let deployer = Principal::ServiceAccount {
            name: "deployer".into(),
        };
        let anonymous = Principal::Anonymous;

        let cases: Vec<(&Principal, &str, &str)> = vec![
            (&alice, "team-a/api", "pull,push"),
            (&alice, "team-a/x/y", "pull,push"),
            (&alice, "team-b/api", ""),
            (&alice, "library/alpine", "pull"),
            (&alice, "x/public-web", "pull"),
            (&carol, "team-a/api", "pull,push,delete"),
            (&carol, "team-a/web", "pull,push"),
            (&bob, "team-a/api", ""),
            (&bob, "library/alpine", "pull"),
            (&bob, "library/a/b", ""),
            (&dana, "ops/tools", "pull,push,delete"),
            (&dana, "team-a/api", ""),
            (&admin, "anything/at/all", "pull,push,delete"),
            (&ci, "team-a/api", "pull,push"),
            (&ci, "library/alpine", "pull"),
            (&deployer, "team-a/release-1", "pull"),
            (&deployer, "team-a/api", ""),
            (&anonymous, "x/public-web", "pull"),
            (&anonymous, "library/alpine", ""),
            (&anonymous, "team-a/api", ""),
        ];
        for (principal, repository, expected) in cases {
            assert_eq!(
                allowed(principal, repository, &rules).to_list(),
                expected,
                "{principal:?} on {repository}"
            );
        }
        assert!(can(&carol, "team-a/api", Action::Delete, &rules));
        assert!(!can(&alice, "team-a/api", Action::Delete, &rules));
    }

    #[test]
    fn no_rules_no_access_except_for_admins() {
        assert!(allowed(&user("alice", &[]), "a", &[]).is_empty());
        assert!(allowed(&Principal::Anonymous, "a", &[]).is_empty());
    }

    #[test]
    fn parsing_subjects_and_grants() {
        assert_eq!(
            Subject::parse("user:alice"),
            Some(Subject::User("alice".into()))
        );
        assert_eq!(
            Subject::parse("service-account:ci"),
            Some(Subject::ServiceAccount("ci".into()))
        );
        assert_eq!(
            Subject::parse("authenticated"),
            Some(Subject::Authenticated)
        );
        for bad in ["user:", "group:x", "", "everyone"] {
            assert_eq!(Subject::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            Grant::parse("push").unwrap().effective().to_list(),
            "pull,push"
        );
        assert_eq!(Grant::parse("admin").unwrap().effective(), ActionSet::ALL);
        assert_eq!(
            Grant::parse("delete").unwrap().effective().to_list(),
            "delete"
        );
        assert!(Grant::parse("fly").is_none());
        assert!(Grant::parse("").is_none());
        assert_eq!(
            Subject::parse("team:devs").unwrap().to_string(),
            "team:devs"
        );
    }
}
