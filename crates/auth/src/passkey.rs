//! Passkeys (WebAuthn), free of I/O: the relying party berth is, derived from its public URL,
//! and the two ceremonies through `webauthn-rs`, with their states and credentials as text
//! for the store.
//!
//! * The relying party id is the public URL's host name and the only accepted origin is the
//!   URL's scheme, host and port: an answer made for another site, or signed for another
//!   relying party id, is refused (`webauthn-rs` checks the client data's origin and the
//!   authenticator data's RP id hash before the signature).
//! * Registration asks for a discoverable credential ("preferred": an authenticator that
//!   cannot keep one still registers, and then serves as a second factor only) and for user
//!   verification, so that a passkey alone is two factors (something held, and a PIN or a
//!   biometric) and may be the whole sign-in.
//! * A ceremony's state (the challenge, and what the answer must match) never goes to the
//!   browser: the service keeps it in the database, takes it out once, and it expires.
//! * A use updates the credential's signature counter and backup state; a counter that goes
//!   backwards (a cloned authenticator) is refused by `webauthn-rs`.

use data_encoding::BASE64URL_NOPAD;
use serde_json::Value;
use url::Url;
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, WebauthnError,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

/// How long a browser has to answer a ceremony (the authenticator's timeout, and the
/// server's state lifetime).
pub const CEREMONY_LIFETIME: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// The longest name a passkey may be given.
pub const MAX_NAME_LENGTH: usize = 64;

/// berth as a WebAuthn relying party.
pub struct RelyingParty {
    webauthn: Webauthn,
    id: String,
    origin: String,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty")
            .field("id", &self.id)
            .field("origin", &self.origin)
            .finish()
    }
}

/// Why a browser's answer was refused, as the user and the audit log read it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasskeyRefusal {
    #[error("the passkey's answer could not be read")]
    Unreadable,
    #[error("the passkey answered another sign-in (a replayed or stale answer)")]
    WrongChallenge,
    #[error("the passkey answered for another site (origin {0})")]
    WrongOrigin(String),
    #[error("the passkey's answer was signed for another relying party id")]
    WrongRelyingParty,
    #[error("the passkey is not registered here")]
    UnknownCredential,
    #[error("the passkey did not verify the user (PIN or biometric)")]
    NotVerified,
    #[error("the passkey's signature counter went backwards: it may have been cloned")]
    CounterWentBack,
    #[error("the passkey's signature does not match")]
    BadSignature,
    #[error("the passkey was refused: {0}")]
    Other(String),
}

impl PasskeyRefusal {
    fn of(error: WebauthnError, client_data_origin: Option<String>) -> PasskeyRefusal {
        match error {
            WebauthnError::MismatchedChallenge | WebauthnError::ChallengeNotFound => {
                PasskeyRefusal::WrongChallenge
            }
            WebauthnError::InvalidRPOrigin | WebauthnError::CredentialCrossOrigin => {
                PasskeyRefusal::WrongOrigin(client_data_origin.unwrap_or_else(|| "unknown".into()))
            }
            WebauthnError::InvalidRPIDHash => PasskeyRefusal::WrongRelyingParty,
            WebauthnError::CredentialNotFound | WebauthnError::InvalidUserUniqueId => {
                PasskeyRefusal::UnknownCredential
            }
            WebauthnError::UserNotVerified | WebauthnError::UserNotPresent => {
                PasskeyRefusal::NotVerified
            }
            WebauthnError::CredentialPossibleCompromise => PasskeyRefusal::CounterWentBack,
            WebauthnError::AuthenticationFailure => PasskeyRefusal::BadSignature,
            WebauthnError::CredentialAlreadyExists => {
                PasskeyRefusal::Other("that passkey is registered already".into())
            }
            WebauthnError::ParseNOMFailure
            | WebauthnError::ParseBase64Failure(_)
            | WebauthnError::ParseCBORFailure(_)
            | WebauthnError::ParseJSONFailure(_)
            | WebauthnError::ParseInsufficientBytesAvailable => PasskeyRefusal::Unreadable,
            other => PasskeyRefusal::Other(other.to_string()),
        }
    }
}

