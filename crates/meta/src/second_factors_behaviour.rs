//! The behaviour every [`SecondFactorStore`] shows (run on SQLite and PostgreSQL): pending
//! and confirmed authenticators, each time step used once, recovery codes used once and
//! replaced, sign-ins halfway, and everything going with its user.

use crate::IdentityStore;
use crate::second_factors::{ChallengePurpose, SignInChallenge};

pub async fn run_second_factors(store: &dyn IdentityStore) {
    store
        .create_user("mfa-user", None, None, false)
        .await
        .unwrap();
    assert_eq!(store.totp_factor("mfa-user").await.unwrap(), None);
    assert!(!store.set_pending_totp("nobody", "AAAA", 1).await.unwrap());
    assert!(
        store
            .set_pending_totp("mfa-user", "FIRST", 1)
            .await
            .unwrap()
    );
    assert!(
        store
            .set_pending_totp("mfa-user", "SECOND", 2)
            .await
            .unwrap()
    );
    let pending = store.totp_factor("mfa-user").await.unwrap().unwrap();
    assert_eq!(
        (pending.secret, pending.pending_secret, pending.pending_at),
        (None, Some("SECOND".to_string()), Some(2))
    );
    // Only the pending secret confirms; its step becomes the last one used.
    let hashes: Vec<String> = (0..3).map(|i| format!("hash-{i}")).collect();
    assert!(
        !store
            .confirm_totp("mfa-user", "FIRST", 100, &hashes, 3)
            .await
            .unwrap()
    );
    assert!(
        !store.use_totp_step("mfa-user", 101).await.unwrap(),
        "not confirmed yet"
    );
    assert!(
        store
            .confirm_totp("mfa-user", "SECOND", 100, &hashes, 3)
            .await
            .unwrap()
    );
    let factor = store.totp_factor("mfa-user").await.unwrap().unwrap();
    assert_eq!(
        (
            factor.secret.as_deref(),
            factor.confirmed_at,
            factor.last_step
        ),
        (Some("SECOND"), Some(3), 100)
    );
    assert_eq!(factor.pending_secret, None);
    assert!(!store.use_totp_step("mfa-user", 100).await.unwrap());
    assert!(!store.use_totp_step("mfa-user", 99).await.unwrap());
    assert!(store.use_totp_step("mfa-user", 101).await.unwrap());
    assert!(!store.use_totp_step("mfa-user", 101).await.unwrap());

    let codes = store.unused_recovery_codes("mfa-user").await.unwrap();
    assert_eq!(
        codes
            .iter()
            .map(|c| c.code_hash.as_str())
            .collect::<Vec<_>>(),
        ["hash-0", "hash-1", "hash-2"]
    );
    assert!(store.use_recovery_code(codes[1].id, 5).await.unwrap());
    assert!(!store.use_recovery_code(codes[1].id, 6).await.unwrap());
    assert_eq!(
        store.unused_recovery_codes("mfa-user").await.unwrap().len(),
        2
    );
    store
        .replace_recovery_codes("mfa-user", &["new".to_string()], 7)
        .await
        .unwrap();
    let codes = store.unused_recovery_codes("mfa-user").await.unwrap();
    assert_eq!(codes.len(), 1);
    assert_eq!(codes[0].code_hash, "new");

    let challenge = |id: &str, user: &str, expires_at: i64| SignInChallenge {
        id: id.into(),
        user: user.into(),
        purpose: ChallengePurpose::Code,
        method: "password".into(),
        client: "192.0.2.1".into(),
        created_at: 10,
        expires_at,
    };
    assert!(
        store
            .create_challenge(&challenge("x", "nobody", 20))
            .await
            .is_err()
    );
    store
        .create_challenge(&challenge("old", "mfa-user", 5))
        .await
        .unwrap();
    store
        .create_challenge(&challenge("live", "mfa-user", 20))
        .await
        .unwrap();
    // Creating one deletes those that expired.
    store
        .create_challenge(&challenge("later", "mfa-user", 30))
        .await
        .unwrap();
    assert_eq!(store.challenge("old").await.unwrap(), None);
    assert_eq!(
        store.challenge("live").await.unwrap(),
        Some(challenge("live", "mfa-user", 20))
    );
    assert!(store.delete_challenge("live").await.unwrap());
    assert!(!store.delete_challenge("live").await.unwrap());

    assert!(store.delete_second_factors("mfa-user").await.unwrap());
    assert!(!store.delete_second_factors("mfa-user").await.unwrap());
    assert_eq!(store.totp_factor("mfa-user").await.unwrap(), None);
    assert!(
        store
            .unused_recovery_codes("mfa-user")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.challenge("later").await.unwrap(), None);

    // Everything goes with its user.
    store
        .set_pending_totp("mfa-user", "THIRD", 8)
        .await
        .unwrap();
    store
        .confirm_totp("mfa-user", "THIRD", 200, &hashes, 9)
        .await
        .unwrap();
    store
        .create_challenge(&challenge("gone", "mfa-user", 40))
        .await
        .unwrap();
    assert!(store.delete_user("mfa-user").await.unwrap());
    store
        .create_user("mfa-user", None, None, false)
        .await
        .unwrap();
    assert_eq!(store.totp_factor("mfa-user").await.unwrap(), None);
    assert!(
        store
            .unused_recovery_codes("mfa-user")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.challenge("gone").await.unwrap(), None);

    // Password reset links: once, unexpired; using one ends the user's other links.
    store
        .create_password_reset("r1", "mfa-user", 100, 200)
        .await
        .unwrap();
    store
        .create_password_reset("r2", "mfa-user", 100, 200)
        .await
        .unwrap();
    store
        .create_password_reset("r0", "mfa-user", 10, 50)
        .await
        .unwrap();
    assert!(
        store
            .create_password_reset("rx", "nobody", 100, 200)
            .await
            .is_err()
    );
    let reset = store.password_reset("r1").await.unwrap().unwrap();
    assert_eq!(
        (reset.user.as_str(), reset.expires_at, reset.used_at),
        ("mfa-user", 200, None)
    );
    assert_eq!(
        store.use_password_reset("r0", 60).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        store.use_password_reset("r1", 250).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        store
            .use_password_reset("r1", 150)
            .await
            .unwrap()
            .as_deref(),
        Some("mfa-user")
    );
    assert_eq!(
        store.use_password_reset("r1", 151).await.unwrap(),
        None,
        "used"
    );
    assert_eq!(
        store.use_password_reset("r2", 152).await.unwrap(),
        None,
        "ended with r1"
    );
    assert_eq!(
        store.password_reset("r1").await.unwrap().unwrap().used_at,
        Some(150)
    );
    store.delete_user("mfa-user").await.unwrap();
    assert_eq!(store.password_reset("r2").await.unwrap(), None);
}
