//! Repository glob patterns: the OCI domain's (`berth_oci::pattern`), used by policy rules.

pub use berth_oci::pattern::{Pattern, PatternError};
