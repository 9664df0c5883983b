//! The collector's pacing for clients, in process (the safety suite runs berth itself:
//! crates/berth/tests/suite/garbage_collection.rs).

use std::sync::Arc;
use std::time::Duration;

use berth_meta::SqliteStore;
use berth_oci::{Algorithm, Digest, RepositoryName};
use berth_storage::{ByteStream, FilesystemStore};
use bytes::Bytes;

use super::{GcMode, GcRequest, GcSettings, Unobserved};
use crate::events::Origin;
use crate::{Registry, Settings};

/// Stores `count` blobs that no manifest references.
async fn garbage(registry: &Registry, round: u32, count: u32) {
    let origin = Arc::new(Origin::system("test"));
    let repository = RepositoryName::parse("gc/garbage").unwrap();
    for i in 0..count {
        let data = Bytes::from(format!("garbage {round} {i}"));
        let digest = Digest::of(Algorithm::Sha256, &data);
        let body: ByteStream = Box::pin(futures_util::stream::iter([Ok(data)]));
        registry
            .upload_blob(&origin, &repository, &digest, None, body)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_collector_rests_for_clients_only_while_they_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(
        SqliteStore::open(&dir.path().join("berth.db"))
            .await
            .unwrap(),
    );
    let blobs = Arc::new(FilesystemStore::open(dir.path()).unwrap());
    let registry = Registry::new(blobs, meta.clone(), Settings::default());
    let settings = GcSettings {
        grace: Duration::ZERO,
        untagged: None,
        upload_age: Duration::from_secs(3600),
        fence: Duration::ZERO,
        tag_history: Duration::ZERO,
    };
    let request = GcRequest {
        mode: GcMode::Full,
        trigger: "test".into(),
        actor: "test".into(),
    };
    // Several mark batches, so that the collector takes turns between them.
    garbage(&registry, 1, 450).await;
    let serving = registry.client_activity().begin();
    let with_a_client = registry
        .collect_garbage(&*meta, "test", &settings, &request, &Unobserved)
        .await
        .unwrap();
    drop(serving);
    assert_eq!(with_a_client.blobs, 450, "{with_a_client:?}");
    assert!(with_a_client.client_rest_ms > 0, "{with_a_client:?}");
    assert!(
        with_a_client.timing().contains("for clients"),
        "{}",
        with_a_client.timing()
    );

    garbage(&registry, 2, 450).await;
    let alone = registry
        .collect_garbage(&*meta, "test", &settings, &request, &Unobserved)
        .await
        .unwrap();
    assert_eq!(alone.blobs, 450, "{alone:?}");
    assert_eq!(alone.client_rest_ms, 0, "{alone:?}");
}
