//! `storage`: where blobs are stored and how they are looked after.

use std::path::PathBuf;
use std::time::Duration;

use super::S3Config;
use super::stores::{AzureConfig, GcsConfig, IpfsConfig, ScrubConfig};
use crate::schema::{Problems, ignored, join, section, unsupported};
use crate::values::format_duration;

const OTHER_DRIVER: &str = "berth stores blobs on the filesystem, in S3-compatible storage, Google Cloud Storage, Azure Blob Storage or IPFS (storage.filesystem, s3, gcs, azure or ipfs)";

section! {
    #[derive(Clone, PartialEq)]
    pub struct StorageConfig {
        filesystem: FilesystemConfig, "blobs, uploads and the default database on local disk";
        /// registry:2's `storage.s3`: `None` when absent, which keeps blobs under
        /// `filesystem.rootdirectory`.
        s3: Option<S3Config>,
            "store blobs in an S3-compatible bucket; unset stores them under storage.filesystem";
        /// registry:2's `storage.gcs`.
        gcs: Option<GcsConfig>, "store blobs in a Google Cloud Storage bucket";
        /// registry:2's `storage.azure`.
        azure: Option<AzureConfig>, "store blobs in an Azure Blob Storage container";
        /// berth's own `storage.ipfs`.
        ipfs: Option<IpfsConfig>,
            "store blobs in IPFS through a node's RPC API (Kubo), pinned, their CIDs in the database";
        /// registry:2's `storage.redirect`.
        redirect: RedirectConfig, "whether blob downloads are redirected to the object store";
        delete: DeleteConfig, "whether manifests and blobs can be deleted";
        maintenance: MaintenanceConfig, "background upkeep and read-only mode";
        /// berth's own `storage.scrub`.
        scrub: ScrubConfig, "background verification of stored blobs";
    }
    validate = StorageConfig::validate;
    registry2 = [
        ignored("cache", "berth's metadata database is its cache"),
        unsupported("swift", OTHER_DRIVER),
        unsupported("oss", OTHER_DRIVER),
        unsupported("inmemory", OTHER_DRIVER),
    ];
}

impl StorageConfig {
    /// The names of the blob stores configured besides the filesystem.
    pub fn remote_stores(&self) -> Vec<&'static str> {
        [
            ("s3", self.s3.is_some()),
            ("gcs", self.gcs.is_some()),
            ("azure", self.azure.is_some()),
            ("ipfs", self.ipfs.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }

    /// One blob store at most.
    fn validate(&self, path: &str, problems: &mut Problems) {
        let stores = self.remote_stores();
        if stores.len() > 1 {
            problems.add(
                join(path, stores[1]),
                format!(
                    "only one blob store can be configured, and storage.{} is too",
                    stores[0]
                ),
            );
        }
    }
}

section! {
    #[derive(Clone, PartialEq)]
    pub struct FilesystemConfig {
        rootdirectory: PathBuf = PathBuf::from("./data"),
            "directory holding blobs, uploads and the default SQLite database; with storage.s3 only the database";
    }
    validate = FilesystemConfig::validate;
    registry2 = [
        ignored(
            "maxthreads",
            "berth does not limit filesystem threads the way registry:2's Go runtime needed",
        ),
    ];
}

impl FilesystemConfig {
    fn validate(&self, path: &str, problems: &mut Problems) {
        if self.rootdirectory.as_os_str().is_empty() {
            problems.add(join(path, "rootdirectory"), "must not be empty");
        }
    }
}

section! {
    /// registry:2's `storage.redirect`: whether blob downloads are redirected to the object
    /// store. Unlike registry:2, berth streams them itself unless told otherwise.
    #[derive(Clone, PartialEq)]
    pub struct RedirectConfig {
        /// registry:2's key, defaulting to true here: blob GETs stream through berth. false
        /// redirects clients to presigned URLs of `storage.s3` (no effect without it).
        disable: bool = true,
            "stream blob downloads through berth; false redirects clients to presigned storage.s3, gcs or azure URLs";
        /// berth's own key; registry:2 fixes 20 minutes.
        expiry: Duration = Duration::from_secs(20 * 60),
            "how long a presigned URL that a client is redirected to stays valid";
    }
    validate = RedirectConfig::validate;
}

/// The longest validity SigV4 allows a presigned URL.
const MAX_PRESIGNED_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

impl RedirectConfig {
    fn validate(&self, path: &str, problems: &mut Problems) {
        if self.expiry.is_zero() {
            problems.add(
                join(path, "expiry"),
                "must be greater than 0 (it is how long a presigned URL stays valid)",
            );
        } else if self.expiry > MAX_PRESIGNED_EXPIRY {
            problems.add(
                join(path, "expiry"),
                format!(
                    "{} is too long: presigned URLs are valid for at most 168h (7 days)",
                    format_duration(self.expiry)
                ),
            );
        }
    }
}

section! {
    /// Deleting is off by default, as in registry:2: a delete cannot be undone.
    #[derive(Clone, PartialEq)]
    pub struct DeleteConfig {
        enabled: bool, "allow deleting manifests and blobs through the API";
    }
}

section! {
    #[derive(Clone, PartialEq)]
    pub struct MaintenanceConfig {
        uploadpurging: UploadPurging, "removal of abandoned uploads";
        readonly: ReadOnly, "read-only mode";
    }
}

section! {
    /// Removal of uploads that were started and then abandoned; registry:2's defaults.
    #[derive(Clone, PartialEq)]
    pub struct UploadPurging {
        enabled: bool = true, "periodically remove abandoned uploads";
        age: Duration = Duration::from_secs(168 * 3600),
            "how old an upload must be to count as abandoned";
        interval: Duration = Duration::from_secs(24 * 3600),
            "how often abandoned uploads are looked for";
        dryrun: bool, "only log the uploads that would be removed";
    }
    validate = UploadPurging::validate;
}

impl UploadPurging {
    fn validate(&self, at: &str, problems: &mut Problems) {
        let path = |key: &str| join(at, key);
        if self.age.is_zero() {
            problems.add(
                path("age"),
                "must be greater than 0 (it is how old an abandoned upload must be to be purged)",
            );
        }
        if self.enabled && self.interval.is_zero() {
            problems.add(
                path("interval"),
                "must be greater than 0 when upload purging is enabled",
            );
        }
    }
}

section! {
    #[derive(Clone, PartialEq)]
    pub struct ReadOnly {
        enabled: bool, "refuse pushes and deletes; serve pulls only";
    }
}
