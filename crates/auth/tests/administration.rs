//! Managing identities through the administration layer, over a real SQLite identity store.

use std::sync::Arc;
use std::time::Duration;

use berth_auth::admin::{Actor, AdminError, Administration, NewToken, NewUser, parse_owner};
use berth_auth::{AccessService, Action, Decision, Mode};
use berth_meta::SqliteStore;
use berth_meta::identity::{IdentityStore, TokenOwner};

async fn admin() -> (tempfile::TempDir, Arc<SqliteStore>, Administration) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("berth.db"))
            .await
            .unwrap(),
    );
    let admin = Administration::new(store.clone());
    (dir, store, admin)
}

/// The operator these tests act as.
fn op() -> Actor {
    Actor::Cli {
        login: "tester".into(),
    }
}

fn user(name: &str, password: Option<&str>, admin: bool) -> NewUser {
    NewUser {
        name: name.into(),
        password: password.map(Into::into),
        email: None,
        admin,
    }
}

#[tokio::test]
async fn users_are_validated_hashed_and_protected() {
    let (_dir, store, admin) = admin().await;
    for bad in [
        "",
        "has space",
        "a:b",
        "../x",
        "-dash",
        &"x".repeat(65),
        "é",
    ] {
        assert!(
            matches!(
                admin
                    .create_user(&op(), user(bad, Some("long enough"), false))
                    .await,
                Err(AdminError::Invalid(_))
            ),
            "{bad:?} accepted"
        );
    }
    assert!(matches!(
        admin
            .create_user(&op(), user("alice", Some("short"), false))
            .await,
        Err(AdminError::Invalid(_))
    ));
    let mut with_email = user("alice", Some("alice password"), false);
    with_email.email = Some("not an email".into());
    assert!(matches!(
        admin.create_user(&op(), with_email.clone()).await,
        Err(AdminError::Invalid(_))
    ));
    with_email.email = Some("alice@example.com".into());
    let alice = admin.create_user(&op(), with_email).await.unwrap();
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
    assert!(alice.has_password && !alice.admin && !alice.disabled);
    let stored = store.user("alice").await.unwrap().unwrap();
    assert!(stored.password_hash.unwrap().starts_with("$argon2id$"));
    assert!(matches!(
        admin.create_user(&op(), user("alice", None, false)).await,
        Err(AdminError::Conflict(_))
    ));

    // The last enabled administrator stays.
    admin
        .create_user(&op(), user("root", Some("root password"), true))
        .await
        .unwrap();
    for result in [
        admin.delete_user(&op(), "root").await.map(|_| ()),
        admin
            .set_user_disabled(&op(), "root", true)
            .await
            .map(|_| ()),
        admin.set_user_admin(&op(), "root", false).await.map(|_| ()),
    ] {
        assert!(matches!(result, Err(AdminError::Conflict(_))), "{result:?}");
    }
    admin.set_user_admin(&op(), "alice", true).await.unwrap();
    admin.set_user_disabled(&op(), "root", true).await.unwrap();
    assert!(matches!(
        admin.delete_user(&op(), "alice").await,
        Err(AdminError::Conflict(_))
    ));
    admin.set_user_disabled(&op(), "root", false).await.unwrap();
    admin.delete_user(&op(), "alice").await.unwrap();
    assert!(matches!(
        admin.delete_user(&op(), "alice").await,
        Err(AdminError::NotFound(_))
    ));
    assert!(matches!(
        admin.set_password(&op(), "nobody", "long enough").await,
        Err(AdminError::NotFound(_))
    ));
    assert_eq!(admin.list_users().await.unwrap().len(), 1);
}

