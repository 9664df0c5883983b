//! Service accounts: identities for machines, which log in with access tokens only.

use berth_meta::MetaError;

use super::validate::{MAX_DESCRIPTION_LENGTH, found, not_found, valid_name, valid_text};
use super::{Actor, AdminError, AdminResult, Administration, Change, ServiceAccountInfo};

fn account_target(name: &str) -> String {
    format!("service-account:{name}")
}

impl Administration {
    pub async fn create_service_account(
        &self,
        actor: &Actor,
        name: &str,
        description: &str,
    ) -> AdminResult<ServiceAccountInfo> {
        let change = Change::new(account_target(name), "create service account");
        self.change(actor, change, async {
            let name = valid_name("service account", name)?;
            let description = valid_text("description", description, MAX_DESCRIPTION_LENGTH)?;
            self.store
                .create_service_account(name, description)
                .await
                .map_err(|e| match e {
                    MetaError::Conflict(_) => {
                        AdminError::Conflict(format!("service account {name:?} exists"))
                    }
                    other => other.into(),
                })?;
            self.service_account(name).await
        })
        .await
    }

    pub async fn service_account(&self, name: &str) -> AdminResult<ServiceAccountInfo> {
        self.store
            .service_account(name)
            .await?
            .map(ServiceAccountInfo::from)
            .ok_or_else(|| not_found("service account", name))
    }

    pub async fn list_service_accounts(&self) -> AdminResult<Vec<ServiceAccountInfo>> {
        Ok(self
            .store
            .list_service_accounts()
            .await?
            .into_iter()
            .map(ServiceAccountInfo::from)
            .collect())
    }

    pub async fn set_service_account_disabled(
        &self,
        actor: &Actor,
        name: &str,
        disabled: bool,
    ) -> AdminResult<ServiceAccountInfo> {
        let operation = if disabled {
            "disable service account"
        } else {
            "enable service account"
        };
        self.change(actor, Change::new(account_target(name), operation), async {
            found(
                self.store
                    .set_service_account_disabled(name, disabled)
                    .await?,
                "service account",
                name,
            )?;
            self.service_account(name).await
        })
        .await
    }

    /// Deletes a service account with its tokens and the rules naming it.
    pub async fn delete_service_account(&self, actor: &Actor, name: &str) -> AdminResult<()> {
        let change = Change::new(account_target(name), "delete service account");
        self.change(actor, change, async {
            found(
                self.store.delete_service_account(name).await?,
                "service account",
                name,
            )
        })
        .await
    }
}
