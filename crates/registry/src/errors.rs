//! Turning storage and database failures into errors for the client.

use std::io;

use berth_meta::{BrokenReference, MetaError};
use berth_oci::{ErrorCode, RegistryError};
use berth_storage::StorageError;

pub(crate) fn from_meta(err: MetaError) -> RegistryError {
    match err {
        MetaError::BrokenReferences(broken) => {
            let detail: Vec<String> = broken.iter().map(ToString::to_string).collect();
            let any_missing = broken
                .iter()
                .any(|b| matches!(b, BrokenReference::Missing { .. }));
            if any_missing {
                RegistryError::new(
                    ErrorCode::ManifestBlobUnknown,
                    "manifest references content unknown to the repository",
                )
                .with_detail(serde_json::json!({ "references": detail }))
            } else {
                RegistryError::manifest_invalid(detail.join("; "))
            }
        }
        MetaError::Unavailable(cause) => RegistryError::unavailable("the metadata database", cause),
        MetaError::Database(cause) => RegistryError::internal(cause),
        // Registry writes are upserts; a conflict here is a bug, not the client's doing.
        MetaError::Conflict(cause) => RegistryError::internal(cause),
        MetaError::BeingCollected => RegistryError::new(
            ErrorCode::Unavailable,
            "the blob was garbage collected while this upload completed; upload it again",
        )
        .with_header("retry-after", "1"),
        MetaError::ImmutableTag { tag, rule } => RegistryError::new(
            ErrorCode::Denied,
            format!("tag {tag} is immutable (rule {rule}): push under a new tag"),
        )
        .with_detail(serde_json::json!({ "tag": tag, "rule": rule })),
        MetaError::QuotaExceeded {
            quota,
            used,
            limit,
            needed,
        } => RegistryError::new(
            ErrorCode::Denied,
            format!(
                "quota exceeded: used {} of {} ({quota}){}",
                crate::gc::human_bytes(used),
                crate::gc::human_bytes(limit),
                if needed > 0 {
                    format!(", this blob needs {} more", crate::gc::human_bytes(needed))
                } else {
                    String::new()
                }
            ),
        )
        .with_detail(serde_json::json!({
            "quota": quota, "used": used, "limit": limit, "needed": needed
        })),
    }
}

/// Storage failures that are not "not found"; callers handle that case themselves because
/// what is missing depends on the operation.
pub(crate) fn from_storage(err: StorageError) -> RegistryError {
    match err {
        StorageError::Body(cause) => RegistryError::new(
            ErrorCode::BlobUploadInvalid,
            "the request body could not be read completely",
        )
        .with_cause(cause),
        StorageError::Io(cause) if cause.kind() == io::ErrorKind::StorageFull => {
            RegistryError::new(ErrorCode::Unavailable, "the registry's storage is full")
                .with_status(507)
                .with_cause(cause)
        }
        StorageError::Io(cause) => RegistryError::internal(cause),
        StorageError::Unavailable(cause) => RegistryError::unavailable("blob storage", cause),
        StorageError::NotFound => {
            RegistryError::internal("storage lost content the database records")
        }
    }
}
