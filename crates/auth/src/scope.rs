//! Actions, sets of them, and the Docker token protocol's `scope` strings.

use std::fmt;

/// What a request does to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Pull, Action::Push, Action::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Action::Pull => 1,
            Action::Push => 2,
            Action::Delete => 4,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ActionSet(u8);

impl ActionSet {
    pub const NONE: ActionSet = ActionSet(0);
    pub const ALL: ActionSet = ActionSet(7);

    pub fn of(actions: &[Action]) -> ActionSet {
        ActionSet(actions.iter().fold(0, |bits, a| bits | a.bit()))
    }

    /// Parses a comma-separated list such as `pull,push` or `*` (every action). Unknown
    /// action names are ignored: a client asking for more than berth knows gets less.
    pub fn parse_list(list: &str) -> ActionSet {
        let mut set = ActionSet::NONE;
        for name in list.split(',').map(str::trim) {
            match name {
                "*" => set = ActionSet::ALL,
                "pull" => set = set.with(Action::Pull),
                "push" => set = set.with(Action::Push),
                "delete" => set = set.with(Action::Delete),
                _ => {}
            }
        }
        set
    }

    /// With what the actions imply: pushing includes pulling (a client cannot push without
    /// reading back what it pushed), for rules and token limits alike.
    pub fn implied(self) -> ActionSet {
        if self.contains(Action::Push) {
            self.with(Action::Pull)
        } else {
            self
        }
    }

    pub fn with(self, action: Action) -> ActionSet {
        ActionSet(self.0 | action.bit())
    }

    pub fn union(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 | other.0)
    }

    pub fn intersect(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 & other.0)
    }

    pub fn contains(self, action: Action) -> bool {
        self.0 & action.bit() != 0
    }

    pub fn covers(self, other: ActionSet) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn actions(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |a| self.contains(*a))
    }

    /// `pull,push`, the form scope strings and tokens use.
    pub fn to_list(self) -> String {
        self.actions()
            .map(Action::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One resource a token request asks access to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `repository:<name>:<actions>`
    Repository { name: String, actions: ActionSet },
    /// `registry:catalog:*`: listing every repository, which registry:2 asks for on
    /// `/v2/_catalog`.
    Catalog,
}

impl Scope {
    /// Parses one scope. The name may contain `:` only as a host port would, so the type
    /// ends at the first `:` and the actions start after the last. Types berth does not
    /// know (and malformed scopes) are `None`: they are ignored, not errors.
    pub fn parse(text: &str) -> Option<Scope> {
        let (kind, rest) = text.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        // `repository(plugin)` and the like carry a class berth ignores.
        let kind = kind.split('(').next().unwrap_or(kind);
        match (kind, name) {
            ("repository", name) if !name.is_empty() => Some(Scope::Repository {
                name: name.to_string(),
                actions: ActionSet::parse_list(actions),
            }),
            ("registry", "catalog") if actions.split(',').any(|a| a.trim() == "*") => {
                Some(Scope::Catalog)
            }
            _ => None,
        }
    }

    /// The scopes of a token request: every `scope` parameter, each possibly several scopes
    /// separated by spaces (as OAuth2 clients send them).
    pub fn parse_all<'a>(params: impl IntoIterator<Item = &'a str>) -> Vec<Scope> {
        params
            .into_iter()
            .flat_map(|p| p.split(' '))
            .filter(|s| !s.is_empty())
            .filter_map(Scope::parse)
            .collect()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Repository { name, actions } => {
                write!(f, "repository:{name}:{}", actions.to_list())
            }
            Scope::Catalog => f.write_str("registry:catalog:*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_lists() {
        assert_eq!(
            ActionSet::parse_list("pull,push"),
            ActionSet::of(&[Action::Pull, Action::Push])
        );
        assert_eq!(ActionSet::parse_list("*"), ActionSet::ALL);
        assert_eq!(
            ActionSet::parse_list("pull,fly,,"),
            ActionSet::of(&[Action::Pull])
        );
        assert_eq!(ActionSet::parse_list(""), ActionSet::NONE);
        assert_eq!(ActionSet::ALL.to_list(), "pull,push,delete");
        let pull_push = ActionSet::parse_list("push,pull");
        assert!(pull_push.covers(ActionSet::of(&[Action::Pull])));
        assert!(!pull_push.covers(ActionSet::ALL));
        assert_eq!(
            pull_push.intersect(ActionSet::of(&[Action::Pull, Action::Delete])),
            ActionSet::of(&[Action::Pull])
        );
        assert_eq!(ActionSet::parse_list("push").implied(), pull_push);
        assert_eq!(
            ActionSet::parse_list("delete").implied(),
            ActionSet::of(&[Action::Delete])
        );
    }

    #[test]
    fn scopes() {
        assert_eq!(
            Scope::parse("repository:team/app:pull,push"),
            Some(Scope::Repository {
                name: "team/app".into(),
                actions: ActionSet::parse_list("pull,push")
            })
        );
        assert_eq!(
            Scope::parse("repository(plugin):a/b:pull"),
            Some(Scope::Repository {
                name: "a/b".into(),
                actions: ActionSet::parse_list("pull")
            })
        );
        assert_eq!(Scope::parse("registry:catalog:*"), Some(Scope::Catalog));
        for ignored in [
            "",
            "repository",
            "repository::pull",
            "registry:catalog:pull",
            "other:x:y",
            "nonsense",
        ] {
            assert_eq!(Scope::parse(ignored), None, "{ignored:?}");
        }
        let all = Scope::parse_all(["repository:a:pull repository:b:push", "registry:catalog:*"]);
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].to_string(), "repository:b:push");
    }
}
