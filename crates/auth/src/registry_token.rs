//! Registry tokens: the short-lived JWTs of the Docker token authentication protocol.
//!
//! A client that gets `401` from `/v2/` asks the token endpoint for a token covering the
//! scopes it needs, and presents it as `Authorization: Bearer`. The token is signed with
//! ES256 (or RS256 with a configured RSA key) and carries `iss`, `sub`, `aud`, `exp`,
//! `nbf`, `iat`, `jti` and `access`. Its header's `kid` is the key id registry:2 (libtrust)
//! derives from a public key, so a registry:2 configured with berth's certificate as its
//! `rootcertbundle` accepts berth's tokens too.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("signing key: {0}")]
    Key(String),
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// The key registry tokens are signed with, and the certificate that publishes it.
pub struct SigningKey {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    key_pem: String,
    certificate_pem: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// registry:2's (libtrust's) key id: the SHA-256 of the DER-encoded public key
/// (SubjectPublicKeyInfo), its first 240 bits in base32, in twelve groups of four.
pub fn libtrust_key_id(public_key_der: &[u8]) -> String {
    let digest = Sha256::digest(public_key_der);
    let encoded = data_encoding::BASE32_NOPAD.encode(&digest[..30]);
    encoded
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("base32 is ASCII"))
        .collect::<Vec<_>>()
        .join(":")
}

impl SigningKey {
    /// A new P-256 key with a self-signed certificate, for when none is configured.
    pub fn generate() -> Result<SigningKey, TokenError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| TokenError::Key(e.to_string()))?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| TokenError::Key(e.to_string()))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "berth registry token signer");
        let certificate = params
            .self_signed(&key)
            .map_err(|e| TokenError::Key(e.to_string()))?;
        SigningKey::from_pem(&key.serialize_pem(), &certificate.pem())
    }

    /// A PKCS#8 PEM private key (EC P-256 or RSA) and the PEM certificate of its public key.
    pub fn from_pem(key_pem: &str, certificate_pem: &str) -> Result<SigningKey, TokenError> {
        let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| {
            TokenError::Key(format!(
                "reading the private key (PKCS#8 PEM expected): {e}"
            ))
        })?;
        let (algorithm, encoding, decoding) = if key.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256 {
            let encoding = EncodingKey::from_ec_pem(key_pem.as_bytes())
                .map_err(|e| TokenError::Key(e.to_string()))?;
            (
                Algorithm::ES256,
                encoding,
                DecodingKey::from_ec_der(key.public_key_raw()),
            )
        } else if key.algorithm() == &rcgen::PKCS_RSA_SHA256 {
            let encoding = EncodingKey::from_rsa_pem(key_pem.as_bytes())
                .map_err(|e| TokenError::Key(e.to_string()))?;
            (
                Algorithm::RS256,
                encoding,
                DecodingKey::from_rsa_der(key.public_key_raw()),
            )
        } else {
            return Err(TokenError::Key(
                "the key must be EC P-256 (ES256) or RSA (RS256)".into(),
            ));
        };
        let public_key = rcgen::PublicKeyData::subject_public_key_info(&key);
        let certificate = CertificateDer::from_pem_slice(certificate_pem.as_bytes())
            .map_err(|e| TokenError::Key(format!("reading the certificate: {e}")))?;
        // The certificate embeds its subject's public key verbatim.
        if !certificate
            .windows(public_key.len())
            .any(|w| w == public_key.as_slice())
        {
            return Err(TokenError::Key(
                "the certificate is not the private key's".into(),
            ));
        }
        Ok(SigningKey {
            algorithm,
            encoding,
            decoding,
            kid: libtrust_key_id(&public_key),
            key_pem: key_pem.to_string(),
            certificate_pem: certificate_pem.to_string(),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The private key, to keep it (berth stores a generated key in its database so that
    /// every instance signs with the same one).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }
}

/// One resource in a token's `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceAccess {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// `user:alice`, `service-account:ci`, or empty for an anonymous token.
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<ResourceAccess>,
    /// berth's own claim: the id of the access or refresh token this token was issued
    /// through. Its limits (scopes) keep applying to whatever the token is used for, and the
    /// token stops working when that one is revoked. Other verifiers ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub berth_via: Option<String>,
    /// berth's own claim: when the subject was created (Unix ms). A token whose subject has
    /// since been deleted and created again under the same name stands for nobody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub berth_created: Option<i64>,
}

/// A token as the token endpoint returns it.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
    /// RFC 3339, as the protocol's `issued_at`.
    pub issued_at: String,
}