/// A ceremony begun: the options for `navigator.credentials.create/get` (JSON, sent to the
/// browser) and the state to keep on the server.
#[derive(Debug)]
pub struct Ceremony {
    pub options: Value,
    pub state: String,
}

/// A passkey just registered, verified, ready to be stored.
#[derive(Debug, Clone)]
pub struct Registered {
    /// base64url.
    pub credential_id: String,
    pub credential: String,
    pub counter: i64,
    pub backed_up: bool,
}

/// A stored passkey after a use: its credential as updated.
#[derive(Debug, Clone)]
pub struct Used {
    pub credential: String,
    pub counter: i64,
    pub backed_up: bool,
}

/// A browser's answer to a sign-in, read but not yet verified: which credential (and, for a
/// passwordless sign-in, which user handle) it claims.
pub struct Assertion {
    credential: PublicKeyCredential,
    pub credential_id: String,
    pub user_handle: Option<String>,
}

/// The credential id as the store keys it.
fn credential_key(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

fn to_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("webauthn-rs values serialise")
}

fn stored_passkey(text: &str) -> Result<Passkey, PasskeyRefusal> {
    serde_json::from_str(text)
        .map_err(|e| PasskeyRefusal::Other(format!("the stored passkey is unreadable: {e}")))
}

fn state<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, PasskeyRefusal> {
    serde_json::from_str(text).map_err(|_| PasskeyRefusal::WrongChallenge)
}

/// The origin the browser says it answered for (from the client data), for the message.
fn client_data_origin(client_data_json: &[u8]) -> Option<String> {
    let data: Value = serde_json::from_slice(client_data_json).ok()?;
    data.get("origin")?
        .as_str()
        .map(|o| o.chars().take(200).collect())
}

impl RelyingParty {
    /// berth at `public_url` (`http.host`): the relying party id is its host name, the origin
    /// its scheme, host and port. Browsers offer WebAuthn only to secure origins, so the URL
    /// must be https, or http on `localhost`; an IP address cannot be a relying party id.
    pub fn new(public_url: &str, name: &str) -> Result<RelyingParty, String> {
        let url = Url::parse(public_url).map_err(|e| format!("{public_url:?}: {e}"))?;
        let Some(host) = url.domain() else {
            return Err(format!(
                "{public_url:?} has no host name (passkeys are bound to a domain name; an IP address cannot be a WebAuthn relying party id)"
            ));
        };
        let local = host == "localhost" || host.ends_with(".localhost");
        if url.scheme() != "https" && !local {
            return Err(format!(
                "{public_url:?} is not https (browsers offer passkeys only to https sites, or to http://localhost)"
            ));
        }
        let origin = Url::parse(&url.origin().ascii_serialization())
            .map_err(|e| format!("{public_url:?}: {e}"))?;
        let webauthn = WebauthnBuilder::new(host, &origin)
            .and_then(|b| b.rp_name(name).timeout(CEREMONY_LIFETIME).build())
            .map_err(|e| format!("{public_url:?}: {e}"))?;
        Ok(RelyingParty {
            webauthn,
            id: host.to_string(),
            origin: origin.origin().ascii_serialization(),
        })
    }

    /// The relying party id (the public URL's host name).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The one origin answers must come from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// A new user handle (random, a UUID).
    pub fn new_user_handle() -> String {
        Uuid::new_v4().to_string()
    }

