//! How quotas are counted and enforced in every [`MetadataStore`] (see [`crate::quotas`]).
//! Each check uses its own namespace, so the suite shares a store with the others; after
//! each, a recount must find every quota's usage exactly as the writes kept it.

use std::sync::Arc;

use berth_oci::{Algorithm, Digest, Pattern, RepositoryName};

use crate::events::Origin;
use crate::gc::GcRunStatus;
use crate::{ManifestSource, MetaError, MetadataStore, NewManifest, now_millis};

pub async fn run_quotas(store: &dyn MetadataStore) {
    a_new_quota_counts_what_its_repositories_hold_each_blob_once(store).await;
    a_blob_past_the_limit_is_refused_and_changes_nothing(store).await;
    unlinking_releases_a_blob_only_when_no_covered_repository_holds_it(store).await;
    garbage_collection_releases_what_it_marks(store).await;
    concurrent_pushes_never_take_a_quota_past_its_limit(store).await;
    a_manifest_push_is_refused_while_a_lowered_quota_is_exceeded(store).await;
    quotas_are_changed_and_removed(store).await;
}

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

fn origin() -> Arc<Origin> {
    Arc::new(Origin::system("quota-behaviour"))
}

fn digest(content: &str) -> Digest {
    Digest::of(Algorithm::Sha256, content.as_bytes())
}

/// Records a blob of `size` bytes (the content only names it) in `repository`.
async fn push(
    store: &dyn MetadataStore,
    repository: &str,
    content: &str,
    size: u64,
) -> Result<(), MetaError> {
    store
        .link_blob(&repo(repository), &digest(content), size, &origin())
        .await
        .map(|_| ())
}

async fn used(store: &dyn MetadataStore, pattern: &str) -> u64 {
    let quotas = store.quotas().await.unwrap();
    quotas
        .iter()
        .find(|q| q.repositories.as_str() == pattern)
        .map(|q| q.used_bytes)
        .expect("the quota exists")
}

async fn set(store: &dyn MetadataStore, pattern: &str, limit: u64) {
    store
        .set_quota(&Pattern::parse(pattern).unwrap(), limit, "alice")
        .await
        .unwrap();
}

async fn assert_counts_are_exact(store: &dyn MetadataStore) {
    let wrong = store.recount_quotas().await.unwrap();
    assert!(wrong.is_empty(), "a recount corrected {wrong:?}");
}

async fn a_new_quota_counts_what_its_repositories_hold_each_blob_once(store: &dyn MetadataStore) {
    push(store, "qa/one", "qa-shared", 100).await.unwrap();
    push(store, "qa/two", "qa-shared", 100).await.unwrap();
    push(store, "qa/two", "qa-own", 30).await.unwrap();
    push(store, "qa-other/x", "qa-elsewhere", 1000)
        .await
        .unwrap();
    set(store, "qa/**", 10_000).await;
    assert_eq!(
        used(store, "qa/**").await,
        130,
        "the shared blob counts once"
    );
    // Pushed again, mounted, or pushed to a third repository: still once.
    push(store, "qa/one", "qa-shared", 100).await.unwrap();
    store
        .mount_blob(
            &repo("qa/three"),
            &digest("qa-shared"),
            &repo("qa/one"),
            &origin(),
        )
        .await
        .unwrap()
        .expect("mounted");
    assert_eq!(used(store, "qa/**").await, 130);
    push(store, "qa/three", "qa-new", 5).await.unwrap();
    assert_eq!(used(store, "qa/**").await, 135);
    assert_counts_are_exact(store).await;
}

