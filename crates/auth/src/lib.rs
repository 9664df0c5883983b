//! Identity and access.
//!
//! Everything but [`service`], [`admin`], [`audit`], [`ldap`] and [`oidc`] is free of I/O:
//!
//! * [`scope`]: the actions a registry request needs, and the `scope` strings of the Docker
//!   token protocol (`repository:team/app:pull,push`).
//! * [`pattern`]: glob patterns over repository names (`team-a/**`, `*/public-*`).
//! * [`policy`]: who may do what where, as a pure function of identity, repository and rules.
//! * [`password`]: argon2id password hashes, and registry:2's htpasswd files (bcrypt).
//! * [`secret`]: access and refresh tokens: random, shown once, stored hashed.
//! * [`registry_token`]: the short-lived JWTs of the Docker token protocol, signed with a key
//!   whose id registry:2 recognises, so berth can also be the token server of a registry:2.
//! * [`throttle`]: backing off failed logins per user and per client address.
//! * [`totp`]: second factors: TOTP authenticator codes (RFC 6238) and recovery codes.
//! * [`passkey`]: passkeys (WebAuthn through `webauthn-rs`): berth as a relying party, its
//!   registration and sign-in ceremonies.
//! * [`external`]: what a directory or an OpenID provider says about a user, and how its
//!   groups become teams.
//!
//! [`ldap`] asks an LDAP directory and [`oidc`] OpenID providers (I/O, used by the access
//! service and the dashboard).
//!
//! [`admin::Administration`] is the one write path for managing identities and rules (the
//! CLI, the admin API, the dashboard and jobs alike): it takes the acting [`admin::Actor`],
//! validates, writes the audit entry and empties the access caches of every instance.
//!
//! [`service::AccessService`] puts them together over the identity store: it authenticates
//! callers, authorizes requests, issues tokens and records every decision through [`audit`].

pub mod admin;
pub mod audit;
pub mod external;
pub mod ldap;
pub mod oidc;
pub mod passkey;
pub mod password;
pub mod pattern;
pub mod policy;
pub mod registry_token;
pub mod scope;
pub mod secret;
pub mod service;
pub mod throttle;
pub mod totp;

pub use pattern::Pattern;
pub use policy::{Principal, Rule, Subject};
pub use scope::{Action, ActionSet, Scope};
pub use service::{AccessService, AuthFailure, Caller, Decision, Mode, TokenService};
