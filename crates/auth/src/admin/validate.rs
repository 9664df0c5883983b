//! Checking what an operator asks for before it reaches the store.

use berth_meta::identity::TokenOwner;

use super::{AdminError, AdminResult};
use crate::pattern::Pattern;
use crate::policy::Grant;

/// Passwords shorter than this are refused: berth is often reachable from a whole network.
pub const MIN_PASSWORD_LENGTH: usize = 8;
/// Longer passwords are refused (argon2 would hash megabytes happily; nobody types them).
pub const MAX_PASSWORD_LENGTH: usize = 1024;
const MAX_NAME_LENGTH: usize = 64;
pub(super) const MAX_DESCRIPTION_LENGTH: usize = 1024;
pub(super) const MAX_TOKEN_NAME_LENGTH: usize = 128;

/// Parses `user:<name>` or `service-account:<name>`.
pub fn parse_owner(text: &str) -> AdminResult<TokenOwner> {
    match text.split_once(':') {
        Some(("user", name)) => Ok(TokenOwner::User(valid_name("user", name)?.to_string())),
        Some(("service-account", name)) => Ok(TokenOwner::ServiceAccount(
            valid_name("service account", name)?.to_string(),
        )),
        _ => Err(AdminError::Invalid(format!(
            "invalid token owner {text:?}: expected user:<name> or service-account:<name>"
        ))),
    }
}

/// Names of users, teams and service accounts: what fits in a Basic credential, a policy
/// subject, a JWT `sub` and a log line without quoting: letters, digits and `._-@`, starting
/// with a letter or digit, at most 64 characters. (`:` would break Basic auth and subjects.)
pub fn valid_name<'a>(what: &str, name: &'a str) -> AdminResult<&'a str> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LENGTH
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(name)
    } else {
        Err(AdminError::Invalid(format!(
            "invalid {what} name {name:?}: use 1 to {MAX_NAME_LENGTH} letters, digits and . _ - @, starting with a letter or digit"
        )))
    }
}

pub(super) fn valid_password(password: &str) -> AdminResult<&str> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_LENGTH {
        return Err(AdminError::Invalid(format!(
            "the password is too short: at least {MIN_PASSWORD_LENGTH} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_LENGTH {
        return Err(AdminError::Invalid(format!(
            "the password is too long: at most {MAX_PASSWORD_LENGTH} bytes"
        )));
    }
    if password.chars().any(char::is_control) {
        return Err(AdminError::Invalid(
            "the password contains control characters".into(),
        ));
    }
    Ok(password)
}

pub(super) fn valid_email(email: &str) -> AdminResult<&str> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if ok {
        Ok(email)
    } else {
        Err(AdminError::Invalid(format!(
            "invalid email address {email:?}"
        )))
    }
}

pub(super) fn valid_text<'a>(what: &str, text: &'a str, max: usize) -> AdminResult<&'a str> {
    if text.len() > max || text.chars().any(char::is_control) {
        return Err(AdminError::Invalid(format!(
            "invalid {what}: at most {max} bytes, no control characters"
        )));
    }
    Ok(text)
}

/// Checks an action list (`pull,push`, `delete`, `admin`, `*`) and returns it normalised.
pub(super) fn valid_actions(list: &str) -> AdminResult<String> {
    Grant::parse(list)
        .map(|grant| grant.to_string())
        .ok_or_else(|| {
            AdminError::Invalid(format!(
                "invalid actions {list:?}: a comma-separated list of pull, push, delete, or admin"
            ))
        })
}

pub(super) fn valid_pattern(pattern: &str) -> AdminResult<String> {
    Pattern::parse(pattern)
        .map(|p| p.to_string())
        .map_err(|e| AdminError::Invalid(format!("invalid repository pattern {pattern:?}: {e}")))
}

pub(super) fn not_found(what: &str, name: &str) -> AdminError {
    AdminError::NotFound(format!("no {what} named {name:?}"))
}

/// Turns a store's "no such row" (`false`) into a not-found error.
pub(super) fn found(exists: bool, what: &str, name: &str) -> AdminResult<()> {
    if exists {
        Ok(())
    } else {
        Err(not_found(what, name))
    }
}
