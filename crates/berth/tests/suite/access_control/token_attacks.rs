//! Attacks on registry tokens: forged, misused, replayed.

use super::*;

/// A new EC P-256 key and a self-signed certificate of it, as PEM.
fn key_and_certificate() -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let certificate = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (key.serialize_pem(), certificate.pem())
}

/// A JWT signed by the test, ES256 signatures in berth's canonical low-s form (berth refuses
/// the high-s twin of a valid signature).
fn sign(algorithm: Algorithm, key: &EncodingKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.to_string());
    let token = jsonwebtoken::encode(&header, claims, key).unwrap();
    if algorithm != Algorithm::ES256 {
        return token;
    }
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let signature = base64url_decode(signature);
    let s = &signature[32..];
    if s <= order_minus(s).as_slice() {
        return token;
    }
    let mut low = signature[..32].to_vec();
    low.extend(order_minus(s));
    format!("{signed}.{}", base64url(&low))
}

/// The order of P-256, big-endian.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `n - s` for 32-byte big-endian numbers, `s < n` (the other valid ECDSA `s`).
pub(crate) fn order_minus(s: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut digit = i16::from(P256_ORDER[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(digit < 0);
        if digit < 0 {
            digit += 256;
        }
        out[i] = digit as u8;
    }
    out
}

fn es256_key(pem: &str) -> EncodingKey {
    EncodingKey::from_ec_pem(pem.as_bytes()).unwrap()
}

/// `claims` with some of them replaced (null removes one), and a fresh `jti`.
fn with_claims(claims: &Value, changes: Value) -> Value {
    let mut claims = claims.clone();
    claims["jti"] = format!("test-{}", now()).into();
    for (key, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(key);
        } else {
            claims[key] = value.clone();
        }
    }
    claims
}