    /// Begins registering a passkey for the user whose handle is `handle`; the user's
    /// passkeys (`existing`, stored credentials) are excluded, so one authenticator is not
    /// registered twice.
    pub fn start_registration(
        &self,
        handle: &str,
        user: &str,
        existing: &[String],
    ) -> Result<Ceremony, PasskeyRefusal> {
        let handle = Uuid::parse_str(handle)
            .map_err(|_| PasskeyRefusal::Other("the user's passkey handle is corrupt".into()))?;
        let exclude = existing
            .iter()
            .map(|text| stored_passkey(text).map(|p| p.cred_id().clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let (options, state) = self
            .webauthn
            .start_passkey_registration(handle, user, user, Some(exclude))
            .map_err(|e| PasskeyRefusal::of(e, None))?;
        let mut options = serde_json::to_value(&options).expect("options serialise");
        // A discoverable credential, so that the passkey can be the whole sign-in.
        if let Some(selection) = options
            .pointer_mut("/publicKey/authenticatorSelection")
            .and_then(Value::as_object_mut)
        {
            selection.insert("residentKey".into(), "preferred".into());
        }
        Ok(Ceremony {
            options,
            state: to_text(&state),
        })
    }

    /// Checks the browser's answer to a registration begun with `state`.
    pub fn finish_registration(
        &self,
        answer: &str,
        state: &str,
    ) -> Result<Registered, PasskeyRefusal> {
        let answer: RegisterPublicKeyCredential =
            serde_json::from_str(answer).map_err(|_| PasskeyRefusal::Unreadable)?;
        let state: PasskeyRegistration = self::state(state)?;
        let origin = client_data_origin(answer.response.client_data_json.as_ref());
        let passkey = self
            .webauthn
            .finish_passkey_registration(&answer, &state)
            .map_err(|e| PasskeyRefusal::of(e, origin))?;
        let credential = serde_json::to_value(&passkey).expect("passkeys serialise");
        Ok(Registered {
            credential_id: credential_key(passkey.cred_id().as_ref()),
            credential: credential.to_string(),
            counter: credential
                .pointer("/cred/counter")
                .and_then(Value::as_i64)
                .unwrap_or_default(),
            backed_up: credential
                .pointer("/cred/backup_state")
                .and_then(Value::as_bool)
                .unwrap_or_default(),
        })
    }

    /// Begins a sign-in with one of the user's passkeys (`passkeys`, stored credentials): the
    /// second factor after a password.
    pub fn start_authentication(&self, passkeys: &[String]) -> Result<Ceremony, PasskeyRefusal> {
        let passkeys = passkeys
            .iter()
            .map(|text| stored_passkey(text))
            .collect::<Result<Vec<_>, _>>()?;
        let (options, state) = self
            .webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(|e| PasskeyRefusal::of(e, None))?;
        Ok(Ceremony {
            options: serde_json::to_value(&options).expect("options serialise"),
            state: to_text(&state),
        })
    }

    /// Begins a passwordless sign-in: any discoverable passkey registered here may answer.
    pub fn start_discoverable(&self) -> Result<Ceremony, PasskeyRefusal> {
        let (mut options, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(|e| PasskeyRefusal::of(e, None))?;
        // Asked for by a button, not offered in the user name field's autofill.
        options.mediation = None;
        Ok(Ceremony {
            options: serde_json::to_value(&options).expect("options serialise"),
            state: to_text(&state),
        })
    }

    /// Reads a browser's answer to a sign-in (nothing is verified yet).
    pub fn read_assertion(answer: &str) -> Result<Assertion, PasskeyRefusal> {
        let credential: PublicKeyCredential =
            serde_json::from_str(answer).map_err(|_| PasskeyRefusal::Unreadable)?;
        let credential_id = credential_key(credential.get_credential_id());
        let user_handle = credential
            .get_user_unique_id()
            .and_then(|bytes| Uuid::from_slice(bytes).ok())
            .map(|u| u.to_string());
        Ok(Assertion {
            credential,
            credential_id,
            user_handle,
        })
    }

    /// Checks an answer to a second-factor sign-in begun with `state`, made with the stored
    /// passkey `stored` (which must be one the sign-in allowed).
    pub fn finish_authentication(
        &self,
        assertion: &Assertion,
        state: &str,
        stored: &str,
    ) -> Result<Used, PasskeyRefusal> {
        let state: PasskeyAuthentication = self::state(state)?;
        let passkey = stored_passkey(stored)?;
        let result = self
            .webauthn
            .finish_passkey_authentication(&assertion.credential, &state)
            .map_err(|e| PasskeyRefusal::of(e, assertion.origin()))?;
        Ok(used(passkey, &result))
    }

    /// Checks an answer to a passwordless sign-in begun with `state`, made with the stored
    /// passkey `stored` (found by the credential id the answer names, and whose user's
    /// handle the answer carries).
    pub fn finish_discoverable(
        &self,
        assertion: &Assertion,
        state: &str,
        stored: &str,
    ) -> Result<Used, PasskeyRefusal> {
        let state: DiscoverableAuthentication = self::state(state)?;
        let passkey = stored_passkey(stored)?;
        let key = DiscoverableKey::from(&passkey);
        let result = self
            .webauthn
            .finish_discoverable_authentication(&assertion.credential, state, &[key])
            .map_err(|e| PasskeyRefusal::of(e, assertion.origin()))?;
        Ok(used(passkey, &result))
    }
}

impl Assertion {
    fn origin(&self) -> Option<String> {
        client_data_origin(self.credential.response.client_data_json.as_ref())
    }
}

/// The stored passkey updated by a use (signature counter, backup state).
fn used(mut passkey: Passkey, result: &webauthn_rs::prelude::AuthenticationResult) -> Used {
    passkey.update_credential(result);
    Used {
        credential: to_text(&passkey),
        counter: i64::from(result.counter()),
        backed_up: result.backup_state(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relying_party_comes_from_the_public_url() {
        let rp = RelyingParty::new("https://registry.example.com:8443/", "berth").unwrap();
        assert_eq!(rp.id(), "registry.example.com");
        assert_eq!(rp.origin(), "https://registry.example.com:8443");
        let local = RelyingParty::new("http://localhost:5000", "berth").unwrap();
        assert_eq!(local.id(), "localhost");
        assert_eq!(local.origin(), "http://localhost:5000");
        for (url, why) in [
            ("http://registry.example.com", "not https"),
            ("https://192.0.2.1", "no host name"),
            ("http://127.0.0.1:5000", "no host name"),
            ("https://[::1]", "no host name"),
            ("not a url", "relative URL"),
        ] {
            let error = RelyingParty::new(url, "berth").unwrap_err();
            assert!(error.contains(why), "{url}: {error}");
        }
    }

    #[test]
    fn registration_asks_for_a_verified_discoverable_credential_and_keeps_its_state_apart() {
        let rp = RelyingParty::new("https://registry.example.com", "berth").unwrap();
        let handle = RelyingParty::new_user_handle();
        let ceremony = rp.start_registration(&handle, "alice", &[]).unwrap();
        let options = &ceremony.options["publicKey"];
        assert_eq!(options["rp"]["id"], "registry.example.com");
        assert_eq!(options["user"]["name"], "alice");
        assert_eq!(
            options["authenticatorSelection"]["residentKey"],
            "preferred"
        );
        assert_eq!(
            options["authenticatorSelection"]["userVerification"],
            "required"
        );
        // The state the server keeps holds the challenge the browser is sent.
        let challenge = options["challenge"].as_str().unwrap();
        let state: Value = serde_json::from_str(&ceremony.state).unwrap();
        assert_eq!(state["rs"]["challenge"], challenge, "{state}");
        assert_eq!(state["rs"]["policy"], "required", "{state}");
    }

    #[test]
    fn answers_that_cannot_be_read_or_belong_to_no_ceremony_are_refused() {
        let rp = RelyingParty::new("https://registry.example.com", "berth").unwrap();
        assert_eq!(
            RelyingParty::read_assertion("{}").err(),
            Some(PasskeyRefusal::Unreadable)
        );
        assert_eq!(
            rp.finish_registration("not json", "{}").err(),
            Some(PasskeyRefusal::Unreadable)
        );
        let discoverable = rp.start_discoverable().unwrap();
        assert_eq!(discoverable.options.get("mediation"), None);
        assert_eq!(
            discoverable.options["publicKey"]["rpId"],
            "registry.example.com"
        );
    }
}
