//! Teams and their members.

use berth_meta::MetaError;

use super::validate::{found, not_found, valid_name};
use super::{Actor, AdminError, AdminResult, Administration, Change, TeamInfo};

fn team_target(name: &str) -> String {
    format!("team:{name}")
}

impl Administration {
    pub async fn create_team(&self, actor: &Actor, name: &str) -> AdminResult<TeamInfo> {
        self.change(
            actor,
            Change::new(team_target(name), "create team"),
            async {
                let name = valid_name("team", name)?;
                self.store.create_team(name).await.map_err(|e| match e {
                    MetaError::Conflict(_) => AdminError::Conflict(format!("team {name:?} exists")),
                    other => other.into(),
                })?;
                self.team(name).await
            },
        )
        .await
    }

    pub async fn team(&self, name: &str) -> AdminResult<TeamInfo> {
        self.list_teams()
            .await?
            .into_iter()
            .find(|team| team.name == name)
            .ok_or_else(|| not_found("team", name))
    }

    pub async fn list_teams(&self) -> AdminResult<Vec<TeamInfo>> {
        Ok(self
            .store
            .list_teams()
            .await?
            .into_iter()
            .map(|team| TeamInfo {
                name: team.name,
                members: team.members,
            })
            .collect())
    }

    /// Deletes a team with its memberships and the rules naming it (its members stay).
    pub async fn delete_team(&self, actor: &Actor, name: &str) -> AdminResult<()> {
        self.change(
            actor,
            Change::new(team_target(name), "delete team"),
            async { found(self.store.delete_team(name).await?, "team", name) },
        )
        .await
    }

    pub async fn add_team_member(
        &self,
        actor: &Actor,
        team: &str,
        user: &str,
    ) -> AdminResult<TeamInfo> {
        let change = Change::new(team_target(team), format!("add member {user}"));
        self.change(actor, change, async {
            self.team(team).await?;
            self.user(user).await?;
            self.store.add_team_member(team, user).await?;
            self.team(team).await
        })
        .await
    }

    pub async fn remove_team_member(
        &self,
        actor: &Actor,
        team: &str,
        user: &str,
    ) -> AdminResult<TeamInfo> {
        let change = Change::new(team_target(team), format!("remove member {user}"));
        self.change(actor, change, async {
            let info = self.team(team).await?;
            if !info.members.iter().any(|m| m == user) {
                return Err(AdminError::NotFound(format!(
                    "{user:?} is not a member of team {team:?}"
                )));
            }
            self.store.remove_team_member(team, user).await?;
            self.team(team).await
        })
        .await
    }
}