#[tokio::test]
async fn teams_service_accounts_and_rules_refer_to_what_exists() {
    let (_dir, _store, admin) = admin().await;
    admin
        .create_user(&op(), user("alice", Some("alice password"), false))
        .await
        .unwrap();
    admin.create_team(&op(), "devs").await.unwrap();
    assert!(matches!(
        admin.create_team(&op(), "devs").await,
        Err(AdminError::Conflict(_))
    ));
    assert!(matches!(
        admin.add_team_member(&op(), "devs", "nobody").await,
        Err(AdminError::NotFound(_))
    ));
    let devs = admin.add_team_member(&op(), "devs", "alice").await.unwrap();
    assert_eq!(devs.members, ["alice"]);
    assert_eq!(admin.user("alice").await.unwrap().teams, ["devs"]);
    assert_eq!(admin.list_users().await.unwrap()[0].teams, ["devs"]);

    admin
        .create_service_account(&op(), "ci", "builds")
        .await
        .unwrap();
    assert!(matches!(
        admin.create_service_account(&op(), "ci", "").await,
        Err(AdminError::Conflict(_))
    ));

    for (subject, pattern, actions) in [
        ("team:nope", "x/*", "pull"),
        ("user:nobody", "x/*", "pull"),
        ("service-account:nope", "x/*", "pull"),
    ] {
        assert!(matches!(
            admin.add_rule(&op(), subject, pattern, actions).await,
            Err(AdminError::NotFound(_))
        ));
    }
    for (subject, pattern, actions) in [
        ("group:devs", "x/*", "pull"),
        ("team:devs", "x/*", "write"),
        ("team:devs", "x/*", ""),
        ("team:devs", "UPPER/*", "pull"),
        ("team:devs", "a//b", "pull"),
    ] {
        assert!(matches!(
            admin.add_rule(&op(), subject, pattern, actions).await,
            Err(AdminError::Invalid(_))
        ));
    }
    let rule = admin
        .add_rule(&op(), "team:devs", "team-a/**", "push, pull")
        .await
        .unwrap();
    assert_eq!(rule.subject, "team:devs");
    assert_eq!(rule.actions, "pull,push");
    admin
        .add_rule(&op(), "anonymous", "*/public-*", "pull")
        .await
        .unwrap();
    assert_eq!(admin.list_rules().await.unwrap().len(), 2);
    admin.remove_rule(&op(), rule.id).await.unwrap();
    assert!(matches!(
        admin.remove_rule(&op(), rule.id).await,
        Err(AdminError::NotFound(_))
    ));
    admin
        .remove_team_member(&op(), "devs", "alice")
        .await
        .unwrap();
    assert!(matches!(
        admin.remove_team_member(&op(), "devs", "alice").await,
        Err(AdminError::NotFound(_))
    ));
    admin.delete_team(&op(), "devs").await.unwrap();
    admin.delete_service_account(&op(), "ci").await.unwrap();
    assert!(admin.list_service_accounts().await.unwrap().is_empty());
}

