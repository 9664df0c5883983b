//! Second factors, free of I/O: TOTP authenticators (RFC 6238: HMAC-SHA-1, six digits,
//! 30-second steps, one step of clock skew either way, through `totp-rs`) and one-time
//! recovery codes.
//!
//! A code is checked to the time step it belongs to, so that the caller can accept each step
//! once (`SecondFactorStore::use_totp_step`); recovery codes are random, shown once and kept
//! as argon2 hashes (`password::hash_password`), like passwords.

use totp_rs::{Algorithm, Secret, Totp};

/// Digits of a code.
pub const DIGITS: usize = 6;
/// Seconds of a time step.
pub const STEP_SECONDS: u64 = 30;
/// Steps of clock skew accepted either way.
pub const SKEW_STEPS: u16 = 1;
/// Recovery codes made at once.
pub const RECOVERY_CODES: usize = 10;
/// Bytes of a new secret (160 bits, RFC 4226's recommendation).
const SECRET_BYTES: usize = 20;

/// A new random secret, base32 without padding (what authenticator apps take).
pub fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    Secret::from(bytes.to_vec()).to_base32()
}

fn authenticator(secret: &str, issuer: &str, account: &str) -> Option<Totp> {
    let secret = Secret::try_from_base32(secret).ok()?;
    totp_rs::Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_skew(SKEW_STEPS)
        .with_step_duration(STEP_SECONDS)
        .with_secret(secret)
        .with_issuer(Some(issuer.replace(':', " ")))
        .with_account_name(account.replace(':', " "))
        .build()
        .ok()
}

/// The `otpauth://totp/...` URI an authenticator app scans (as a QR code) to add the account.
pub fn provisioning_uri(secret: &str, issuer: &str, account: &str) -> Option<String> {
    authenticator(secret, issuer, account)?.to_url().ok()
}

/// Whether `code` has the shape of an authenticator code (six digits; spaces ignored).
pub fn is_totp_code(code: &str) -> bool {
    let digits: Vec<char> = code.chars().filter(|c| !c.is_whitespace()).collect();
    digits.len() == DIGITS && digits.iter().all(char::is_ascii_digit)
}

/// The time step `code` belongs to, if it is the code of `secret` for the step of `now`
/// (Unix seconds) or the one before or after it. Compared in constant time.
pub fn check(secret: &str, code: &str, now: u64) -> Option<i64> {
    if !is_totp_code(code) {
        return None;
    }
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let step = authenticator(secret, "berth", "check")?.check(&code, now)?;
    i64::try_from(step).ok()
}

/// The code of `secret` at `time` (Unix seconds), as an authenticator app shows it.
pub fn code_at(secret: &str, time: u64) -> Option<String> {
    Some(
        authenticator(secret, "berth", "code")?
            .generate(time)
            .to_string(),
    )
}

/// Ten new recovery codes, `xxxxx-xxxxx` in lower-case base32 (50 random bits each).
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 10];
            getrandom::fill(&mut bytes).expect("the operating system provides randomness");
            // One base32 letter per byte (5 bits of it): 10 letters.
            let letters: String = bytes
                .iter()
                .map(|b| b"abcdefghijklmnopqrstuvwxyz234567"[usize::from(b & 31)] as char)
                .collect();
            format!("{}-{}", &letters[..5], &letters[5..])
        })
        .collect()
}

/// A recovery code as typed (any case, with or without the dash and spaces), in the form
/// that is hashed.
pub fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_checked_with_one_step_of_skew_and_name_their_step() {
        let secret = new_secret();
        let now = 1_800_000_015;
        let step = (now / STEP_SECONDS) as i64;
        let current = code_at(&secret, now).unwrap();
        assert_eq!(check(&secret, &current, now), Some(step));
        let earlier = code_at(&secret, now - STEP_SECONDS).unwrap();
        assert_eq!(check(&secret, &earlier, now), Some(step - 1));
        let later = code_at(&secret, now + STEP_SECONDS).unwrap();
        assert_eq!(check(&secret, &later, now), Some(step + 1));
        let too_old = code_at(&secret, now - 2 * STEP_SECONDS).unwrap();
        if too_old != current && too_old != earlier && too_old != later {
            assert_eq!(check(&secret, &too_old, now), None);
        }
        assert_eq!(
            check(
                &secret,
                &format!("{} {}", &current[..3], &current[3..]),
                now
            ),
            Some(step)
        );
        for bad in ["", "12345", "1234567", "abcdef", "12345x"] {
            assert_eq!(check(&secret, bad, now), None, "{bad:?}");
        }
        assert_eq!(check("not base32!", &current, now), None);
    }

    #[test]
    fn the_provisioning_uri_carries_the_secret_issuer_and_account() {
        let secret = new_secret();
        assert_eq!(secret.len(), 32);
        let uri = provisioning_uri(&secret, "berth", "alice").unwrap();
        assert!(uri.starts_with("otpauth://totp/berth:alice?"), "{uri}");
        assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    }

    #[test]
    fn recovery_codes_are_distinct_and_normalize_as_typed() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), RECOVERY_CODES);
        let code = &codes[0];
        assert_eq!(code.len(), 11);
        assert_eq!(
            normalize_recovery_code(&format!(" {} ", code.to_uppercase())),
            code.replace('-', "")
        );
    }
}
