//! Registry operations.
//!
//! [`Registry`] is what the HTTP layer calls: one method per thing a client can do (start an
//! upload, append a chunk, put a manifest, list tags...). It combines a [`BlobStore`] and a
//! [`MetadataStore`] and enforces the invariants that make the registry trustworthy:
//!
//! * content is hashed while it streams in and is visible only once its digest is verified
//!   and it is durable in storage;
//! * a blob is readable in a repository only if it was pushed or mounted there;
//! * a manifest is stored only if everything it references is in its repository;
//! * a failed request leaves nothing of itself behind.
//!
//! Every method returns a [`RegistryError`] that already carries the OCI error code and
//! status for the client. Every change it commits, and every pull, is published as an
//! [`events::Event`] to the [`events::EventSink`]s it was built with.

use std::sync::Arc;

use berth_meta::MetadataStore;
use berth_oci::RegistryError;
use berth_storage::BlobStore;

pub mod activity;
mod blobs;
mod errors;
pub mod events;
pub mod gc;
pub mod inspect;
mod listing;
mod maintenance;
mod manifests;
pub mod pull_stats;
mod read_path;
pub mod search;
mod uploads;

pub use berth_meta::browse::{
    DayActivity, RepositorySummary, StorageUsage, TagPage, TagRow, TagSort,
};
pub use berth_meta::{StoredManifest, UploadSession};
pub use blobs::{BlobDetails, BlobRead};
pub use listing::Listing;
pub use maintenance::PurgeReport;
pub use manifests::PushedManifest;
pub use read_path::{Mounted, Namespaces, ReadPath, Writes};
pub use uploads::Chunk;

pub type Result<T> = std::result::Result<T, RegistryError>;

/// Behaviour switches from the configuration.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Whether manifests, tags and blobs may be deleted (`storage.delete.enabled`).
    pub delete_enabled: bool,
    /// Refuse every write (`storage.maintenance.readonly.enabled`), for maintenance windows.
    pub read_only: bool,
}

pub struct Registry {
    blobs: Arc<dyn BlobStore>,
    meta: Arc<dyn MetadataStore>,
    settings: Settings,
    listeners: events::Listeners,
    activity: Arc<activity::ClientActivity>,
}

impl Registry {
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        meta: Arc<dyn MetadataStore>,
        settings: Settings,
    ) -> Registry {
        Registry {
            blobs,
            meta,
            settings,
            listeners: events::Listeners::default(),
            activity: Arc::default(),
        }
    }

    /// The requests this process is answering, counted by the HTTP layer.
    pub fn client_activity(&self) -> &Arc<activity::ClientActivity> {
        &self.activity
    }

    /// Adds a listener to the event stream (before the registry is shared).
    pub fn with_listener(mut self, sink: Arc<dyn events::EventSink>) -> Registry {
        self.listeners.add(sink);
        self
    }

    fn publish(&self, events: &[events::Event]) {
        self.listeners.publish(events);
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether the database and the blob store are both reachable.
    pub async fn check_ready(&self) -> Result<()> {
        self.meta
            .check()
            .await
            .map_err(|e| RegistryError::unavailable("the metadata database", e))?;
        self.blobs
            .check()
            .await
            .map_err(|e| RegistryError::unavailable("blob storage", e))?;
        Ok(())
    }

    fn ensure_writable(&self) -> Result<()> {
        if self.settings.read_only {
            return Err(RegistryError::unsupported(
                "the registry is in read-only mode for maintenance",
            ));
        }
        Ok(())
    }

    fn ensure_delete_enabled(&self) -> Result<()> {
        self.ensure_writable()?;
        if !self.settings.delete_enabled {
            return Err(RegistryError::unsupported(
                "deletion is disabled on this registry (storage.delete.enabled: false)",
            ));
        }
        Ok(())
    }
}