/// Issues and verifies registry tokens for one service.
pub struct RegistryTokens {
    key: SigningKey,
    issuer: String,
    service: String,
    lifetime: Duration,
    validation: Validation,
}

/// Clock skew tolerated between the signer and whoever checks the token.
const LEEWAY_SECS: u64 = 30;

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl RegistryTokens {
    pub fn new(key: SigningKey, issuer: &str, service: &str, lifetime: Duration) -> RegistryTokens {
        let mut validation = Validation::new(key.algorithm);
        // Only the key's own algorithm: no `none`, no HMAC keyed with the public key.
        validation.algorithms = vec![key.algorithm];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[service]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        RegistryTokens {
            key,
            issuer: issuer.to_string(),
            service: service.to_string(),
            lifetime,
            validation,
        }
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// A token for `subject` (created at `subject_created`, Unix ms, when known).
    pub fn issue(
        &self,
        subject: &str,
        subject_created: Option<i64>,
        access: Vec<ResourceAccess>,
        via: Option<&str>,
        now: SystemTime,
    ) -> IssuedToken {
        let issued = unix_seconds(now);
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: subject.to_string(),
            aud: self.service.clone(),
            exp: issued + self.lifetime.as_secs(),
            nbf: issued.saturating_sub(LEEWAY_SECS),
            iat: issued,
            jti: crate::secret::random_token(16),
            access,
            berth_via: via.map(str::to_string),
            berth_created: subject_created,
        };
        let mut header = Header::new(self.key.algorithm);
        header.kid = Some(self.key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.key.encoding)
            .expect("signing with a loaded key succeeds");
        let token = match self.key.algorithm {
            Algorithm::ES256 => with_low_s(&token),
            _ => token,
        };
        IssuedToken {
            token,
            expires_in: self.lifetime.as_secs(),
            issued_at: rfc3339(issued),
        }
    }

    /// Checks a presented token: signature with this key (and only its algorithm), `kid`,
    /// issuer, audience, expiry and not-before.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        if header.kid.as_deref() != Some(self.key.kid.as_str()) {
            return Err(TokenError::Invalid("signed by an unknown key".into()));
        }
        if self.key.algorithm == Algorithm::ES256 && !has_low_s(token) {
            return Err(TokenError::Invalid(
                "the signature is not in its canonical (low-s) form".into(),
            ));
        }
        jsonwebtoken::decode::<Claims>(token, &self.key.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }
}

/// The order of the P-256 group, big-endian.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// The ES256 signature (`r || s`, 64 bytes) of a compact JWS, decoded.
fn es256_signature(token: &str) -> Option<(&str, Vec<u8>)> {
    let (signed, signature) = token.rsplit_once('.')?;
    let signature = data_encoding::BASE64URL_NOPAD
        .decode(signature.as_bytes())
        .ok()?;
    (signature.len() == 64).then_some((signed, signature))
}

/// Whether `s` (32 bytes, big-endian) is at most n/2: `2s <= n`.
fn is_low(s: &[u8]) -> bool {
    // Compare 2s with n without overflow: 2s > n iff s > n - s.
    let complement = order_minus(s);
    s <= complement.as_slice()
}

/// `n - s` for 32-byte big-endian numbers with `s < n`.
fn order_minus(s: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0u16;
    for i in (0..32).rev() {
        let subtrahend = u16::from(s[i]) + borrow;
        let minuend = u16::from(P256_ORDER[i]);
        if minuend >= subtrahend {
            out[i] = (minuend - subtrahend) as u8;
            borrow = 0;
        } else {
            out[i] = (minuend + 256 - subtrahend) as u8;
            borrow = 1;
        }
    }
    out
}

