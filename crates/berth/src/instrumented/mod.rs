//! Observability as decorators: the blob store and the metadata store wrapped so that every
//! call is timed (a histogram by backend or engine, operation and outcome) and is a child
//! span of its request, and neither the stores nor the registry carry measuring code.

mod blobs;
mod metadata;

pub use blobs::MeasuredBlobStore;
pub use metadata::MeasuredMetadataStore;
