//! Users whose identity comes from elsewhere: what an LDAP directory or an OpenID provider
//! says about a user at sign-in ([`ExternalUser`]), and how its groups become berth teams
//! and the administrator flag ([`GroupMapping`]). Free of I/O; `Administration::provision`
//! applies it.

use std::collections::{BTreeMap, BTreeSet};

/// A user as its source vouches for it at a sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalUser {
    /// `ldap` or `oidc:<provider>`.
    pub source: String,
    /// The source's identifier of the user (the directory's login, the provider's `sub`):
    /// the berth account stays the same while it does.
    pub subject: String,
    /// The berth user name the source asks for (checked like any user name).
    pub login: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    /// The names of the user's groups at the source.
    pub groups: Vec<String>,
}

/// How a source's groups become berth teams and the administrator flag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupMapping {
    /// Group name to team name; the team is created when missing.
    pub teams: BTreeMap<String, String>,
    /// A group named like an existing team gives that team.
    pub by_name: bool,
    /// Members of this group are administrators, others are not; `None`: the source does
    /// not decide (administrators promote and demote by hand).
    pub admin_group: Option<String>,
}

impl GroupMapping {
    /// The teams `groups` give, given the teams that exist: `(teams, of which missing)`.
    pub fn teams_for(
        &self,
        groups: &[String],
        existing: &BTreeSet<String>,
    ) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut teams = BTreeSet::new();
        let mut missing = BTreeSet::new();
        for group in groups {
            if let Some(team) = self.teams.get(group) {
                teams.insert(team.clone());
                if !existing.contains(team) {
                    missing.insert(team.clone());
                }
            } else if self.by_name && existing.contains(group) {
                teams.insert(group.clone());
            }
        }
        (teams, missing)
    }

    /// Whether `groups` make an administrator, if the source decides.
    pub fn admin(&self, groups: &[String]) -> Option<bool> {
        self.admin_group
            .as_ref()
            .map(|admin| groups.iter().any(|g| g == admin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn groups_give_mapped_teams_and_existing_teams_by_name() {
        let mapping = GroupMapping {
            teams: [("cn-devs".to_string(), "developers".to_string())].into(),
            by_name: true,
            admin_group: Some("registry-admins".into()),
        };
        let existing: BTreeSet<String> = ["ops".to_string()].into();
        let (teams, missing) =
            mapping.teams_for(&names(&["cn-devs", "ops", "marketing"]), &existing);
        assert_eq!(teams, ["developers".to_string(), "ops".to_string()].into());
        assert_eq!(missing, ["developers".to_string()].into());
        assert_eq!(mapping.admin(&names(&["registry-admins"])), Some(true));
        assert_eq!(mapping.admin(&names(&["ops"])), Some(false));
        let without = GroupMapping::default();
        assert_eq!(without.admin(&names(&["registry-admins"])), None);
        assert!(without.teams_for(&names(&["ops"]), &existing).0.is_empty());
    }
}