/// Whether an ES256 token's signature has the low `s` of the two that verify (`s` and
/// `n - s` are both valid ECDSA signatures of the same message). Accepting only one keeps a
/// token's text unique: a copy with the other `s` is not a second valid token, and caches
/// and logs keyed by the token's text see one token.
fn has_low_s(token: &str) -> bool {
    es256_signature(token).is_some_and(|(_, signature)| is_low(&signature[32..]))
}

/// The token with its signature's `s` replaced by `n - s` when it is the high one (the
/// signer picks either at random).
fn with_low_s(token: &str) -> String {
    match es256_signature(token) {
        Some((signed, signature)) if !is_low(&signature[32..]) => {
            let mut canonical = signature[..32].to_vec();
            canonical.extend_from_slice(&order_minus(&signature[32..]));
            format!(
                "{signed}.{}",
                data_encoding::BASE64URL_NOPAD.encode(&canonical)
            )
        }
        _ => token.to_string(),
    }
}

/// Unix seconds as RFC 3339 UTC (`2026-11-22T06:55:54Z`).
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let seconds = unix % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> RegistryTokens {
        RegistryTokens::new(
            SigningKey::generate().unwrap(),
            "berth",
            "registry.test",
            Duration::from_secs(300),
        )
    }

    fn access(name: &str, actions: &[&str]) -> Vec<ResourceAccess> {
        vec![ResourceAccess {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }]
    }

    fn b64(value: &serde_json::Value) -> String {
        data_encoding::BASE64URL_NOPAD.encode(value.to_string().as_bytes())
    }

    #[test]
    fn issued_tokens_verify_with_their_claims() {
        let tokens = tokens();
        let issued = tokens.issue(
            "user:alice",
            None,
            access("team/app", &["pull", "push"]),
            Some("0123456789abcdef"),
            SystemTime::now(),
        );
        assert_eq!(issued.expires_in, 300);
        let claims = tokens.verify(&issued.token).unwrap();
        assert_eq!(
            (
                claims.iss.as_str(),
                claims.sub.as_str(),
                claims.aud.as_str()
            ),
            ("berth", "user:alice", "registry.test")
        );
        assert_eq!(claims.access, access("team/app", &["pull", "push"]));
        assert_eq!(claims.exp - claims.iat, 300);
        assert_eq!(claims.jti.len(), 32);
        assert_eq!(claims.berth_via.as_deref(), Some("0123456789abcdef"));
        let header = jsonwebtoken::decode_header(&issued.token).unwrap();
        assert_eq!(
            (header.alg, header.kid.as_deref()),
            (Algorithm::ES256, Some(tokens.signing_key().kid()))
        );
    }

    #[test]
    fn attacks_are_rejected() {
        let tokens = tokens();
        let now = SystemTime::now();
        let good = tokens
            .issue("user:alice", None, access("a", &["pull"]), None, now)
            .token;
        let parts: Vec<&str> = good.split('.').collect();
        let claims: serde_json::Value = serde_json::from_slice(
            &data_encoding::BASE64URL_NOPAD
                .decode(parts[1].as_bytes())
                .unwrap(),
        )
        .unwrap();
        let kid = tokens.signing_key().kid().to_string();

        // alg: none, unsigned.
        let none = format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg": "none", "typ": "JWT", "kid": kid})),
            parts[1]
        );
        assert!(tokens.verify(&none).is_err(), "alg none");

        // HS256 keyed with the public certificate.
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some(kid.clone());
        let forged = jsonwebtoken::encode(
            &hs,
            &claims,
            &EncodingKey::from_secret(tokens.signing_key().certificate_pem().as_bytes()),
        )
        .unwrap();
        assert!(tokens.verify(&forged).is_err(), "HS256 with the public key");

        // Another key, with our kid.
        let other = SigningKey::generate().unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.clone());
        let wrong_key = jsonwebtoken::encode(&header, &claims, &other.encoding).unwrap();
        assert!(tokens.verify(&wrong_key).is_err(), "wrong key");

        // An edited access claim keeps the old signature.
        let mut edited = claims.clone();
        edited["access"][0]["name"] = "b".into();
        let tampered = format!("{}.{}.{}", parts[0], b64(&edited), parts[2]);
        assert!(tokens.verify(&tampered).is_err(), "edited access");

        // Expired, not yet valid, wrong audience, wrong issuer.
        let long_ago = now - Duration::from_secs(3600);
        assert!(
            tokens
                .verify(&tokens.issue("user:a", None, vec![], None, long_ago).token)
                .is_err(),
            "expired"
        );
        let later = now + Duration::from_secs(3600);
        assert!(
            tokens
                .verify(&tokens.issue("user:a", None, vec![], None, later).token)
                .is_err(),
            "not yet valid"
        );
        let other_service = RegistryTokens::new(
            SigningKey::from_pem(
                tokens.signing_key().key_pem(),
                tokens.signing_key().certificate_pem(),
            )
            .unwrap(),
            "berth",
            "another.registry",
            Duration::from_secs(300),
        );
        assert!(
            tokens
                .verify(&other_service.issue("user:a", None, vec![], None, now).token)
                .is_err(),
            "audience"
        );
        let other_issuer = RegistryTokens::new(
            SigningKey::from_pem(
                tokens.signing_key().key_pem(),
                tokens.signing_key().certificate_pem(),
            )
            .unwrap(),
            "someone-else",
            "registry.test",
            Duration::from_secs(300),
        );
        assert!(
            tokens
                .verify(&other_issuer.issue("user:a", None, vec![], None, now).token)
                .is_err(),
            "issuer"
        );
        assert!(tokens.verify("garbage").is_err());
        assert!(tokens.verify("").is_err());
    }

    #[test]
    fn es256_signatures_are_low_s_and_the_high_twin_is_refused() {
        let tokens = tokens();
        for _ in 0..32 {
            let token = tokens
                .issue(
                    "user:alice",
                    None,
                    access("a/b", &["pull"]),
                    None,
                    SystemTime::now(),
                )
                .token;
            assert!(has_low_s(&token), "issued with a high s");
            assert!(tokens.verify(&token).is_ok());
            let (signed, signature) = es256_signature(&token).unwrap();
            let mut twin = signature[..32].to_vec();
            twin.extend_from_slice(&order_minus(&signature[32..]));
            let twin = format!("{signed}.{}", data_encoding::BASE64URL_NOPAD.encode(&twin));
            assert!(
                tokens.verify(&twin).is_err(),
                "the n - s twin of a valid signature verifies"
            );
        }
        // n - (n - s) = s; small numbers.
        let mut one = [0u8; 32];
        one[31] = 1;
        assert_eq!(order_minus(&order_minus(&one)), one);
        assert!(is_low(&one));
        assert!(!is_low(&order_minus(&one)));
    }

    #[test]
    fn keys_and_certificates_must_belong_together() {
        let one = SigningKey::generate().unwrap();
        let two = SigningKey::generate().unwrap();
        assert!(SigningKey::from_pem(one.key_pem(), two.certificate_pem()).is_err());
        let again = SigningKey::from_pem(one.key_pem(), one.certificate_pem()).unwrap();
        assert_eq!(again.kid(), one.kid());
        assert!(SigningKey::from_pem("not a key", one.certificate_pem()).is_err());
    }

    #[test]
    fn libtrust_key_ids_have_twelve_groups() {
        let kid = SigningKey::generate().unwrap().kid().to_string();
        let groups: Vec<&str> = kid.split(':').collect();
        assert_eq!(groups.len(), 12, "{kid}");
        assert!(groups.iter().all(|g| {
            g.len() == 4
                && g.bytes()
                    .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        }));
        // A fixed input: the id depends only on the DER bytes.
        assert_eq!(libtrust_key_id(b"x"), libtrust_key_id(b"x"));
        assert_ne!(libtrust_key_id(b"x"), libtrust_key_id(b"y"));
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_330_554), "2026-11-22T06:55:54Z");
    }
}
