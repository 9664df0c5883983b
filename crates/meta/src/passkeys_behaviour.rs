//! The behaviour every [`PasskeyStore`] shows (run on SQLite and PostgreSQL): user handles
//! made once, passkeys unique across users, their use recorded, removed one by one or all
//! at once, ceremonies used once and expiring, and everything going with its user.

use crate::IdentityStore;
use crate::MetaError;
use crate::passkeys::{CeremonyPurpose, NewPasskey, PasskeyCeremony};

fn new_passkey(credential_id: &str, name: &str, at: i64) -> NewPasskey {
    NewPasskey {
        credential_id: credential_id.into(),
        name: name.into(),
        credential: format!("{{\"cred\":\"{credential_id}\"}}"),
        counter: 0,
        backed_up: false,
        created_at: at,
    }
}

fn ceremony(
    id: &str,
    user: Option<&str>,
    purpose: CeremonyPurpose,
    expires_at: i64,
) -> PasskeyCeremony {
    PasskeyCeremony {
        id: id.into(),
        user: user.map(str::to_string),
        purpose,
        state: format!("state of {id}"),
        created_at: 10,
        expires_at,
    }
}

pub async fn run_passkeys(store: &dyn IdentityStore) {
    store
        .create_user("pk-user", None, None, false)
        .await
        .unwrap();
    store
        .create_user("pk-other", None, None, false)
        .await
        .unwrap();

    // A handle is made once; a later call keeps the first.
    assert_eq!(store.passkey_handle("nobody", "h0").await.unwrap(), None);
    assert_eq!(
        store
            .passkey_handle("pk-user", "h1")
            .await
            .unwrap()
            .as_deref(),
        Some("h1")
    );
    assert_eq!(
        store
            .passkey_handle("pk-user", "h2")
            .await
            .unwrap()
            .as_deref(),
        Some("h1")
    );
    assert_eq!(
        store.user_of_passkey_handle("h1").await.unwrap().as_deref(),
        Some("pk-user")
    );
    assert_eq!(store.user_of_passkey_handle("h2").await.unwrap(), None);

    // Passkeys: listed oldest first; a credential id belongs to one user only.
    assert!(store.passkeys("pk-user").await.unwrap().is_empty());
    let laptop = store
        .add_passkey("pk-user", &new_passkey("cred-a", "laptop", 100))
        .await
        .unwrap();
    let key = store
        .add_passkey("pk-user", &new_passkey("cred-b", "yubikey", 101))
        .await
        .unwrap();
    assert!(matches!(
        store
            .add_passkey("pk-other", &new_passkey("cred-a", "stolen", 102))
            .await,
        Err(MetaError::Conflict(_))
    ));
    assert!(matches!(
        store
            .add_passkey("nobody", &new_passkey("cred-z", "x", 102))
            .await,
        Err(MetaError::Conflict(_))
    ));
    let listed = store.passkeys("pk-user").await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|p| (p.id, p.name.as_str(), p.created_at, p.last_used_at))
            .collect::<Vec<_>>(),
        [(laptop, "laptop", 100, None), (key, "yubikey", 101, None)]
    );
    assert_eq!(listed[0].credential, "{\"cred\":\"cred-a\"}");
    assert!(store.passkeys("pk-other").await.unwrap().is_empty());

    // A use records the updated credential, counter, backup state and time.
    assert!(
        store
            .use_passkey(key, "{\"cred\":\"cred-b\",\"counter\":7}", 7, true, 200)
            .await
            .unwrap()
    );
    let used = store
        .passkey_by_credential_id("cred-b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            used.user.as_str(),
            used.counter,
            used.backed_up,
            used.last_used_at,
            used.credential.as_str()
        ),
        (
            "pk-user",
            7,
            true,
            Some(200),
            "{\"cred\":\"cred-b\",\"counter\":7}"
        )
    );
    assert_eq!(
        store.passkey_by_credential_id("cred-x").await.unwrap(),
        None
    );

    // Removing: only the owner's, one by one or all at once.
    assert!(!store.delete_passkey("pk-other", laptop).await.unwrap());
    assert!(store.delete_passkey("pk-user", laptop).await.unwrap());
    assert!(!store.delete_passkey("pk-user", laptop).await.unwrap());
    assert_eq!(store.passkeys("pk-user").await.unwrap().len(), 1);

    // Ceremonies: taken once, not after they expire; expired ones go when one is made.
    assert!(matches!(
        store
            .create_passkey_ceremony(&ceremony(
                "x",
                Some("nobody"),
                CeremonyPurpose::Register,
                50
            ))
            .await,
        Err(MetaError::Conflict(_))
    ));
    let register = ceremony("reg", Some("pk-user"), CeremonyPurpose::Register, 50);
    let discover = ceremony("disc", None, CeremonyPurpose::Discover, 50);
    let old = ceremony("old", None, CeremonyPurpose::Discover, 5);
    for c in [&old, &register, &discover] {
        store.create_passkey_ceremony(c).await.unwrap();
    }
    assert_eq!(
        store.take_passkey_ceremony("reg", 20).await.unwrap(),
        Some(register.clone())
    );
    assert_eq!(
        store.take_passkey_ceremony("reg", 21).await.unwrap(),
        None,
        "used once"
    );
    assert_eq!(
        store.take_passkey_ceremony("disc", 50).await.unwrap(),
        None,
        "expired"
    );
    store
        .create_passkey_ceremony(&ceremony("late", None, CeremonyPurpose::Discover, 60))
        .await
        .unwrap();
    assert_eq!(
        store.take_passkey_ceremony("old", 1).await.unwrap(),
        None,
        "swept"
    );
    let authenticate = ceremony("auth", Some("pk-user"), CeremonyPurpose::Authenticate, 90);
    store.create_passkey_ceremony(&authenticate).await.unwrap();

    // Removing them all removes the user's ceremonies too, not other users' passkeys.
    store
        .add_passkey("pk-other", &new_passkey("cred-c", "phone", 103))
        .await
        .unwrap();
    assert!(store.delete_passkeys("pk-user").await.unwrap());
    assert!(!store.delete_passkeys("pk-user").await.unwrap());
    assert!(store.passkeys("pk-user").await.unwrap().is_empty());
    assert_eq!(store.take_passkey_ceremony("auth", 20).await.unwrap(), None);
    assert_eq!(store.passkeys("pk-other").await.unwrap().len(), 1);

    // Everything goes with its user: a later user of the same name has none of it.
    store
        .add_passkey("pk-user", &new_passkey("cred-d", "again", 104))
        .await
        .unwrap();
    store
        .create_passkey_ceremony(&ceremony(
            "gone",
            Some("pk-user"),
            CeremonyPurpose::Register,
            90,
        ))
        .await
        .unwrap();
    assert!(store.delete_user("pk-user").await.unwrap());
    store
        .create_user("pk-user", None, None, false)
        .await
        .unwrap();
    assert!(store.passkeys("pk-user").await.unwrap().is_empty());
    assert_eq!(
        store.passkey_by_credential_id("cred-d").await.unwrap(),
        None
    );
    assert_eq!(store.user_of_passkey_handle("h1").await.unwrap(), None);
    assert_eq!(store.take_passkey_ceremony("gone", 20).await.unwrap(), None);
    assert_eq!(
        store
            .passkey_handle("pk-user", "h3")
            .await
            .unwrap()
            .as_deref(),
        Some("h3")
    );
    store.delete_user("pk-user").await.unwrap();
    store.delete_user("pk-other").await.unwrap();
}
