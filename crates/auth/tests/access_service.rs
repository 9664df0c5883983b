//! The access service over a real SQLite identity store.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use berth_auth::password::hash_password;
use berth_auth::registry_token::{RegistryTokens, SigningKey};
use berth_auth::secret::{SecretKind, generate};
use berth_auth::{AccessService, Action, AuthFailure, Decision, Mode, Scope, TokenService};
use berth_meta::SqliteStore;
use berth_meta::identity::{AccessToken, IdentityStore, TokenKind, TokenOwner, TokenScope};

const CLIENT: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3)));

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        data_encoding::BASE64.encode(format!("{user}:{password}").as_bytes())
    )
}

async fn service() -> (tempfile::TempDir, Arc<SqliteStore>, AccessService) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("berth.db"))
            .await
            .unwrap(),
    );
    store
        .create_user("alice", Some(&hash_password("alice-pw")), None, false)
        .await
        .unwrap();
    store
        .create_user("bob", Some(&hash_password("bob-pw")), None, false)
        .await
        .unwrap();
    store
        .create_user("root", Some(&hash_password("root-pw")), None, true)
        .await
        .unwrap();
    store.create_team("devs").await.unwrap();
    store.add_team_member("devs", "alice").await.unwrap();
    store.create_service_account("ci", "").await.unwrap();
    store
        .add_rule("team:devs", "team/**", "push")
        .await
        .unwrap();
    store
        .add_rule("service-account:ci", "team/app", "pull,push")
        .await
        .unwrap();
    store
        .add_rule("anonymous", "*/public-*", "pull")
        .await
        .unwrap();
    let tokens = RegistryTokens::new(
        SigningKey::generate().unwrap(),
        "berth",
        "registry.test",
        Duration::from_secs(300),
    );
    let mode = Mode::Berth(Box::new(TokenService {
        tokens,
        realm: None,
        refresh_lifetime: Duration::from_secs(3600),
    }));
    let service = AccessService::new(mode, store.clone());
    (dir, store, service)
}

async fn access_token(store: &SqliteStore, owner: TokenOwner, scopes: Vec<TokenScope>) -> String {
    let secret = generate(SecretKind::AccessToken);
    store
        .create_token(&AccessToken {
            id: secret.id.clone(),
            kind: TokenKind::Access,
            owner,
            name: "test".into(),
            secret_hash: secret.hash.clone(),
            scopes,
            expires_at: None,
            created_at: 0,
            last_used_at: None,
            revoked_at: None,
        })
        .await
        .unwrap();
    secret.text
}