async fn a_blob_past_the_limit_is_refused_and_changes_nothing(store: &dyn MetadataStore) {
    set(store, "qb/**", 100).await;
    push(store, "qb/app", "qb-1", 60).await.unwrap();
    // The check before committing bytes says the same as the record will.
    let check = store
        .check_quota(&repo("qb/app"), &digest("qb-2"), 41)
        .await;
    assert!(
        matches!(check, Err(MetaError::QuotaExceeded { .. })),
        "{check:?}"
    );
    store
        .check_quota(&repo("qb/other"), &digest("qb-1"), 60)
        .await
        .expect("a blob the namespace holds costs nothing");
    store
        .check_quota(&repo("elsewhere"), &digest("qb-2"), 1 << 40)
        .await
        .expect("no quota covers it");
    let refused = push(store, "qb/app", "qb-2", 41).await.unwrap_err();
    match refused {
        MetaError::QuotaExceeded {
            quota,
            used,
            limit,
            needed,
        } => {
            assert_eq!(
                (quota.as_str(), used, limit, needed),
                ("qb/**", 60, 100, 41)
            );
        }
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    assert!(
        store
            .blob(&repo("qb/app"), &digest("qb-2"))
            .await
            .unwrap()
            .is_none(),
        "a refused blob is not recorded"
    );
    // Exactly up to the limit is fine; a blob the namespace holds already costs nothing.
    push(store, "qb/app", "qb-3", 40).await.unwrap();
    push(store, "qb/other", "qb-1", 60).await.unwrap();
    assert_eq!(used(store, "qb/**").await, 100);
    // A mount into the namespace counts too.
    push(store, "qb-outside/x", "qb-4", 1).await.unwrap();
    let mount = store
        .mount_blob(
            &repo("qb/app"),
            &digest("qb-4"),
            &repo("qb-outside/x"),
            &origin(),
        )
        .await;
    assert!(matches!(mount, Err(MetaError::QuotaExceeded { .. })));
    assert_counts_are_exact(store).await;
}

async fn unlinking_releases_a_blob_only_when_no_covered_repository_holds_it(
    store: &dyn MetadataStore,
) {
    set(store, "qc/**", 1000).await;
    set(store, "qc/team/*", 1000).await;
    push(store, "qc/team/a", "qc-shared", 100).await.unwrap();
    push(store, "qc/b", "qc-shared", 100).await.unwrap();
    assert_eq!(used(store, "qc/**").await, 100);
    assert_eq!(used(store, "qc/team/*").await, 100);
    store
        .unlink_blob(&repo("qc/team/a"), &digest("qc-shared"), &origin())
        .await
        .unwrap()
        .expect("unlinked");
    assert_eq!(used(store, "qc/**").await, 100, "qc/b still holds it");
    assert_eq!(
        used(store, "qc/team/*").await,
        0,
        "no repository of qc/team/* does"
    );
    store
        .unlink_blob(&repo("qc/b"), &digest("qc-shared"), &origin())
        .await
        .unwrap()
        .expect("unlinked");
    assert_eq!(used(store, "qc/**").await, 0);
    assert_counts_are_exact(store).await;
}

async fn garbage_collection_releases_what_it_marks(store: &dyn MetadataStore) {
    set(store, "qd/**", 1000).await;
    push(store, "qd/a", "qd-layer", 70).await.unwrap();
    push(store, "qd/b", "qd-layer", 70).await.unwrap();
    push(store, "qd/b", "qd-other", 30).await.unwrap();
    assert_eq!(used(store, "qd/**").await, 100);
    let run = store.start_gc_run("test", "alice", "here").await.unwrap();
    // One batch: what it frees of each quota is summed.
    let marked = store
        .mark_unreferenced_blobs(
            run,
            &[digest("qd-layer"), digest("qd-other")],
            crate::gc::Collectable {
                cutoff: now_millis() + 1,
                history_since: 0,
            },
        )
        .await
        .unwrap()
        .blobs;
    assert_eq!(marked.len(), 2);
    store
        .finish_gc_run(run, GcRunStatus::Finished, "{}", None)
        .await
        .unwrap();
    assert_eq!(used(store, "qd/**").await, 0);
    assert_counts_are_exact(store).await;
}

async fn concurrent_pushes_never_take_a_quota_past_its_limit(store: &dyn MetadataStore) {
    set(store, "qe/**", 350).await;
    let pushes = (0..12).map(|i| async move {
        push(store, &format!("qe/r{}", i % 4), &format!("qe-{i}"), 100).await
    });
    let outcomes = futures_util::future::join_all(pushes).await;
    let accepted = outcomes.iter().filter(|o| o.is_ok()).count();
    for refused in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(
            matches!(refused, MetaError::QuotaExceeded { .. }),
            "{refused:?}"
        );
    }
    assert_eq!(accepted, 3, "three 100-byte blobs fit in 350 bytes");
    assert_eq!(used(store, "qe/**").await, 300);
    assert_counts_are_exact(store).await;
}

async fn a_manifest_push_is_refused_while_a_lowered_quota_is_exceeded(store: &dyn MetadataStore) {
    set(store, "qf/**", 1000).await;
    push(store, "qf/app", "qf-layer", 500).await.unwrap();
    set(store, "qf/**", 400).await;
    let content = "{\"schemaVersion\":2,\"qf\":1}";
    let put = store
        .put_manifest(NewManifest {
            repository: &repo("qf/app"),
            digest: &digest(content),
            media_type: berth_oci::manifest::OCI_IMAGE_MANIFEST,
            content: content.as_bytes(),
            blobs: &[],
            children: &[],
            subject: None,
            artifact_type: None,
            annotations: None,
            tag: None,
            origin: &origin(),
            source: ManifestSource::Push,
        })
        .await;
    assert!(
        matches!(
            put,
            Err(MetaError::QuotaExceeded {
                used: 500,
                limit: 400,
                ..
            })
        ),
        "{put:?}"
    );
}

async fn quotas_are_changed_and_removed(store: &dyn MetadataStore) {
    set(store, "qg/**", 10).await;
    push(store, "qg/a", "qg-1", 10).await.unwrap();
    set(store, "qg/**", 20).await;
    let quotas = store.quotas().await.unwrap();
    let quota = quotas
        .iter()
        .find(|q| q.repositories.as_str() == "qg/**")
        .unwrap();
    assert_eq!((quota.limit_bytes, quota.used_bytes), (20, 10));
    assert_eq!(quota.created_by, "alice");
    let removed = store
        .remove_quota(&Pattern::parse("qg/**").unwrap())
        .await
        .unwrap()
        .expect("removed");
    assert_eq!(removed.used_bytes, 10);
    assert!(
        store
            .remove_quota(&Pattern::parse("qg/**").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    // Without a quota nothing is refused.
    push(store, "qg/a", "qg-2", 1_000_000).await.unwrap();
}
