//! The pages, one module per area.

pub mod access;
pub mod activity;
pub mod admin;
pub mod admin_audit;
pub mod admin_lifecycle;
pub mod admin_remotes;
pub mod admin_rules;
pub mod delete;
pub mod home;
pub mod image;
pub mod profile;
pub mod repository;
