//! The behaviour every [`ExternalIdentityStore`](crate::ExternalIdentityStore) shows (run on
//! SQLite and PostgreSQL): a user linked to one subject of one source, memberships a source
//! gave kept apart from an administrator's, and everything going with its user.

use crate::IdentityStore;
use crate::MetaError;
use crate::external_identities::{ExternalIdentity, SsoRequest};

fn identity(source: &str, subject: &str, at: i64) -> ExternalIdentity {
    ExternalIdentity {
        source: source.into(),
        subject: subject.into(),
        display_name: Some("Dee Rectory".into()),
        synced_at: at,
    }
}

pub async fn run_external_identities(store: &dyn IdentityStore) {
    store
        .create_user("dir-user", None, None, false)
        .await
        .unwrap();
    store
        .create_user("other-user", None, None, false)
        .await
        .unwrap();
    assert_eq!(store.external_identity("dir-user").await.unwrap(), None);
    assert!(
        !store
            .link_external_identity("nobody", &identity("ldap", "nobody", 1))
            .await
            .unwrap()
    );
    let linked = identity("ldap", "dir-user", 1);
    assert!(
        store
            .link_external_identity("dir-user", &linked)
            .await
            .unwrap()
    );
    assert_eq!(
        store.external_identity("dir-user").await.unwrap(),
        Some(linked)
    );
    // Refreshing keeps one row; another user cannot stand for the same subject.
    let refreshed = identity("ldap", "dir-user", 2);
    assert!(
        store
            .link_external_identity("dir-user", &refreshed)
            .await
            .unwrap()
    );
    assert_eq!(
        store.external_identity("dir-user").await.unwrap(),
        Some(refreshed)
    );
    assert!(matches!(
        store
            .link_external_identity("other-user", &identity("ldap", "dir-user", 3))
            .await,
        Err(MetaError::Conflict(_))
    ));
    assert_eq!(
        store
            .user_of_external("ldap", "dir-user")
            .await
            .unwrap()
            .as_deref(),
        Some("dir-user")
    );
    assert_eq!(
        store.user_of_external("oidc:x", "dir-user").await.unwrap(),
        None
    );

    assert!(
        store
            .set_user_email("dir-user", Some("d@example.com"))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .user("dir-user")
            .await
            .unwrap()
            .unwrap()
            .email
            .as_deref(),
        Some("d@example.com")
    );
    assert!(!store.set_user_email("nobody", None).await.unwrap());

    // Memberships: the source's are its own; an administrator's are never the source's.
    for team in ["synced-a", "synced-b"] {
        store.create_team(team).await.unwrap();
    }
    assert!(
        store
            .add_synced_member("synced-a", "dir-user", "ldap")
            .await
            .unwrap()
    );
    assert!(
        store
            .add_synced_member("synced-a", "dir-user", "ldap")
            .await
            .unwrap()
    );
    assert!(
        !store
            .add_synced_member("no-team", "dir-user", "ldap")
            .await
            .unwrap()
    );
    assert!(store.add_team_member("synced-b", "dir-user").await.unwrap());
    assert!(
        store
            .add_synced_member("synced-b", "dir-user", "ldap")
            .await
            .unwrap()
    );
    assert_eq!(
        store.synced_teams("dir-user", "ldap").await.unwrap(),
        ["synced-a"]
    );
    assert!(
        store
            .synced_teams("dir-user", "oidc:x")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store
            .remove_synced_member("synced-b", "dir-user", "ldap")
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_synced_member("synced-a", "dir-user", "oidc:x")
            .await
            .unwrap()
    );
    assert!(
        store
            .remove_synced_member("synced-a", "dir-user", "ldap")
            .await
            .unwrap()
    );
    assert_eq!(store.user_teams("dir-user").await.unwrap(), ["synced-b"]);
    // An administrator adding a member the source gave makes the membership theirs.
    assert!(
        store
            .add_synced_member("synced-a", "dir-user", "ldap")
            .await
            .unwrap()
    );
    assert!(store.add_team_member("synced-a", "dir-user").await.unwrap());
    assert!(
        store
            .synced_teams("dir-user", "ldap")
            .await
            .unwrap()
            .is_empty()
    );

    assert!(store.delete_user("dir-user").await.unwrap());
    assert_eq!(
        store.user_of_external("ldap", "dir-user").await.unwrap(),
        None
    );
    store
        .create_user("dir-user", None, None, false)
        .await
        .unwrap();
    assert_eq!(store.external_identity("dir-user").await.unwrap(), None);

    // Sign-ins under way are taken once, and not after they expire.
    let request = |id: &str, expires_at: i64| SsoRequest {
        id: id.into(),
        provider: "keycloak".into(),
        state: "state".into(),
        nonce: "nonce".into(),
        verifier: "verifier".into(),
        next: "/r/team/app".into(),
        created_at: 10,
        expires_at,
    };
    store.create_sso_request(&request("a", 100)).await.unwrap();
    store.create_sso_request(&request("b", 100)).await.unwrap();
    assert_eq!(
        store.take_sso_request("a", 50).await.unwrap(),
        Some(request("a", 100))
    );
    assert_eq!(store.take_sso_request("a", 50).await.unwrap(), None);
    assert_eq!(store.take_sso_request("b", 100).await.unwrap(), None);
    assert_eq!(store.take_sso_request("nope", 50).await.unwrap(), None);
}
