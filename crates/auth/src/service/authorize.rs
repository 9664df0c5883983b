//! Deciding what a [`Caller`] may do: policy rules (cached until a change), narrowed by an
//! access token's limits, or a registry token's grants.

use std::sync::Arc;

use berth_meta::MetaError;

use super::{AccessService, Caller, Decision, Mode};
use crate::pattern::Pattern;
use crate::policy::{self, Grant, Rule, Subject};
use crate::scope::{Action, ActionSet};

impl AccessService {
    /// The policy rules, cached until a change (or for a few seconds).
    pub(super) async fn rules(&self) -> Result<Arc<Vec<Rule>>, MetaError> {
        let epoch = self.caches.epoch();
        if let Some(rules) = self.caches.rules.get(&(), epoch) {
            return Ok(rules);
        }
        let rules: Vec<Rule> = self
            .store
            .list_rules()
            .await?
            .into_iter()
            .filter_map(|rule| {
                Some(Rule {
                    subject: Subject::parse(&rule.subject)?,
                    pattern: Pattern::parse(&rule.pattern).ok()?,
                    grant: Grant::parse(&rule.actions)?,
                })
            })
            .collect();
        let rules = Arc::new(rules);
        self.caches.rules.insert((), Arc::clone(&rules), epoch);
        Ok(rules)
    }

    /// What the caller may do on `repository`: policy, narrowed by the access token's limits.
    pub(super) async fn allowed(
        &self,
        caller: &Caller,
        repository: &str,
    ) -> Result<ActionSet, MetaError> {
        let allowed = match &self.mode {
            Mode::None => ActionSet::ALL,
            Mode::Htpasswd { .. } if caller.principal.is_anonymous() => ActionSet::NONE,
            Mode::Htpasswd { .. } => ActionSet::ALL,
            Mode::Berth(_) => policy::allowed(&caller.principal, repository, &self.rules().await?),
        };
        Ok(caller.within_limits(repository, allowed))
    }

    /// What the caller may do on `repository`, without recording a decision (for pages
    /// that show or hide actions; taking one still goes through [`AccessService::authorize`]).
    pub async fn permissions(
        &self,
        caller: &Caller,
        repository: &str,
    ) -> Result<ActionSet, MetaError> {
        match caller.granted(repository) {
            Some(granted) => Ok(granted.intersect(self.allowed(caller, repository).await?)),
            None => self.allowed(caller, repository).await,
        }
    }

    /// May the caller take `action` on `repository`? Every answer goes to the audit log.
    pub async fn authorize(
        &self,
        caller: &Caller,
        repository: &str,
        action: Action,
    ) -> Result<Decision, MetaError> {
        if matches!(self.mode, Mode::None) {
            return Ok(Decision::Allowed);
        }
        let decision = match caller.granted(repository) {
            // A registry token decides by itself when it covers the request.
            Some(granted) if granted.contains(action) => Decision::Allowed,
            Some(_) if self.allowed(caller, repository).await?.contains(action) => {
                Decision::ScopeMissing
            }
            _ if caller.granted.is_none()
                && self.allowed(caller, repository).await?.contains(action) =>
            {
                Decision::Allowed
            }
            _ if caller.principal.is_anonymous() => Decision::LoginRequired,
            _ => Decision::Forbidden,
        };
        self.audit(caller, action.as_str(), repository, decision.outcome(), "");
        Ok(decision)
    }

    /// A predicate telling which repositories the caller may pull, for finding a blob to
    /// mount: what the rules allow, narrowed by an access token's limits, and for a registry
    /// token also by its grants (a token for one repository mounts from nowhere else).
    pub async fn pull_filter(
        &self,
        caller: &Caller,
    ) -> Result<impl Fn(&str) -> bool + Send + Sync + use<>, MetaError> {
        let everything = match &self.mode {
            Mode::None => true,
            Mode::Htpasswd { .. } => !caller.principal.is_anonymous(),
            Mode::Berth(_) => false,
        };
        let rules = match self.mode {
            Mode::Berth(_) => self.rules().await?,
            _ => Arc::new(Vec::new()),
        };
        let caller = caller.clone();
        Ok(move |repository: &str| {
            let granted = caller
                .granted(repository)
                .is_none_or(|granted| granted.contains(Action::Pull));
            granted
                && (everything
                    || caller
                        .within_limits(
                            repository,
                            policy::allowed(&caller.principal, repository, &rules),
                        )
                        .contains(Action::Pull))
        })
    }

    /// A predicate telling which repositories the caller sees in the catalog: those it may
    /// pull. `None` for a registry token without the catalog scope (`registry:catalog:*`):
    /// a token grants exactly its access claim.
    pub async fn catalog_filter(
        &self,
        caller: &Caller,
    ) -> Result<Option<impl Fn(&str) -> bool + Send + Sync + use<>>, MetaError> {
        if caller.catalog_granted() == Some(false) {
            return Ok(None);
        }
        // The catalog scope names no repository: what the holder may pull decides.
        let holder = Caller {
            granted: None,
            ..caller.clone()
        };
        Ok(Some(self.pull_filter(&holder).await?))
    }
}
