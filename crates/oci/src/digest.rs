//! Content digests (`sha256:<64 hex>`, `sha512:<128 hex>`) and the hasher that produces them.

use std::fmt;
use std::str::FromStr;

use sha2::digest::common::hazmat::SerializableState;
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{ErrorCode, RegistryError};

/// A digest algorithm berth can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated digest. Its encoded part is lowercase hex of the algorithm's exact length,
/// so it is safe to use as a path component or a database key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    /// The whole `algorithm:hex` string, kept to hand out `&str` without formatting.
    text: String,
}

/// Why a string is not a usable digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestError {
    /// Not of the form `algorithm:encoded` at all.
    Malformed,
    /// Well-formed, but an algorithm berth does not verify.
    UnsupportedAlgorithm(String),
    /// A known algorithm, but the encoded part is not lowercase hex of the right length.
    BadEncoding(Algorithm),
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestError::Malformed => f.write_str("digest must have the form <algorithm>:<hex>"),
            DigestError::UnsupportedAlgorithm(a) => {
                write!(
                    f,
                    "unsupported digest algorithm {a:?} (supported: sha256, sha512)"
                )
            }
            DigestError::BadEncoding(a) => write!(
                f,
                "{} digest must be {} lowercase hex characters",
                a.as_str(),
                a.hex_len()
            ),
        }
    }
}

impl std::error::Error for DigestError {}

impl From<DigestError> for RegistryError {
    fn from(err: DigestError) -> Self {
        RegistryError::new(ErrorCode::DigestInvalid, "invalid digest")
            .with_detail(serde_json::Value::from(err.to_string()))
    }
}

impl Digest {
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let (algorithm, encoded) = s.split_once(':').ok_or(DigestError::Malformed)?;
        if !is_valid_algorithm_syntax(algorithm) || !is_valid_encoded_syntax(encoded) {
            return Err(DigestError::Malformed);
        }
        let algorithm = match algorithm {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => return Err(DigestError::UnsupportedAlgorithm(other.to_string())),
        };
        let is_lower_hex = encoded
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if encoded.len() != algorithm.hex_len() || !is_lower_hex {
            return Err(DigestError::BadEncoding(algorithm));
        }
        Ok(Digest {
            algorithm,
            text: s.to_string(),
        })
    }

    /// The digest of `bytes` with `algorithm`, for content held in memory (manifests).
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut hasher = DigestHasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex part after `algorithm:`.
    pub fn hex(&self) -> &str {
        &self.text[self.algorithm.as_str().len() + 1..]
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// `[a-z0-9]+([+._-][a-z0-9]+)*`, the specification's algorithm grammar.
fn is_valid_algorithm_syntax(s: &str) -> bool {
    !s.is_empty()
        && s.split(['+', '.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// `[a-zA-Z0-9=_-]+`, the specification's encoded grammar.
fn is_valid_encoded_syntax(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.text)
    }
}

serde_as_validated_text!(Digest, |d| d.text.as_str());

/// An incremental hasher for one of the supported algorithms.
///
/// Its state can be saved and restored ([`DigestHasher::save_state`]), so that a chunked
/// upload keeps hashing where it stopped after a restart, or on another instance, without
/// reading back what was already received.
#[derive(Clone)]
pub enum DigestHasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl DigestHasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => DigestHasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => DigestHasher::Sha512(Sha512::new()),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            DigestHasher::Sha256(_) => Algorithm::Sha256,
            DigestHasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            DigestHasher::Sha256(h) => h.update(data),
            DigestHasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            DigestHasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            DigestHasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest {
            algorithm,
            text: format!("{}:{hex}", algorithm.as_str()),
        }
    }

    /// The hasher's state as bytes: a tag for the algorithm, then the state itself.
    pub fn save_state(&self) -> Vec<u8> {
        let (tag, state): (u8, &[u8]) = match self {
            DigestHasher::Sha256(h) => (1, &h.serialize()[..]),
            DigestHasher::Sha512(h) => (2, &h.serialize()[..]),
        };
        let mut out = Vec::with_capacity(1 + state.len());
        out.push(tag);
        out.extend_from_slice(state);
        out
    }

    /// Restores a state saved by [`DigestHasher::save_state`]; `None` if it is not one.
    pub fn restore_state(bytes: &[u8]) -> Option<Self> {
        let (&tag, state) = bytes.split_first()?;
        match tag {
            1 => Sha256::deserialize(state.try_into().ok()?)
                .ok()
                .map(DigestHasher::Sha256),
            2 => Sha512::deserialize(state.try_into().ok()?)
                .ok()
                .map(DigestHasher::Sha512),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_valid_digests() {
        let d = Digest::parse(EMPTY_SHA256).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.hex().len(), 64);
        assert_eq!(d.to_string(), EMPTY_SHA256);
        let long = format!("sha512:{}", "a".repeat(128));
        assert_eq!(Digest::parse(&long).unwrap().algorithm(), Algorithm::Sha512);
    }

    #[test]
    fn rejects_malformed_digests() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            ":abc",
            "sha256:totallywrong",
            "SHA256:abc",
            "sha256:../../etc",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(
            Digest::parse("sha256:totallywrong"),
            Err(DigestError::BadEncoding(Algorithm::Sha256))
        );
        assert_eq!(
            Digest::parse(&format!("sha256:{}", "A".repeat(64))),
            Err(DigestError::BadEncoding(Algorithm::Sha256))
        );
        assert_eq!(
            Digest::parse(&format!("sha256:{}", "a".repeat(63))),
            Err(DigestError::BadEncoding(Algorithm::Sha256))
        );
        assert_eq!(Digest::parse("sha256:a/b"), Err(DigestError::Malformed));
    }

    #[test]
    fn reports_unsupported_algorithms() {
        assert_eq!(
            Digest::parse("md5:d41d8cd98f00b204e9800998ecf8427e"),
            Err(DigestError::UnsupportedAlgorithm("md5".into()))
        );
        assert_eq!(
            Digest::parse("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"),
            Err(DigestError::UnsupportedAlgorithm("multihash+base58".into()))
        );
    }

    #[test]
    fn hashes_content() {
        assert_eq!(Digest::of(Algorithm::Sha256, b"").to_string(), EMPTY_SHA256);
        assert_eq!(
            Digest::of(Algorithm::Sha256, b"hello world").hex(),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert!(
            Digest::of(Algorithm::Sha512, b"")
                .as_str()
                .starts_with("sha512:cf83e1357eefb8bd")
        );
    }

    #[test]
    fn hasher_state_survives_a_round_trip() {
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let mut first = DigestHasher::new(algorithm);
            first.update(b"hello ");
            let saved = first.save_state();
            let mut resumed = DigestHasher::restore_state(&saved).unwrap();
            resumed.update(b"world");
            assert_eq!(resumed.finish(), Digest::of(algorithm, b"hello world"));
        }
        assert!(DigestHasher::restore_state(&[]).is_none());
        assert!(DigestHasher::restore_state(&[1, 2, 3]).is_none());
        assert!(DigestHasher::restore_state(&[9; 105]).is_none());
    }
}