#[tokio::test]
async fn forged_and_misused_registry_tokens_are_refused() {
    // berth signs with a key the test knows, so that the test can make tokens with a valid
    // signature and wrong claims.
    let keys = tempfile::tempdir().unwrap();
    let (key_pem, certificate_pem) = key_and_certificate();
    let key_file = keys.path().join("key.pem");
    let certificate_file = keys.path().join("certificate.pem");
    std::fs::write(&key_file, &key_pem).unwrap();
    std::fs::write(&certificate_file, &certificate_pem).unwrap();
    let mut revocable = (String::new(), String::new());
    let registry = Registry::start(
        |data| {
            alice_may(data, "team-a/**", "pull");
            revocable = create_token(data, "user:alice", "laptop", &[]);
        },
        &[
            ("BERTH_AUTH_BERTH_KEY", key_file.to_str().unwrap()),
            (
                "BERTH_AUTH_BERTH_CERTIFICATE",
                certificate_file.to_str().unwrap(),
            ),
        ],
    );
    let admin = registry.admin();
    for (i, repo) in ["team-a/api", "team-a/web", "vault/secrets"]
        .iter()
        .enumerate()
    {
        push_image(&admin, &registry.berth, repo, "v1", i as u64, 0).await;
    }
    let published = registry
        .client
        .get(registry.url("/auth/certificate.pem"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        published, certificate_pem,
        "the configured certificate is published"
    );

    let alice = password("alice");
    let genuine = registry
        .token(Some(("alice", &alice)), &["repository:team-a/api:pull"])
        .await;
    let (header, claims) = jwt_parts(&genuine);
    let kid = header["kid"].as_str().unwrap();
    let signature = genuine.rsplit('.').next().unwrap();
    let api = "/v2/team-a/api/manifests/v1";
    let bearer = |token: &str| format!("Bearer {token}");
    assert_eq!(
        registry.get(api, Some(&bearer(&genuine))).await.status(),
        200
    );
    // A token the test signs with berth's key and the claims berth gives is accepted: the
    // refusals below are about what was changed, not about how the test signs.
    let key = es256_key(&key_pem);
    let own = sign(
        Algorithm::ES256,
        &key,
        kid,
        &with_claims(&claims, json!({})),
    );
    assert_eq!(registry.get(api, Some(&bearer(&own))).await.status(), 200);

    let t = now();
    let public_key_pem = rcgen::KeyPair::from_pem(&key_pem).unwrap().public_key_pem();
    let hs256 = |secret: &str| {
        sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(secret.as_bytes()),
            kid,
            &claims,
        )
    };
    let none_header = json!({"alg": "none", "typ": "JWT", "kid": kid});
    let mut edited_access = claims.clone();
    edited_access["access"][0]["name"] = "vault/secrets".into();
    let attacks: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            jwt_with_signature(&none_header, &claims, ""),
            api,
        ),
        (
            "alg none, signature kept",
            jwt_with_signature(&none_header, &claims, signature),
            api,
        ),
        (
            "HS256 keyed with the published certificate",
            hs256(&published),
            api,
        ),
        (
            "HS256 keyed with the public key",
            hs256(&public_key_pem),
            api,
        ),
        (
            "signed by another key, under berth's kid",
            sign(
                Algorithm::ES256,
                &es256_key(&key_and_certificate().0),
                kid,
                &claims,
            ),
            api,
        ),
        (
            "expired",
            sign(
                Algorithm::ES256,
                &key,
                kid,
                &with_claims(
                    &claims,
                    json!({"iat": t - 3600, "nbf": t - 3600, "exp": t - 600}),
                ),
            ),
            api,
        ),
        (
            "not yet valid",
            sign(
                Algorithm::ES256,
                &key,
                kid,
                &with_claims(&claims, json!({"iat": t, "nbf": t + 600, "exp": t + 900})),
            ),
            api,
        ),
        (
            "no expiry",
            sign(
                Algorithm::ES256,
                &key,
                kid,
                &with_claims(&claims, json!({"exp": null})),
            ),
            api,
        ),
        (
            "wrong audience",
            sign(
                Algorithm::ES256,
                &key,
                kid,
                &with_claims(&claims, json!({"aud": "another-registry"})),
            ),
            api,
        ),
        (
            "wrong issuer",
            sign(
                Algorithm::ES256,
                &key,
                kid,
                &with_claims(&claims, json!({"iss": "someone-else"})),
            ),
            api,
        ),
        (
            "a subject that does not exist",
            sign(
                Algorithm::ES256,
                &key,
                kid,
                &with_claims(&claims, json!({"sub": "user:mallory"})),
            ),
            api,
        ),
        (
            "access claim edited, signature kept",
            jwt_with_signature(&header, &edited_access, signature),
            "/v2/vault/secrets/manifests/v1",
        ),
        (
            "subject edited, signature kept",
            jwt_with_signature(
                &header,
                &with_claims(&claims, json!({"sub": "user:root"})),
                signature,
            ),
            api,
        ),
        ("not a JWT", "not.a.jwt".into(), api),
    ];
    for (attack, token, path) in &attacks {
        let response = registry.get(path, Some(&bearer(token))).await;
        registry.assert_bad_credentials(response, attack).await;
    }

    // A genuine token for team-a/api is no good elsewhere: where alice may get a token, the
    // challenge says which scope to ask for; where she may not, 403.
    let insufficient = |scope: &str| {
        format!(
            "{},error=\"insufficient_scope\"",
            registry.challenge(Some(scope))
        )
    };
    let response = registry
        .get("/v2/team-a/web/manifests/v1", Some(&bearer(&genuine)))
        .await;
    registry
        .assert_unauthorized(
            response,
            &insufficient("repository:team-a/web:pull"),
            "a token for team-a/api used on team-a/web",
        )
        .await;
    let response = registry
        .get("/v2/vault/secrets/manifests/v1", Some(&bearer(&genuine)))
        .await;
    assert_oci_error(response, 403, "DENIED").await;

    // A revoked access token, as a password and at the token endpoint.
    let (id, secret) = revocable;
    assert_eq!(
        registry
            .get(api, Some(&basic("alice", &secret)))
            .await
            .status(),
        200
    );
    registry.token(Some(("alice", &secret)), &[]).await;
    registry.berth.cli(&["token", "revoke", &id]);
    registry
        .assert_bad_credentials(
            registry.get(api, Some(&basic("alice", &secret))).await,
            "revoked access token on /v2/",
        )
        .await;
    registry
        .assert_bad_credentials(
            registry
                .token_response(Some(("alice", &secret)), &["repository:team-a/api:pull"])
                .await,
            "revoked access token at /token",
        )
        .await;
}
