//! Access tokens and refresh tokens: random secrets shown once, stored as a hash.
//!
//! A token reads `berth_<id>_<secret>` (an access token, for CLIs, CI and scripts) or
//! `berthrt_<id>_<secret>` (a refresh token, what `docker login` keeps). The id is public and
//! finds the row; only the SHA-256 of the secret is stored, and it is compared in constant
//! time. The secret has 256 bits of entropy, so a fast hash is enough (no password
//! stretching needed), which keeps token checks cheap.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    AccessToken,
    RefreshToken,
    /// A signed-in session's cookie.
    Session,
}

impl SecretKind {
    fn prefix(self) -> &'static str {
        match self {
            SecretKind::AccessToken => "berth_",
            SecretKind::RefreshToken => "berthrt_",
            SecretKind::Session => "berthse_",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::AccessToken => "access",
            SecretKind::RefreshToken => "refresh",
            SecretKind::Session => "session",
        }
    }
}

/// A freshly made token: the full text to show once, and what to store.
#[derive(Debug, Clone)]
pub struct NewSecret {
    pub text: String,
    pub id: String,
    pub hash: String,
}

/// A token as presented by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedSecret {
    pub kind: SecretKind,
    pub id: String,
    secret: String,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system provides randomness");
    hex::encode(buf)
}

/// Random hex of `bytes` bytes, for one-time passwords and identifiers.
pub fn random_token(bytes: usize) -> String {
    random_hex(bytes)
}

pub fn generate(kind: SecretKind) -> NewSecret {
    let id = random_hex(8);
    let secret = random_hex(32);
    NewSecret {
        text: format!("{}{id}_{secret}", kind.prefix()),
        hash: hash(&secret),
        id,
    }
}

/// What is stored of a secret: its SHA-256, in hex.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` hashes to `stored_hash`, compared in constant time.
pub fn hash_matches(secret: &str, stored_hash: &str) -> bool {
    hash(secret).as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

impl PresentedSecret {
    /// Recognises a token by its shape; anything else (such as a password) is `None`.
    pub fn parse(text: &str) -> Option<PresentedSecret> {
        for kind in [
            SecretKind::RefreshToken,
            SecretKind::Session,
            SecretKind::AccessToken,
        ] {
            if let Some(rest) = text.strip_prefix(kind.prefix()) {
                let (id, secret) = rest.split_once('_')?;
                let is_hex = |s: &str, len: usize| {
                    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
                };
                if is_hex(id, 16) && is_hex(secret, 64) {
                    return Some(PresentedSecret {
                        kind,
                        id: id.to_string(),
                        secret: secret.to_string(),
                    });
                }
                return None;
            }
        }
        None
    }

    /// Whether the secret matches a stored hash, in constant time.
    pub fn matches(&self, stored_hash: &str) -> bool {
        hash_matches(&self.secret, stored_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_match_only_their_hash() {
        let new = generate(SecretKind::AccessToken);
        assert!(new.text.starts_with("berth_"));
        let presented = PresentedSecret::parse(&new.text).unwrap();
        assert_eq!(
            (presented.kind, presented.id.as_str()),
            (SecretKind::AccessToken, new.id.as_str())
        );
        assert!(presented.matches(&new.hash));
        let other = generate(SecretKind::AccessToken);
        assert!(!presented.matches(&other.hash));
        assert!(
            !new.hash.contains(&new.text[new.text.len() - 64..]),
            "the secret is not stored"
        );

        let refresh = generate(SecretKind::RefreshToken);
        assert_eq!(
            PresentedSecret::parse(&refresh.text).unwrap().kind,
            SecretKind::RefreshToken
        );
    }

    #[test]
    fn other_text_is_not_a_token() {
        for text in [
            "password",
            "berth_",
            "berth_xyz_abc",
            "berth_0123456789abcdef_short",
            "Bearer x",
            "",
        ] {
            assert!(PresentedSecret::parse(text).is_none(), "{text:?}");
        }
    }
}
