//! Managing identities through the administration layer, over a real SQLite identity store.

use std::sync::Arc;
use std::time::Duration;

use berth_auth::admin::{AdminError, Administration, NewToken, NewUser, parse_owner};
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
                    .create_user(user(bad, Some("long enough"), false))
                    .await,
                Err(AdminError::Invalid(_))
            ),
            "{bad:?} accepted"
        );
    }
    assert!(matches!(
        admin.create_user(user("alice", Some("short"), false)).await,
        Err(AdminError::Invalid(_))
    ));
    let mut with_email = user("alice", Some("alice password"), false);
    with_email.email = Some("not an email".into());
    assert!(matches!(
        admin.create_user(with_email.clone()).await,
        Err(AdminError::Invalid(_))
    ));
    with_email.email = Some("alice@example.com".into());
    let alice = admin.create_user(with_email).await.unwrap();
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
    assert!(alice.has_password && !alice.admin && !alice.disabled);
    let stored = store.user("alice").await.unwrap().unwrap();
    assert!(stored.password_hash.unwrap().starts_with("$argon2id$"));
    assert!(matches!(
        admin.create_user(user("alice", None, false)).await,
        Err(AdminError::Conflict(_))
    ));

    // The last enabled administrator stays.
    admin
        .create_user(user("root", Some("root password"), true))
        .await
        .unwrap();
    for result in [
        admin.delete_user("root").await.map(|_| ()),
        admin.set_user_disabled("root", true).await.map(|_| ()),
        admin.set_user_admin("root", false).await.map(|_| ()),
    ] {
        assert!(matches!(result, Err(AdminError::Conflict(_))), "{result:?}");
    }
    admin.set_user_admin("alice", true).await.unwrap();
    admin.set_user_disabled("root", true).await.unwrap();
    assert!(matches!(
        admin.delete_user("alice").await,
        Err(AdminError::Conflict(_))
    ));
    admin.set_user_disabled("root", false).await.unwrap();
    admin.delete_user("alice").await.unwrap();
    assert!(matches!(
        admin.delete_user("alice").await,
        Err(AdminError::NotFound(_))
    ));
    assert!(matches!(
        admin.set_password("nobody", "long enough").await,
        Err(AdminError::NotFound(_))
    ));
    assert_eq!(admin.list_users().await.unwrap().len(), 1);
}

#[tokio::test]
async fn teams_service_accounts_and_rules_refer_to_what_exists() {
    let (_dir, _store, admin) = admin().await;
    admin
        .create_user(user("alice", Some("alice password"), false))
        .await
        .unwrap();
    admin.create_team("devs").await.unwrap();
    assert!(matches!(
        admin.create_team("devs").await,
        Err(AdminError::Conflict(_))
    ));
    assert!(matches!(
        admin.add_team_member("devs", "nobody").await,
        Err(AdminError::NotFound(_))
    ));
    let devs = admin.add_team_member("devs", "alice").await.unwrap();
    assert_eq!(devs.members, ["alice"]);
    assert_eq!(admin.user("alice").await.unwrap().teams, ["devs"]);
    assert_eq!(admin.list_users().await.unwrap()[0].teams, ["devs"]);

    admin.create_service_account("ci", "builds").await.unwrap();
    assert!(matches!(
        admin.create_service_account("ci", "").await,
        Err(AdminError::Conflict(_))
    ));

    for (subject, pattern, actions) in [
        ("team:nope", "x/*", "pull"),
        ("user:nobody", "x/*", "pull"),
        ("service-account:nope", "x/*", "pull"),
    ] {
        assert!(matches!(
            admin.add_rule(subject, pattern, actions).await,
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
            admin.add_rule(subject, pattern, actions).await,
            Err(AdminError::Invalid(_))
        ));
    }
    let rule = admin
        .add_rule("team:devs", "team-a/**", "push, pull")
        .await
        .unwrap();
    assert_eq!(rule.subject, "team:devs");
    assert_eq!(rule.actions, "pull,push");
    admin
        .add_rule("anonymous", "*/public-*", "pull")
        .await
        .unwrap();
    assert_eq!(admin.list_rules().await.unwrap().len(), 2);
    admin.remove_rule(rule.id).await.unwrap();
    assert!(matches!(
        admin.remove_rule(rule.id).await,
        Err(AdminError::NotFound(_))
    ));
    admin.remove_team_member("devs", "alice").await.unwrap();
    assert!(matches!(
        admin.remove_team_member("devs", "alice").await,
        Err(AdminError::NotFound(_))
    ));
    admin.delete_team("devs").await.unwrap();
    admin.delete_service_account("ci").await.unwrap();
    assert!(admin.list_service_accounts().await.unwrap().is_empty());
}

#[tokio::test]
async fn tokens_are_shown_once_limited_and_revocable() {
    let (_dir, store, admin) = admin().await;
    admin.create_service_account("ci", "").await.unwrap();
    admin
        .add_rule("service-account:ci", "team/**", "push")
        .await
        .unwrap();
    assert!(matches!(parse_owner("ci"), Err(AdminError::Invalid(_))));
    assert!(matches!(
        admin
            .create_token(NewToken {
                owner: parse_owner("service-account:nope").unwrap(),
                name: "deploy".into(),
                scopes: vec![],
                expires_in: None,
            })
            .await,
        Err(AdminError::NotFound(_))
    ));
    assert!(matches!(
        admin
            .create_token(NewToken {
                owner: TokenOwner::ServiceAccount("ci".into()),
                name: "deploy".into(),
                scopes: vec![("team/**".into(), "fly".into())],
                expires_in: None,
            })
            .await,
        Err(AdminError::Invalid(_))
    ));
    let created = admin
        .create_token(NewToken {
            owner: TokenOwner::ServiceAccount("ci".into()),
            name: "deploy".into(),
            scopes: vec![("team/app".into(), "pull".into())],
            expires_in: Some(Duration::from_secs(3600)),
        })
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

    let revoked = admin.revoke_token(&created.info.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(berth.login("ci", &created.secret, None).await.is_err());
    assert!(matches!(
        admin.revoke_token("0000000000000000").await,
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
        .create_user(user("carol", Some("carol's own"), false))
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
        admin.import_htpasswd("alice:$apr1$abc$def\n", false).await,
        Err(AdminError::Invalid(_))
    ));
    let report = admin.import_htpasswd(&file, false).await.unwrap();
    assert_eq!(report.created, ["alice", "bob"]);
    assert_eq!(report.skipped, ["carol"]);
    assert_eq!(report.refused.len(), 1);
    let berth = berth_auth_service(store.clone());
    assert!(berth.login("alice", "alice-pw", None).await.is_ok());
    assert!(berth.login("carol", "carol's own", None).await.is_ok());
    let again = admin.import_htpasswd(&file, true).await.unwrap();
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
        admin.prune_audit(Duration::from_secs(3600)).await.unwrap(),
        0
    );
    assert_eq!(admin.prune_audit(Duration::ZERO).await.unwrap(), 2);
    assert!(admin.audit(10, None).await.unwrap().is_empty());
}
