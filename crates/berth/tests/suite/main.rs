//! berth's end-to-end tests, one binary: each module is a behaviour suite run against the real
//! `berth` binary over a real socket, with real clients and servers where the behaviour
//! involves them. A test's name says which promise it checks.

mod support;

mod access_control;
mod admin_api;
mod auth_clients;
mod bad_input;
mod cache;
mod crash_safety;
mod dashboard;
mod dashboard_admin;
mod dashboard_lifecycle;
mod dashboard_security;
mod deployment_files;
mod distribution_api;
mod events;
mod garbage_collection;
mod hardening;
mod import_registry_v2;
mod integrity;
mod ldap_sign_in;
mod observability;
mod oci_client_crate;
mod oidc_sign_in;
mod operations;
mod passkeys;
mod password_reset;
mod production_backends;
mod quotas;
mod real_clients;
mod retention;
mod sign_in;
mod storage_backends;
mod tag_history;
mod tag_immutability;
