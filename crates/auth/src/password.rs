//! Passwords: argon2id hashes for berth's own users, and registry:2's htpasswd files.

use std::collections::HashMap;
use std::sync::LazyLock;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};

/// The argon2id hash of `password` in PHC string form, with a fresh random salt.
pub fn hash_password(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes())
        .expect("argon2 hashes any password with its default parameters")
        .to_string()
}

/// Whether `password` matches a hash made by [`hash_password`]. The comparison inside
/// argon2 runs in constant time.
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// An htpasswd file as registry:2 reads it: `user:hash` lines, bcrypt hashes only (what
/// `htpasswd -B` writes).
#[derive(Debug, Clone, Default)]
pub struct Htpasswd {
    entries: HashMap<String, String>,
}

/// A hash to check unknown users against, so that their failures take as long as a known
/// user's (no timing oracle for which names exist). Cost 5 is `htpasswd -B`'s default.
static DUMMY_BCRYPT: LazyLock<String> =
    LazyLock::new(|| bcrypt::hash("no such user", 5).expect("bcrypt hashes"));

impl Htpasswd {
    /// Parses the file; blank lines and `#` comments are skipped. Entries that are not bcrypt
    /// are refused with their line number: registry:2 refuses them too, and MD5/SHA1/crypt
    /// hashes are too weak to keep.
    pub fn parse(text: &str) -> Result<Htpasswd, String> {
        let mut entries = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| format!("line {}: expected user:hash", number + 1))?;
            if !(hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$")) {
                return Err(format!(
                    "line {} ({user}): only bcrypt entries are supported; create them with `htpasswd -B`",
                    number + 1
                ));
            }
            entries.insert(user.to_string(), hash.to_string());
        }
        Ok(Htpasswd { entries })
    }

    pub fn verify(&self, user: &str, password: &str) -> bool {
        match self.entries.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(password, &DUMMY_BCRYPT);
                false
            }
        }
    }

    /// Every entry, as `(user, bcrypt hash)`.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(u, h)| (u.as_str(), h.as_str()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Whether a stored password hash is one berth can check: argon2 (its own) or bcrypt
/// (imported from htpasswd files, kept until the user's next password change).
pub fn verify_stored(password: &str, hash: &str) -> bool {
    if hash.starts_with("$argon2") {
        verify_password(password, hash)
    } else if hash.starts_with("$2") {
        bcrypt::verify(password, hash).unwrap_or(false)
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_round_trip() {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(hash_password("same"), hash_password("same"), "salted");
    }

    #[test]
    fn htpasswd_bcrypt_entries() {
        let hash = bcrypt::hash("s3cret", 4)
            .unwrap()
            .replacen("$2b$", "$2y$", 1);
        let file = Htpasswd::parse(&format!("# users\n\nalice:{hash}\n")).unwrap();
        assert_eq!(file.len(), 1);
        assert!(file.verify("alice", "s3cret"));
        assert!(!file.verify("alice", "nope"));
        assert!(!file.verify("mallory", "s3cret"));
        assert!(verify_stored("s3cret", &hash));
    }

    #[test]
    fn weak_or_malformed_entries_are_refused() {
        let err = Htpasswd::parse("bob:$apr1$abc$def").unwrap_err();
        assert!(err.contains("line 1") && err.contains("bcrypt"), "{err}");
        assert!(Htpasswd::parse("no colon here").is_err());
        assert!(Htpasswd::parse("carol:{SHA}abc=").is_err());
    }

    #[test]
    fn the_dummy_hash_is_a_valid_bcrypt_hash() {
        assert!(bcrypt::verify("x", &DUMMY_BCRYPT).is_ok());
    }
}
