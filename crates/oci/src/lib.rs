//! The OCI Distribution domain, free of I/O.
//!
//! Everything a registry must decide about a request before touching storage lives here:
//! whether a repository name, tag, digest or upload id is valid, what a manifest references,
//! which manifest media types a client accepts, how a byte range is interpreted, and which
//! error code and HTTP status a failure maps to. The storage, metadata and HTTP crates build
//! on these types, so a value of type [`RepositoryName`] or [`Digest`] is known to be valid
//! wherever it appears (safe to put in a path or a query).

/// Serialises a validated string type as its text, and deserialises it through `parse`, so
/// that a value read back is as valid as one parsed from a request.
macro_rules! serde_as_validated_text {
    ($type:ty, $text:expr) => {
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let text: fn(&$type) -> &str = $text;
                s.serialize_str(text(self))
            }
        }

        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                <$type>::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

pub mod accept;
pub mod digest;
pub mod error;
pub mod manifest;
pub mod name;
pub mod pagination;
pub mod pattern;
pub mod range;
pub mod reference;
pub mod unique_json;
pub mod upload;

pub use digest::{Algorithm, Digest, DigestHasher};
pub use error::{ErrorCode, RegistryError};
pub use manifest::{Descriptor, ManifestMediaType, ParsedManifest};
pub use name::RepositoryName;
pub use pagination::Page;
pub use pattern::{Pattern, TagPattern};
pub use range::{ByteRange, ContentRange};
pub use reference::{Reference, Tag};
pub use upload::UploadId;
