//! How the pull-through caches' records behave in every [`MetadataStore`] (see
//! [`crate::cache`]): what a prefix holds, eviction's checks, and stored definitions.

use std::sync::Arc;

use berth_oci::{Algorithm, Descriptor, Digest, RepositoryName, Tag};

use crate::browse::PullRecord;
use crate::events::{EventKind, Origin};
use crate::{ManifestSource, MetadataStore, NewManifest, UpstreamAnswer, now_millis};

pub async fn run_cache(store: &dyn MetadataStore) {
    a_prefix_lists_its_manifests_edges_and_held_blobs(store).await;
    eviction_removes_manifests_and_tags_unless_pulled_since(store).await;
    definitions_are_created_replaced_and_removed(store).await;
    upstream_answers_are_kept_newest_first_and_forgotten_by_age(store).await;
}

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

fn origin() -> Arc<Origin> {
    Arc::new(Origin::system("cache-behaviour"))
}

/// Caches a manifest (as a remote does: its references need not be there yet).
async fn cache(
    store: &dyn MetadataStore,
    repository: &str,
    tag: Option<&str>,
    body: &str,
    blobs: &[Digest],
    children: &[Digest],
) -> Digest {
    let content = format!("{{\"schemaVersion\":2,\"cache\":{body:?}}}");
    let digest = Digest::of(Algorithm::Sha256, content.as_bytes());
    let tag = tag.map(|t| Tag::parse(t).unwrap());
    let descriptor = |digest: &Digest, size: u64| Descriptor {
        media_type: "application/octet-stream".into(),
        digest: digest.clone(),
        size,
        urls: None,
        annotations: None,
        artifact_type: None,
        platform: None,
    };
    let blobs: Vec<Descriptor> = blobs.iter().map(|d| descriptor(d, 1000)).collect();
    let children: Vec<Descriptor> = children.iter().map(|d| descriptor(d, 10)).collect();
    store
        .put_manifest(NewManifest {
            repository: &repo(repository),
            digest: &digest,
            media_type: berth_oci::manifest::OCI_IMAGE_MANIFEST,
            content: content.as_bytes(),
            blobs: &blobs,
            children: &children,
            subject: None,
            artifact_type: None,
            annotations: None,
            tag: tag.as_ref(),
            origin: &origin(),
            source: ManifestSource::Cache,
        })
        .await
        .unwrap();
    digest
}

async fn a_prefix_lists_its_manifests_edges_and_held_blobs(store: &dyn MetadataStore) {
    let layer = Digest::of(Algorithm::Sha256, b"cache layer one");
    let missing = Digest::of(Algorithm::Sha256, b"cache layer not fetched yet");
    store
        .link_blob(&repo("cachea/x/app"), &layer, 1000, &origin())
        .await
        .unwrap();
    let child = cache(
        store,
        "cachea/x/app",
        None,
        "child",
        &[layer.clone(), missing],
        &[],
    )
    .await;
    let index = cache(
        store,
        "cachea/x/app",
        Some("v1"),
        "index",
        &[],
        std::slice::from_ref(&child),
    )
    .await;
    // Outside the prefix (and a name that only starts alike).
    cache(store, "cacheab/app", Some("v1"), "other", &[], &[]).await;

    let content = store.cached_content("cachea/").await.unwrap();
    let digests: Vec<&Digest> = content.manifests.iter().map(|m| &m.digest).collect();
    assert_eq!(digests, [&child, &index]);
    assert!(content.manifests.iter().all(|m| m.last_pulled_at.is_none()));
    let id = |d: &Digest| {
        content
            .manifests
            .iter()
            .find(|m| &m.digest == d)
            .unwrap()
            .id
    };
    assert_eq!(content.edges, [(id(&index), id(&child))]);
    // Only the blob the repository holds.
    assert_eq!(content.blobs, [(id(&child), layer, 1000)]);
    assert!(store.cached_content("").await.unwrap().manifests.len() >= 3);
}