#[tokio::test]
async fn tokens_are_shown_once_limited_and_revocable() {
    let (_dir, store, admin) = admin().await;
    admin.create_service_account(&op(), "ci", "").await.unwrap();
    admin
        .add_rule(&op(), "service-account:ci", "team/**", "push")
        .await
        .unwrap();
    assert!(matches!(parse_owner("ci"), Err(AdminError::Invalid(_))));
    assert!(matches!(
        admin
            .create_token(
                &op(),
                NewToken {
                    owner: parse_owner("service-account:nope").unwrap(),
                    name: "deploy".into(),
                    scopes: vec![],
                    expires_in: None,
                }
            )
            .await,
        Err(AdminError::NotFound(_))
    ));
    assert!(matches!(
        admin
            .create_token(
                &op(),
                NewToken {
                    owner: TokenOwner::ServiceAccount("ci".into()),
                    name: "deploy".into(),
                    scopes: vec![("team/**".into(), "fly".into())],
                    expires_in: None,
                }
            )
            .await,
        Err(AdminError::Invalid(_))
    ));
    let created = admin
        .create_token(
            &op(),
            NewToken {
                owner: TokenOwner::ServiceAccount("ci".into()),
                name: "deploy".into(),
                scopes: vec![("team/app".into(), "pull".into())],
                expires_in: Some(Duration::from_secs(3600)),
            },
        )
        .await
        .unwrap();
    assert!(created.secret.starts_with("berth_"));
    assert_eq!(created.info.owner, "service-account:ci");
    assert!(created.info.expires_at.is_some());
    let listed = admin.list_tokens(None).await.unwrap();
    assert_eq!(listed, std::slice::from_ref(&created.info));
    // Listing never shows the secret.
    assert!(
        !serde_json::to_string(&listed)
            .unwrap()
            .contains(&created.secret)
    );

    // The token works as the service account, within its limits.
    let berth = berth_auth_service(store.clone());
    let caller = berth
        .login("ci", &created.secret, None)
        .await
        .expect("the token logs in");
    assert_eq!(
        berth
            .authorize(&caller, "team/app", Action::Pull)
            .await
            .unwrap(),
        Decision::Allowed
    );
    assert_eq!(
        berth
            .authorize(&caller, "team/app", Action::Push)
            .await
            .unwrap(),
        Decision::Forbidden,
        "the token's limit is narrower than the account's rule"
    );

    let revoked = admin.revoke_token(&op(), &created.info.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(berth.login("ci", &created.secret, None).await.is_err());
    assert!(matches!(
        admin.revoke_token(&op(), "0000000000000000").await,
        Err(AdminError::NotFound(_))
    ));
}

fn berth_auth_service(store: Arc<SqliteStore>) -> AccessService {
    use berth_auth::registry_token::{RegistryTokens, SigningKey};
    let tokens = RegistryTokens::new(
        SigningKey::generate().unwrap(),
        "berth",
        "registry.test",
        Duration::from_secs(300),
    );
    AccessService::new(
        Mode::Berth(Box::new(berth_auth::TokenService {
            tokens,
            realm: None,
            refresh_lifetime: Duration::from_secs(3600),
        })),
        store,
    )
}

#[tokio::test]
async fn htpasswd_files_become_users_with_their_passwords() {
    let (_dir, store, admin) = admin().await;
    let hash = |password: &str| {
        bcrypt::hash(password, 4)
            .unwrap()
            .replacen("$2b$", "$2y$", 1)
    };
    admin
        .create_user(&op(), user("carol", Some("carol's own"), false))
        .await
        .unwrap();
    let file = format!(
        "# made by htpasswd -B\nalice:{}\nbob:{}\ncarol:{}\nbad name:{}\n",
        hash("alice-pw"),
        hash("bob-pw"),
        hash("carol-from-file"),
        hash("x")
    );
    assert!(matches!(
        admin
            .import_htpasswd(&op(), "alice:$apr1$abc$def\n", false)
            .await,
        Err(AdminError::Invalid(_))
    ));
    let report = admin.import_htpasswd(&op(), &file, false).await.unwrap();
    assert_eq!(report.created, ["alice", "bob"]);
    assert_eq!(report.skipped, ["carol"]);
    assert_eq!(report.refused.len(), 1);
    let berth = berth_auth_service(store.clone());
    assert!(berth.login("alice", "alice-pw", None).await.is_ok());
    assert!(berth.login("carol", "carol's own", None).await.is_ok());
    let again = admin.import_htpasswd(&op(), &file, true).await.unwrap();
    assert_eq!(again.updated, ["alice", "bob", "carol"]);
    assert!(again.created.is_empty());
    let fresh = berth_auth_service(store);
    assert!(fresh.login("carol", "carol-from-file", None).await.is_ok());
}

#[tokio::test]
async fn the_audit_log_is_listed_newest_first_and_pruned() {
    let (_dir, store, admin) = admin().await;
    let berth = berth_auth_service(store.clone());
    let anonymous = berth_auth::Caller::anonymous(None);
    berth.audit(&anonymous, "pull", "a/b", "denied", "");
    berth.audit(&anonymous, "push", "a/c", "denied", "");
    berth.flush_audit().await;
    let entries = admin.audit(10, None).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].target, "a/c");
    let older = admin.audit(10, Some(entries[0].id)).await.unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(
        admin
            .prune_audit(&op(), Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    // The two decisions and the record of the first pruning (a moment ago).
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(admin.prune_audit(&op(), Duration::ZERO).await.unwrap(), 3);
    let left = admin.audit(10, None).await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(
        (
            left[0].actor.as_str(),
            left[0].action.as_str(),
            left[0].target.as_str()
        ),
        ("cli:tester", "admin", "audit log")
    );
}

#[tokio::test]
async fn every_change_is_audited_with_its_actor_and_outcome() {
    let (_dir, _store, admin) = admin().await;
    let alice = Actor::Principal {
        subject: "user:alice".into(),
        client: Some("192.0.2.1".parse().unwrap()),
    };
    admin
        .create_user(&alice, user("bob", Some("bob password"), false))
        .await
        .unwrap();
    assert!(admin.delete_user(&Actor::System, "nobody").await.is_err());
    admin.create_team(&op(), "devs").await.unwrap();
    // Reading changes nothing and records nothing.
    admin.list_users().await.unwrap();
    let entries = admin.audit(10, None).await.unwrap();
    let seen: Vec<_> = entries
        .iter()
        .map(|e| {
            (
                e.actor.as_str(),
                e.action.as_str(),
                e.target.as_str(),
                e.client.as_str(),
                e.outcome.as_str(),
                e.detail.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "cli:tester",
                "admin",
                "team:devs",
                "local",
                "allowed",
                "create team"
            ),
            (
                "system",
                "admin",
                "user:nobody",
                "",
                "failed",
                "delete user: no user named \"nobody\""
            ),
            (
                "user:alice",
                "admin",
                "user:bob",
                "192.0.2.1",
                "allowed",
                "create user"
            ),
        ]
    );
}

#[tokio::test]
async fn only_unlimited_administrators_may_act_and_refusals_are_audited() {
    let (_dir, store, admin) = admin().await;
    admin
        .create_user(&op(), user("root", Some("root password"), true))
        .await
        .unwrap();
    admin
        .create_user(&op(), user("bob", Some("bob password"), false))
        .await
        .unwrap();
    let berth = berth_auth_service(store.clone());
    let root = berth.login("root", "root password", None).await.unwrap();
    let bob = berth
        .login("bob", "bob password", Some("192.0.2.9".parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(
        admin.authorize(&root, "GET /api/v1/users").await.unwrap(),
        Actor::Principal {
            subject: "user:root".into(),
            client: None
        }
    );
    assert!(matches!(
        admin.authorize(&bob, "DELETE /api/v1/users/root").await,
        Err(AdminError::Denied(_))
    ));
    let newest = &admin.audit(1, None).await.unwrap()[0];
    assert_eq!(
        (
            newest.actor.as_str(),
            newest.target.as_str(),
            newest.client.as_str(),
            newest.outcome.as_str()
        ),
        (
            "user:bob",
            "DELETE /api/v1/users/root",
            "192.0.2.9",
            "denied"
        )
    );
}

#[tokio::test]
async fn a_change_through_a_serving_administration_takes_effect_at_once() {
    let (_dir, store, admin) = admin().await;
    admin
        .create_user(&op(), user("alice", Some("alice password"), false))
        .await
        .unwrap();
    let berth = Arc::new(berth_auth_service(store.clone()));
    // A successful check is remembered...
    assert!(berth.login("alice", "alice password", None).await.is_ok());
    let serving = Administration::serving(Arc::clone(&berth));
    serving
        .set_password(&op(), "alice", "a new password")
        .await
        .unwrap();
    // ...and forgotten with the change, without waiting for the change counter.
    assert!(berth.login("alice", "alice password", None).await.is_err());
    assert!(berth.login("alice", "a new password", None).await.is_ok());
    serving
        .set_user_disabled(&op(), "alice", true)
        .await
        .unwrap();
    assert!(berth.login("alice", "a new password", None).await.is_err());
}

#[tokio::test]
async fn changes_made_elsewhere_reach_the_access_service_through_the_change_counter() {
    let (_dir, store, admin) = admin().await;
    admin
        .create_user(&op(), user("alice", Some("alice password"), false))
        .await
        .unwrap();
    let berth = berth_auth_service(store.clone());
    assert!(berth.login("alice", "alice password", None).await.is_ok());
    // Another process (no access service of its own) disables alice.
    admin.set_user_disabled(&op(), "alice", true).await.unwrap();
    let started = std::time::Instant::now();
    while berth.login("alice", "alice password", None).await.is_ok() {
        assert!(
            started.elapsed() < berth_auth::service::CHANGE_POLL * 3,
            "still logging in after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
