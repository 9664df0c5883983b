//! Policy rules: a subject that exists, a valid pattern, a valid grant.

use super::validate::{found, valid_actions, valid_pattern};
use super::{Actor, AdminError, AdminResult, Administration, Change, RuleInfo};
use crate::policy::Subject;

impl Administration {
    pub async fn add_rule(
        &self,
        actor: &Actor,
        subject: &str,
        pattern: &str,
        actions: &str,
    ) -> AdminResult<RuleInfo> {
        let change = Change::new(
            "policy",
            format!("add rule: {subject} may {actions} on {pattern}"),
        );
        self.change(actor, change, async {
            let parsed = Subject::parse(subject).ok_or_else(|| {
                AdminError::Invalid(format!(
                    "invalid subject {subject:?}: expected user:<name>, team:<name>, service-account:<name>, anonymous or authenticated"
                ))
            })?;
            match &parsed {
                Subject::User(name) => {
                    self.user(name).await?;
                }
                Subject::Team(name) => {
                    self.team(name).await?;
                }
                Subject::ServiceAccount(name) => {
                    self.service_account(name).await?;
                }
                Subject::Anonymous | Subject::Authenticated => {}
            }
            let pattern = valid_pattern(pattern)?;
            let actions = valid_actions(actions)?;
            let id = self
                .store
                .add_rule(&parsed.to_string(), &pattern, &actions)
                .await?;
            self.list_rules()
                .await?
                .into_iter()
                .find(|rule| rule.id == id)
                .ok_or_else(|| AdminError::NotFound(format!("rule {id} vanished")))
        })
        .await
    }

    pub async fn list_rules(&self) -> AdminResult<Vec<RuleInfo>> {
        Ok(self
            .store
            .list_rules()
            .await?
            .into_iter()
            .map(RuleInfo::from)
            .collect())
    }

    pub async fn remove_rule(&self, actor: &Actor, id: i64) -> AdminResult<()> {
        self.change(
            actor,
            Change::new("policy", format!("remove rule {id}")),
            async { found(self.store.remove_rule(id).await?, "rule", &id.to_string()) },
        )
        .await
    }
}
