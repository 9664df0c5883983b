//! Sign-in over a real SQLite identity store. Second factors: enrolment through
//! `Administration`, codes accepted once per time step, recovery codes once, the requirement
//! refusing the password where no code can be given, the sign-in's challenge used once,
//! resets. Password reset links: once, before they expire, ending the user's sessions.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_auth::admin::{Actor, AdminError, Administration};
use berth_auth::password::hash_password;
use berth_auth::registry_token::{RegistryTokens, SigningKey};
use berth_auth::service::{
    FirstFactor, MfaRequirement, NextStep, SecondFactor, SecondFactorPolicy, SignInMethod,
};
use berth_auth::{AccessService, AuthFailure, Mode, TokenService, totp};
use berth_meta::SqliteStore;
use berth_meta::identity::IdentityStore;

const CLIENT: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 9, 8, 7)));

async fn service(required: MfaRequirement) -> (tempfile::TempDir, Arc<AccessService>) {
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
        .create_user("root", Some(&hash_password("root-pw")), None, true)
        .await
        .unwrap();
    let mode = Mode::Berth(Box::new(TokenService {
        tokens: RegistryTokens::new(
            SigningKey::generate().unwrap(),
            "berth",
            "registry.test",
            Duration::from_secs(300),
        ),
        realm: None,
        refresh_lifetime: Duration::from_secs(3600),
    }));
    let access = AccessService::new(mode, store).with_second_factor_policy(SecondFactorPolicy {
        required,
        issuer: "registry.test".into(),
    });
    (dir, Arc::new(access))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn actor(name: &str) -> Actor {
    Actor::Principal {
        subject: format!("user:{name}"),
        client: CLIENT,
    }
}

/// Enrols an authenticator for `user`: its secret and recovery codes.
async fn enrol(admin: &Administration, user: &str) -> (String, Vec<String>) {
    let secret = admin.pending_authenticator(user, false).await.unwrap();
    assert_eq!(
        admin.pending_authenticator(user, false).await.unwrap(),
        secret,
        "the enrolment in progress is kept"
    );
    let wrong = admin
        .confirm_authenticator(&actor(user), user, "000000")
        .await;
    if totp::code_at(&secret, now()).as_deref() != Some("000000") {
        assert!(matches!(wrong, Err(AdminError::Invalid(_))), "{wrong:?}");
    }
    let code = totp::code_at(&secret, now()).unwrap();
    let codes = admin
        .confirm_authenticator(&actor(user), user, &code)
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

#[tokio::test]
async fn a_code_is_accepted_once_and_a_recovery_code_once() {
    let (_dir, access) = service(MfaRequirement::None).await;
    let admin = Administration::serving(Arc::clone(&access));
    assert!(!access.has_second_factor("alice").await.unwrap());
    let (secret, codes) = enrol(&admin, "alice").await;
    assert!(access.has_second_factor("alice").await.unwrap());

    // The enrolment's code was used; the next step's is accepted once.
    let next = totp::code_at(&secret, now() + 30).unwrap();
    assert_eq!(
        access
            .verify_second_factor("alice", &next, CLIENT)
            .await
            .unwrap(),
        SecondFactor::AuthenticatorCode
    );
    assert!(matches!(
        access.verify_second_factor("alice", &next, CLIENT).await,
        Err(AuthFailure::Invalid(why)) if why.contains("used already")
    ));
    // A code of an earlier step than one used is refused too.
    let current = totp::code_at(&secret, now()).unwrap();
    if current != next {
        assert!(
            access
                .verify_second_factor("alice", &current, CLIENT)
                .await
                .is_err()
        );
    }

    assert_eq!(
        access
            .verify_second_factor("alice", &codes[3].to_uppercase(), CLIENT)
            .await
            .unwrap(),
        SecondFactor::RecoveryCode
    );
    assert!(
        access
            .verify_second_factor("alice", &codes[3], CLIENT)
            .await
            .is_err()
    );
    assert_eq!(
        admin
            .second_factors("alice")
            .await
            .unwrap()
            .recovery_codes_left,
        9
    );

    // New recovery codes replace the old ones.
    let fresh = admin
        .new_recovery_codes(&actor("alice"), "alice")
        .await
        .unwrap();
    assert!(
        access
            .verify_second_factor("alice", &codes[4], CLIENT)
            .await
            .is_err()
    );
    assert!(
        access
            .verify_second_factor("alice", &fresh[0], CLIENT)
            .await
            .is_ok()
    );

    // Another user's codes are not alice's.
    assert!(
        access
            .verify_second_factor("root", &fresh[1], CLIENT)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn wrong_codes_are_throttled() {
    let (_dir, access) = service(MfaRequirement::None).await;
    let admin = Administration::serving(Arc::clone(&access));
    let (secret, _) = enrol(&admin, "alice").await;
    let mut throttled = false;
    for _ in 0..10 {
        match access.verify_second_factor("alice", "999999", CLIENT).await {
            Err(AuthFailure::Throttled(_)) => {
                throttled = true;
                break;
            }
            Err(AuthFailure::Invalid(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(throttled);
    // While locked out, even the right code waits.
    let next = totp::code_at(&secret, now() + 30).unwrap();
    assert!(matches!(
        access.verify_second_factor("alice", &next, CLIENT).await,
        Err(AuthFailure::Throttled(_))
    ));
    // The password is throttled apart: it still works.
    assert!(access.login("alice", "alice-pw", CLIENT).await.is_ok());
}

#[tokio::test]
async fn sessions_begun_without_a_second_factor_end_when_the_requirement_comes_to_cover_their_user()
{
    let (_dir, access) = service(MfaRequirement::Admins).await;
    let admin = Administration::serving(Arc::clone(&access));
    let (caller, _) = access
        .first_factor("alice", "alice-pw", CLIENT)
        .await
        .unwrap();
    let one_factor = access.begin_session(&caller).await.unwrap();
    let two_factors = access
        .begin_session_with(
            &caller,
            &SignInMethod::two_factors("password + authenticator code"),
            None,
        )
        .await
        .unwrap();
    let live = |cookie: String| {
        let access = Arc::clone(&access);
        async move { access.session(&cookie, None, CLIENT).await }
    };
    assert!(!live(one_factor.cookie.clone()).await.unwrap().second_factor);
    assert!(
        live(two_factors.cookie.clone())
            .await
            .unwrap()
            .second_factor
    );

    // Alice becomes an administrator, whom the requirement covers: the session her password
    // alone began ends, the one with a second factor goes on.
    admin
        .set_user_admin(&actor("root"), "alice", true)
        .await
        .unwrap();
    match live(one_factor.cookie.clone()).await {
        Err(AuthFailure::Invalid(why)) => assert!(why.contains("second factor"), "{why}"),
        Ok(_) => panic!("a one-factor session of an administrator goes on"),
        Err(other) => panic!("{other:?}"),
    }
    assert!(live(two_factors.cookie).await.is_ok());
}

#[tokio::test]
async fn the_requirement_refuses_passwords_where_no_code_can_be_given() {
    let (_dir, access) = service(MfaRequirement::Admins).await;
    assert!(access.login("alice", "alice-pw", CLIENT).await.is_ok());
    match access.login("root", "root-pw", CLIENT).await {
        Err(AuthFailure::Invalid(why)) => assert!(why.contains("personal access token"), "{why}"),
        other => panic!("{other:?}"),
    }
    // The dashboard's first step takes it, then sends root to enrol.
    let (caller, method) = access
        .first_factor("root", "root-pw", CLIENT)
        .await
        .unwrap();
    assert_eq!(method, FirstFactor::Password);
    let NextStep::Enrol(challenge) = access.next_sign_in_step(&caller, method).await.unwrap()
    else {
        panic!("root must enrol");
    };
    let pending = access.pending_sign_in(&challenge).await.unwrap().unwrap();
    assert_eq!(pending.user, "root");
    assert!(
        access
            .pending_sign_in("0".repeat(64).as_str())
            .await
            .unwrap()
            .is_none()
    );
    // The challenge is used once.
    let signed_in = access.finish_sign_in(&challenge, CLIENT).await.unwrap();
    assert_eq!(signed_in.principal.subject_name(), "user:root");
    assert!(access.finish_sign_in(&challenge, CLIENT).await.is_err());

    // Once enrolled, the next sign-in asks for a code; the admin API's sign-in wants it too.
    let admin = Administration::serving(Arc::clone(&access));
    let (secret, _) = enrol(&admin, "root").await;
    let NextStep::Code(_) = access.next_sign_in_step(&caller, method).await.unwrap() else {
        panic!("root gives a code");
    };
    assert!(
        access
            .sign_in_at_once("root", "root-pw", None, CLIENT)
            .await
            .is_err()
    );
    let next = totp::code_at(&secret, now() + 30).unwrap();
    let (_, how) = access
        .sign_in_at_once("root", "root-pw", Some(&next), CLIENT)
        .await
        .unwrap();
    assert_eq!(
        how,
        SignInMethod::two_factors("password + authenticator code")
    );

    // A reset removes it: root enrols again at the next sign-in.
    admin
        .reset_second_factors(&actor("root"), "root")
        .await
        .unwrap();
    assert!(!access.has_second_factor("root").await.unwrap());
    assert!(matches!(
        access.next_sign_in_step(&caller, method).await.unwrap(),
        NextStep::Enrol(_)
    ));
    assert!(matches!(
        admin.reset_second_factors(&actor("root"), "nobody").await,
        Err(AdminError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_reset_link_sets_the_password_once_before_it_expires_and_ends_sessions() {
    let (_dir, access) = service(MfaRequirement::None).await;
    let admin = Administration::serving(Arc::clone(&access));
    let store = Arc::clone(access.store());
    let system = Actor::System;
    // Only users with an email address get a link; names and addresses both find them.
    assert!(
        admin
            .password_reset_for(&system, "alice")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        admin
            .password_reset_for(&system, "nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );
    store
        .create_user(
            "carol",
            Some(&hash_password("carol-pw")),
            Some("Carol@Example.com"),
            false,
        )
        .await
        .unwrap();
    let by_name = admin
        .password_reset_for(&system, "carol")
        .await
        .unwrap()
        .unwrap();
    let by_address = admin
        .password_reset_for(&system, "carol@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (by_name.user.as_str(), by_name.email.as_str()),
        ("carol", "Carol@Example.com")
    );
    assert_ne!(by_name.token, by_address.token);

    let (caller, _) = access
        .first_factor("carol", "carol-pw", CLIENT)
        .await
        .unwrap();
    let session = access.begin_session(&caller).await.unwrap();
    // A weak password does not use the link up.
    assert!(matches!(
        admin
            .reset_password_with(&by_name.token, "short", CLIENT)
            .await,
        Err(AdminError::Invalid(_))
    ));
    assert_eq!(
        admin
            .reset_password_with(&by_name.token, "carol-new-pw", CLIENT)
            .await
            .unwrap(),
        "carol"
    );
    assert!(
        access.session(&session.cookie, None, CLIENT).await.is_err(),
        "sessions ended"
    );
    assert!(access.login("carol", "carol-new-pw", CLIENT).await.is_ok());
    // Used, and the other link went with it.
    for token in [&by_name.token, &by_address.token] {
        assert!(matches!(
            admin
                .reset_password_with(token, "carol-third-pw", CLIENT)
                .await,
            Err(AdminError::Conflict(_))
        ));
    }
    // An expired link is refused.
    let token = "ab".repeat(32);
    store
        .create_password_reset(&berth_auth::secret::hash(&token), "carol", 1, 2)
        .await
        .unwrap();
    assert_eq!(admin.reset_link_user(&token).await.unwrap(), None);
    assert!(matches!(
        admin
            .reset_password_with(&token, "carol-third-pw", CLIENT)
            .await,
        Err(AdminError::Conflict(_))
    ));
    assert!(
        admin
            .reset_link_user("not a token")
            .await
            .unwrap()
            .is_none()
    );
}