async fn eviction_removes_manifests_and_tags_unless_pulled_since(store: &dyn MetadataStore) {
    let r = repo("cacheb/app");
    let child = cache(store, "cacheb/app", None, "child", &[], &[]).await;
    let index = cache(
        store,
        "cacheb/app",
        Some("v1"),
        "index",
        &[],
        std::slice::from_ref(&child),
    )
    .await;
    let content = store.cached_content("cacheb/").await.unwrap();
    let id = |d: &Digest| {
        content
            .manifests
            .iter()
            .find(|m| &m.digest == d)
            .unwrap()
            .id
    };
    let planned = now_millis();
    // The child alone cannot go: the index still references it.
    let kept = store
        .evict_manifests(&r, &[id(&child)], planned, &origin())
        .await
        .unwrap();
    assert!(kept.is_none());
    // A pull recorded after the plan keeps the image.
    store
        .record_pulls(&[PullRecord {
            repository: r.clone(),
            digest: index.clone(),
            tag: None,
            count: 1,
            at: planned + 1000,
        }])
        .await
        .unwrap();
    let ids = [id(&index), id(&child)];
    assert!(
        store
            .evict_manifests(&r, &ids, planned, &origin())
            .await
            .unwrap()
            .is_none()
    );
    let events = store
        .evict_manifests(&r, &ids, planned + 1000, &origin())
        .await
        .unwrap()
        .expect("evicted");
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::TagDeleted,
            EventKind::ManifestDeleted,
            EventKind::ManifestDeleted
        ]
    );
    assert!(
        store
            .cached_content("cacheb/")
            .await
            .unwrap()
            .manifests
            .is_empty()
    );
    assert!(
        store.tag_history(&r, None, 0, 10).await.unwrap().is_empty(),
        "no history"
    );
    // Evicted already: nothing to count twice.
    assert!(
        store
            .evict_manifests(&r, &ids, planned + 1000, &origin())
            .await
            .unwrap()
            .is_none()
    );
}

async fn definitions_are_created_replaced_and_removed(store: &dyn MetadataStore) {
    let put = |kind: &'static str, definition: &'static str, by: &'static str, create: bool| {
        store.put_cache_definition(kind, "hub", definition, by, create)
    };
    assert!(
        put("remote", r#"{"prefix":"hub"}"#, "user:root", true)
            .await
            .unwrap()
    );
    assert!(
        !put("remote", "{}", "user:root", true).await.unwrap(),
        "exists"
    );
    assert!(
        !put("virtual", "{}", "user:root", false).await.unwrap(),
        "no such virtual"
    );
    assert!(
        put("remote", r#"{"prefix":"dh"}"#, "user:ann", false)
            .await
            .unwrap()
    );
    let stored = store.cache_definitions().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].definition, r#"{"prefix":"dh"}"#);
    assert_eq!(stored[0].updated_by, "user:ann");
    let delete = || store.delete_cache_definition("remote", "hub");
    assert!(delete().await.unwrap());
    assert!(!delete().await.unwrap());
    assert!(store.cache_definitions().await.unwrap().is_empty());
}

async fn upstream_answers_are_kept_newest_first_and_forgotten_by_age(store: &dyn MetadataStore) {
    let r = repo("cachec/library/alpine");
    let found = |at| UpstreamAnswer { found: true, at };
    let missing = |at| UpstreamAnswer { found: false, at };
    assert_eq!(store.upstream_answer(&r, "3.20").await.unwrap(), None);
    store
        .record_upstream_answer(&r, "3.20", found(1_000))
        .await
        .unwrap();
    assert_eq!(
        store.upstream_answer(&r, "3.20").await.unwrap(),
        Some(found(1_000))
    );
    // A later answer replaces it (the tag went away upstream); an earlier one, recorded late
    // by a slower instance, does not.
    store
        .record_upstream_answer(&r, "3.20", missing(2_000))
        .await
        .unwrap();
    store
        .record_upstream_answer(&r, "3.20", found(1_500))
        .await
        .unwrap();
    assert_eq!(
        store.upstream_answer(&r, "3.20").await.unwrap(),
        Some(missing(2_000))
    );
    // Keyed by repository and reference: another repository's same tag is apart.
    let other = repo("cachec/library/busybox");
    assert_eq!(store.upstream_answer(&other, "3.20").await.unwrap(), None);
    let blob = Digest::of(Algorithm::Sha256, b"cache answers blob");
    store
        .record_upstream_answer(&other, blob.as_str(), missing(3_000))
        .await
        .unwrap();
    store
        .record_upstream_answer(&other, "latest", found(3_000))
        .await
        .unwrap();
    // Each kind of answer has its own age limit: nothing found before 2500 (the tag's is
    // 3000), one 404 before 2500 (alpine's).
    assert_eq!(
        store.forget_upstream_answers(2_500, 2_500).await.unwrap(),
        1
    );
    assert_eq!(store.upstream_answer(&r, "3.20").await.unwrap(), None);
    assert_eq!(
        store.forget_upstream_answers(3_500, 0).await.unwrap(),
        1,
        "only the found one"
    );
    assert_eq!(store.upstream_answer(&other, "latest").await.unwrap(), None);
    assert_eq!(
        store.upstream_answer(&other, blob.as_str()).await.unwrap(),
        Some(missing(3_000))
    );
    assert_eq!(store.forget_upstream_answers(0, i64::MAX).await.unwrap(), 1);
}