#[tokio::test]
async fn passwords_and_access_tokens_identify_callers() {
    let (_dir, store, service) = service().await;
    let alice = service
        .authenticate(Some(&basic("alice", "alice-pw")), CLIENT)
        .await
        .unwrap();
    assert_eq!(alice.principal.subject_name(), "user:alice");
    assert!(matches!(
        service
            .authenticate(Some(&basic("alice", "wrong")), CLIENT)
            .await,
        Err(AuthFailure::Invalid(_))
    ));
    assert!(matches!(
        service
            .authenticate(Some(&basic("nobody", "x")), CLIENT)
            .await,
        Err(AuthFailure::Invalid(_))
    ));
    assert!(matches!(
        service.authenticate(Some(&basic("", "")), CLIENT).await,
        Err(AuthFailure::Invalid(_))
    ));
    for malformed in [
        "Basic !!!",
        "Basic",
        "Digest x",
        "Bearer",
        "Bearer not.a.jwt",
        "nonsense",
    ] {
        assert!(
            matches!(
                service.authenticate(Some(malformed), CLIENT).await,
                Err(AuthFailure::Invalid(_))
            ),
            "{malformed}"
        );
    }

    // An access token stands in for the password; its owner's name must come with it.
    let token = access_token(&store, TokenOwner::ServiceAccount("ci".into()), vec![]).await;
    let ci = service
        .authenticate(Some(&basic("ci", &token)), CLIENT)
        .await
        .unwrap();
    assert_eq!(ci.principal.subject_name(), "service-account:ci");
    assert!(
        service
            .authenticate(Some(&basic("alice", &token)), CLIENT)
            .await
            .is_err()
    );

    // A revoked token, a disabled user, a disabled service account.
    let id = store.list_tokens(None).await.unwrap()[0].id.clone();
    store.revoke_token(&id, 1).await.unwrap();
    assert!(
        service
            .authenticate(Some(&basic("ci", &token)), CLIENT)
            .await
            .is_err()
    );
    store.set_user_disabled("bob", true).await.unwrap();
    assert!(
        service
            .authenticate(Some(&basic("bob", "bob-pw")), CLIENT)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_and_success_resets() {
    let (_dir, _store, service) = service().await;
    for _ in 0..5 {
        let _ = service
            .authenticate(Some(&basic("alice", "wrong")), CLIENT)
            .await;
    }
    let _ = service
        .authenticate(Some(&basic("alice", "wrong")), CLIENT)
        .await;
    match service
        .authenticate(Some(&basic("alice", "alice-pw")), CLIENT)
        .await
    {
        Err(AuthFailure::Throttled(wait)) => assert!(wait <= Duration::from_secs(1)),
        other => panic!("expected a throttled login, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    service
        .authenticate(Some(&basic("alice", "alice-pw")), CLIENT)
        .await
        .expect("the lockout ends");
    let _ = service
        .authenticate(Some(&basic("alice", "wrong")), CLIENT)
        .await;
    service
        .authenticate(Some(&basic("alice", "alice-pw")), CLIENT)
        .await
        .expect("a success cleared the failures");
}

#[tokio::test]
async fn decisions_and_tokens() {
    let (_dir, store, service) = service().await;
    let alice = service
        .authenticate(Some(&basic("alice", "alice-pw")), CLIENT)
        .await
        .unwrap();
    let root = service
        .authenticate(Some(&basic("root", "root-pw")), CLIENT)
        .await
        .unwrap();
    let anonymous = service.authenticate(None, CLIENT).await.unwrap();

    assert_eq!(
        service
            .authorize(&alice, "team/app", Action::Push)
            .await
            .unwrap(),
        Decision::Allowed
    );
    assert_eq!(
        service
            .authorize(&alice, "team/app", Action::Pull)
            .await
            .unwrap(),
        Decision::Allowed
    );
    assert_eq!(
        service
            .authorize(&alice, "team/app", Action::Delete)
            .await
            .unwrap(),
        Decision::Forbidden
    );
    assert_eq!(
        service
            .authorize(&alice, "other/app", Action::Pull)
            .await
            .unwrap(),
        Decision::Forbidden
    );
    assert_eq!(
        service
            .authorize(&anonymous, "x/public-web", Action::Pull)
            .await
            .unwrap(),
        Decision::Allowed
    );
    assert_eq!(
        service
            .authorize(&anonymous, "team/app", Action::Pull)
            .await
            .unwrap(),
        Decision::LoginRequired
    );
    assert_eq!(
        service
            .authorize(&root, "anything", Action::Delete)
            .await
            .unwrap(),
        Decision::Allowed
    );

    // A token grants what was asked and allowed, nothing more.
    let scopes =
        Scope::parse_all(["repository:team/app:pull,push,delete repository:other/app:pull"]);
    let issued = service.issue_token(&alice, &scopes, false).await.unwrap();
    assert!(issued.refresh_token.is_none());
    let bearer = service
        .authenticate(Some(&format!("Bearer {}", issued.token.token)), CLIENT)
        .await
        .unwrap();
    assert_eq!(
        service
            .authorize(&bearer, "team/app", Action::Push)
            .await
            .unwrap(),
        Decision::Allowed
    );
    assert_eq!(
        service
            .authorize(&bearer, "team/app", Action::Delete)
            .await
            .unwrap(),
        Decision::Forbidden
    );
    assert_eq!(
        service
            .authorize(&bearer, "other/app", Action::Pull)
            .await
            .unwrap(),
        Decision::Forbidden
    );
    // Allowed by policy but not in this token: ask for another.
    assert_eq!(
        service
            .authorize(&bearer, "team/web", Action::Pull)
            .await
            .unwrap(),
        Decision::ScopeMissing
    );

    // An anonymous token still needs a login for what anonymous may not do.
    let anonymous_token = service
        .issue_token(
            &anonymous,
            &Scope::parse_all(["repository:team/app:pull"]),
            false,
        )
        .await
        .unwrap();
    let anonymous_bearer = service
        .authenticate(
            Some(&format!("Bearer {}", anonymous_token.token.token)),
            CLIENT,
        )
        .await
        .unwrap();
    assert!(anonymous_bearer.presented_credentials());
    assert_eq!(
        service
            .authorize(&anonymous_bearer, "team/app", Action::Pull)
            .await
            .unwrap(),
        Decision::LoginRequired
    );

    // An access token limited to pulls of team/app.
    let limited = access_token(
        &store,
        TokenOwner::User("alice".into()),
        vec![TokenScope {
            pattern: "team/app".into(),
            actions: "pull".into(),
        }],
    )
    .await;
    let limited = service
        .authenticate(Some(&basic("alice", &limited)), CLIENT)
        .await
        .unwrap();
    assert_eq!(
        service
            .authorize(&limited, "team/app", Action::Pull)
            .await
            .unwrap(),
        Decision::Allowed
    );
    assert_eq!(
        service
            .authorize(&limited, "team/app", Action::Push)
            .await
            .unwrap(),
        Decision::Forbidden
    );
    assert_eq!(
        service
            .authorize(&limited, "team/web", Action::Pull)
            .await
            .unwrap(),
        Decision::Forbidden
    );

    // Listings show what the caller may pull.
    let visible = service.pull_filter(&alice).await.unwrap();
    assert!(visible("team/app") && visible("x/public-y") && !visible("secret/app"));
    let visible = service.pull_filter(&anonymous).await.unwrap();
    assert!(!visible("team/app") && visible("x/public-y"));

    // Every decision is in the audit log.
    service.flush_audit().await;
    let audit = store.list_audit(1000, None).await.unwrap();
    let denied = audit
        .iter()
        .find(|(_, e)| e.actor == "user:alice" && e.action == "delete" && e.target == "team/app")
        .expect("the denied delete is recorded");
    assert_eq!(
        (denied.1.outcome.as_str(), denied.1.client.as_str()),
        ("denied", "10.1.2.3")
    );
    assert!(
        audit
            .iter()
            .any(|(_, e)| e.action == "token" && e.target == "team/app")
    );
}

#[tokio::test]
async fn refresh_tokens_stand_for_their_owner_until_revoked() {
    let (_dir, store, service) = service().await;
    let alice = service
        .authenticate(Some(&basic("alice", "alice-pw")), CLIENT)
        .await
        .unwrap();
    let issued = service.issue_token(&alice, &[], true).await.unwrap();
    let refresh = issued
        .refresh_token
        .expect("a refresh token for an offline request");
    let again = service.refresh(&refresh, CLIENT).await.unwrap();
    assert_eq!(again.principal.subject_name(), "user:alice");
    assert!(
        service
            .refresh("berthrt_0000000000000000_".to_string().as_str(), CLIENT)
            .await
            .is_err()
    );
    // A refresh token is not a password.
    assert!(
        service
            .authenticate(Some(&basic("alice", &refresh)), CLIENT)
            .await
            .is_err()
    );
    let id = store
        .list_tokens(Some(&TokenOwner::User("alice".into())))
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.kind == TokenKind::Refresh)
        .unwrap()
        .id;
    store.revoke_token(&id, 1).await.unwrap();
    assert!(service.refresh(&refresh, CLIENT).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_logins_waits_in_line_and_all_succeed() {
    let (_dir, _store, service) = service().await;
    let service = Arc::new(service);
    // 16 clients logging in at once (a CI fleet starting): the argon2 checks run a few at a
    // time, and those of the same password find the first success remembered.
    let logins: Vec<_> = (0..16)
        .map(|i| {
            let service = Arc::clone(&service);
            tokio::spawn(async move {
                let (user, password) = if i % 2 == 0 {
                    ("alice", "alice-pw")
                } else {
                    ("bob", "bob-pw")
                };
                service.login(user, password, CLIENT).await.is_ok()
            })
        })
        .collect();
    for login in logins {
        assert!(login.await.unwrap());
    }
    assert!(matches!(
        service.login("alice", "wrong", CLIENT).await,
        Err(AuthFailure::Invalid(_))
    ));
}
