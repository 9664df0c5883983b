//! The garbage collection records every engine must keep (see [`crate::gc`]): what is
//! reachable, and the protocol that lets a push and a collection of the same digest race
//! without a recorded blob ever losing its bytes. Every check uses its own digests and
//! repositories, so the suite shares a store with [`crate::behaviour`].

use std::sync::Arc;

use berth_oci::{Algorithm, Descriptor, Digest, RepositoryName, Tag};

use crate::events::Origin;
use crate::gc::{BlobDeletion, Collectable, DeletionKind, DeletionState, GcRunStatus};
use crate::{ManifestSource, MetaError, MetadataStore, NewManifest, now_millis};

pub async fn run_gc(store: &dyn MetadataStore) {
    unreferenced_blobs_are_found_and_marked(store).await;
    candidate_pages_read_a_bounded_run_of_blobs(store).await;
    a_push_cancels_a_mark_and_waits_out_a_deletion(store).await;
    a_push_that_relied_on_deleted_bytes_is_refused(store).await;
    mounts_racing_a_batch_mark_keep_or_lose_each_blob_whole(store).await;
    reachability_follows_tags_indexes_and_referrers(store).await;
    orphans_are_bytes_without_records(store).await;
    runs_are_recorded(store).await;
}

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

fn origin() -> Arc<Origin> {
    Arc::new(Origin::system("gc-behaviour"))
}

fn blob(content: &str) -> Descriptor {
    Descriptor {
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        digest: Digest::of(Algorithm::Sha256, content.as_bytes()),
        size: content.len() as u64,
        urls: None,
        annotations: None,
        artifact_type: None,
        platform: None,
    }
}

/// A tag history cutoff no entry passes: the history protects nothing (the tag history
/// suite checks what it protects).
const NO_HISTORY: i64 = i64::MAX;

/// A cutoff after everything done so far (a grace period of zero).
fn now_cutoff() -> i64 {
    now_millis() + 1
}

/// Blobs recorded or linked before `cutoff` may go; no tag history protects anything.
fn free_before(cutoff: i64) -> Collectable {
    Collectable {
        cutoff,
        history_since: NO_HISTORY,
    }
}

async fn candidates(store: &dyn MetadataStore, mine: &[&Digest], cutoff: i64) -> Vec<Digest> {
    let mut found = Vec::new();
    let mut after: Option<Digest> = None;
    loop {
        let page = store
            .unreferenced_blobs(after.as_ref(), free_before(cutoff), 3, 2)
            .await
            .unwrap();
        found.extend(page.candidates.into_iter().map(|c| c.digest));
        let Some(next) = page.next else { break };
        after = Some(next);
    }
    found.retain(|d| mine.contains(&d));
    found
}

async fn manifest(
    store: &dyn MetadataStore,
    r: &RepositoryName,
    content: &str,
    blobs: &[Descriptor],
    children: &[Descriptor],
    subject: Option<&Digest>,
    tag: Option<&Tag>,
) -> Descriptor {
    let digest = Digest::of(Algorithm::Sha256, content.as_bytes());
    let origin = origin();
    store
        .put_manifest(NewManifest {
            repository: r,
            digest: &digest,
            media_type: berth_oci::manifest::OCI_IMAGE_MANIFEST,
            content: content.as_bytes(),
            blobs,
            children,
            subject,
            artifact_type: None,
            annotations: None,
            tag,
            origin: &origin,
            source: ManifestSource::Push,
        })
        .await
        .unwrap();
    Descriptor {
        media_type: berth_oci::manifest::OCI_IMAGE_MANIFEST.into(),
        size: content.len() as u64,
        ..blob(content)
    }
}

async fn unreferenced_blobs_are_found_and_marked(store: &dyn MetadataStore) {
    let (a, b) = (repo("gc/mark/a"), repo("gc/mark/b"));
    let (used, free) = (blob("gc-used-layer"), blob("gc-free-layer"));
    for r in [&a, &b] {
        store
            .link_blob(r, &free.digest, free.size, &origin())
            .await
            .unwrap();
    }
    store
        .link_blob(&a, &used.digest, used.size, &origin())
        .await
        .unwrap();
    manifest(
        store,
        &a,
        "{\"gc\":\"mark\"}",
        std::slice::from_ref(&used),
        &[],
        None,
        None,
    )
    .await;

    // Linked at or after the cutoff: within the grace period.
    let before = now_millis() - 60_000;
    assert!(
        candidates(store, &[&free.digest, &used.digest], before)
            .await
            .is_empty()
    );
    let cutoff = now_cutoff();
    assert_eq!(
        candidates(store, &[&free.digest, &used.digest], cutoff).await,
        vec![free.digest.clone()]
    );

    let marked = store
        .mark_unreferenced_blobs(
            7,
            &[free.digest.clone(), used.digest.clone()],
            free_before(cutoff),
        )
        .await
        .unwrap()
        .blobs;
    assert_eq!(marked.len(), 1, "only the unreferenced blob is marked");
    assert_eq!(marked[0].digest, free.digest);
    assert_eq!(marked[0].repositories, vec![a.clone(), b.clone()]);
    for r in [&a, &b] {
        assert_eq!(store.blob_size(r, &free.digest).await.unwrap(), None);
    }
    assert_eq!(
        store.blob_size(&a, &used.digest).await.unwrap(),
        Some(used.size)
    );
    assert_eq!(
        store.blob_deletion(&free.digest).await.unwrap(),
        Some(BlobDeletion {
            run: 7,
            state: DeletionState::Marked
        })
    );
    // The mark is not repeated, and the blob is no candidate any more.
    assert!(
        candidates(store, &[&free.digest], now_cutoff())
            .await
            .is_empty()
    );

    // Claimed only after the fence, then deleted.
    assert!(
        store
            .claim_blob_deletions(8, before, 100)
            .await
            .unwrap()
            .iter()
            .all(|c| c.digest != free.digest)
    );
    let claimed = store
        .claim_blob_deletions(8, now_cutoff(), 100)
        .await
        .unwrap();
    let mine: Vec<_> = claimed.iter().filter(|c| c.digest == free.digest).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].kind, DeletionKind::Unreferenced);
    assert_eq!(mine[0].size, free.size);
    assert!(
        store
            .claim_blob_deletions(8, now_cutoff(), 100)
            .await
            .unwrap()
            .iter()
            .all(|c| c.digest != free.digest),
        "a run does not claim what it holds twice"
    );
    store
        .finish_blob_deletions(8, std::slice::from_ref(&free.digest))
        .await
        .unwrap();
    assert_eq!(
        store.blob_deletion(&free.digest).await.unwrap(),
        Some(BlobDeletion {
            run: 8,
            state: DeletionState::Deleted
        })
    );
    assert_eq!(
        store
            .prune_blob_tombstones(now_millis() - 60_000)
            .await
            .unwrap(),
        0
    );
    assert!(store.prune_blob_tombstones(now_cutoff()).await.unwrap() >= 1);
    assert_eq!(store.blob_deletion(&free.digest).await.unwrap(), None);
}

/// A candidate page reads a bounded run of blobs, free or not: many referenced blobs before
/// the first free one give pages with nothing in them that say where to go on, so that no
/// query of the collector takes long enough to outlast its lease.
async fn candidate_pages_read_a_bounded_run_of_blobs(store: &dyn MetadataStore) {
    let r = repo("gc/pages");
    // Digests in a known order, apart from every other check's.
    let digest = |i: u32| Digest::parse(&format!("sha256:f00dfeed{i:056x}")).unwrap();
    let referenced: Vec<Descriptor> = (1..=6)
        .map(|i| Descriptor {
            digest: digest(i),
            size: 10,
            ..blob("gc-pages")
        })
        .collect();
    let free = digest(7);
    for d in referenced.iter().map(|d| &d.digest).chain([&free]) {
        store.link_blob(&r, d, 10, &origin()).await.unwrap();
    }
    manifest(
        store,
        &r,
        "{\"gc\":\"pages\"}",
        &referenced,
        &[],
        None,
        None,
    )
    .await;
    let collectable = free_before(now_cutoff());
    let found = |page: &crate::gc::CandidatePage| -> Vec<Digest> {
        page.candidates.iter().map(|c| c.digest.clone()).collect()
    };

    // Four blobs read, all referenced: an empty page that says where to go on.
    let page = store
        .unreferenced_blobs(Some(&digest(0)), collectable, 4, 10)
        .await
        .unwrap();
    assert_eq!(found(&page), Vec::<Digest>::new());
    assert_eq!(page.next, Some(digest(4)));
    let page = store
        .unreferenced_blobs(Some(&digest(4)), collectable, 3, 10)
        .await
        .unwrap();
    assert_eq!(found(&page), std::slice::from_ref(&free));
    assert_eq!(page.next, Some(digest(7)));
    // A page that is full of candidates goes on after its last one.
    let page = store
        .unreferenced_blobs(Some(&digest(5)), collectable, 10, 1)
        .await
        .unwrap();
    assert_eq!(found(&page), std::slice::from_ref(&free));
    assert_eq!(page.next, Some(free.clone()));
}

async fn a_push_cancels_a_mark_and_waits_out_a_deletion(store: &dyn MetadataStore) {
    let r = repo("gc/race/cancel");
    let layer = blob("gc-race-cancel");
    store
        .link_blob(&r, &layer.digest, layer.size, &origin())
        .await
        .unwrap();
    let marked = store
        .mark_unreferenced_blobs(
            11,
            std::slice::from_ref(&layer.digest),
            free_before(now_cutoff()),
        )
        .await
        .unwrap()
        .blobs;
    assert_eq!(marked.len(), 1);

    // A push that saw the mark (or nothing) wins against a marked deletion.
    let seen = store.blob_deletion(&layer.digest).await.unwrap();
    link_seen(store, &r, &layer.digest, layer.size, seen)
        .await
        .unwrap();
    assert_eq!(store.blob_deletion(&layer.digest).await.unwrap(), None);
    assert_eq!(
        store.blob_size(&r, &layer.digest).await.unwrap(),
        Some(layer.size)
    );
    assert!(
        store
            .claim_blob_deletions(12, now_cutoff(), 100)
            .await
            .unwrap()
            .iter()
            .all(|c| c.digest != layer.digest),
        "a cancelled deletion cannot be claimed"
    );

    // Once the deletion is claimed, recording the blob is refused until it ends.
    store
        .mark_unreferenced_blobs(
            13,
            std::slice::from_ref(&layer.digest),
            free_before(now_cutoff()),
        )
        .await
        .unwrap();
    store
        .claim_blob_deletions(13, now_cutoff(), 100)
        .await
        .unwrap();
    let seen = store.blob_deletion(&layer.digest).await.unwrap();
    assert_eq!(seen.map(|s| s.state), Some(DeletionState::Deleting));
    let refused = link_seen(store, &r, &layer.digest, layer.size, seen).await;
    assert!(
        matches!(refused, Err(MetaError::BeingCollected)),
        "{refused:?}"
    );
    assert_eq!(store.blob_size(&r, &layer.digest).await.unwrap(), None);

    // After it: a push that committed its bytes after the deletion (it saw the tombstone)
    // records the blob again.
    store
        .finish_blob_deletions(13, std::slice::from_ref(&layer.digest))
        .await
        .unwrap();
    let seen = store.blob_deletion(&layer.digest).await.unwrap();
    link_seen(store, &r, &layer.digest, layer.size, seen)
        .await
        .unwrap();
    assert_eq!(
        store.blob_size(&r, &layer.digest).await.unwrap(),
        Some(layer.size)
    );
    assert_eq!(store.blob_deletion(&layer.digest).await.unwrap(), None);
}

async fn a_push_that_relied_on_deleted_bytes_is_refused(store: &dyn MetadataStore) {
    let (r, other) = (repo("gc/race/stale"), repo("gc/race/other"));
    let layer = blob("gc-race-stale");
    store
        .link_blob(&r, &layer.digest, layer.size, &origin())
        .await
        .unwrap();
    // The push looks (nothing is going on), then a whole collection happens before it
    // records the blob: the bytes it saw in storage are gone.
    let seen = store.blob_deletion(&layer.digest).await.unwrap();
    assert_eq!(seen, None);
    store
        .mark_unreferenced_blobs(
            21,
            std::slice::from_ref(&layer.digest),
            free_before(now_cutoff()),
        )
        .await
        .unwrap();
    store
        .claim_blob_deletions(21, now_cutoff(), 100)
        .await
        .unwrap();
    store
        .finish_blob_deletions(21, std::slice::from_ref(&layer.digest))
        .await
        .unwrap();
    let refused = link_seen(store, &other, &layer.digest, layer.size, seen).await;
    assert!(
        matches!(refused, Err(MetaError::BeingCollected)),
        "{refused:?}"
    );
    assert_eq!(store.blob_size(&other, &layer.digest).await.unwrap(), None);
    assert!(
        !store.repository_exists(&other).await.unwrap(),
        "a refused push creates nothing"
    );

    // A mount finds nothing to mount once the blob is marked.
    let shared = blob("gc-race-mount");
    store
        .link_blob(&r, &shared.digest, shared.size, &origin())
        .await
        .unwrap();
    store
        .mark_unreferenced_blobs(
            22,
            std::slice::from_ref(&shared.digest),
            free_before(now_cutoff()),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .mount_blob(&other, &shared.digest, &r, &origin())
            .await
            .unwrap(),
        None
    );
}

/// A batch is marked in one transaction, its digests locked at once: mounts of some of its
/// digests racing it each either win (the blob stays, linked where it was and where it was
/// mounted) or lose (the mount finds nothing); never a mark with a link left, nor a mount
/// of a marked blob.
async fn mounts_racing_a_batch_mark_keep_or_lose_each_blob_whole(store: &dyn MetadataStore) {
    let (from, to) = (repo("gc/batch/from"), repo("gc/batch/to"));
    let layers: Vec<Descriptor> = (0..40).map(|i| blob(&format!("gc-batch-{i}"))).collect();
    for layer in &layers {
        store
            .link_blob(&from, &layer.digest, layer.size, &origin())
            .await
            .unwrap();
    }
    let digests: Vec<Digest> = layers.iter().map(|l| l.digest.clone()).collect();
    // Links made by the mounts are older than this cutoff too: once a mount has committed,
    // the mark may still take the blob (a grace period of zero); what matters is that it
    // then takes it from every repository.
    let cutoff = now_cutoff();
    let origin = origin();
    let mounts = futures_util::future::join_all(
        digests
            .iter()
            .map(|d| store.mount_blob(&to, d, &from, &origin)),
    );
    let (marked, mounted) = tokio::join!(
        store.mark_unreferenced_blobs(31, &digests, free_before(cutoff)),
        mounts
    );
    let marked: Vec<Digest> = marked
        .unwrap()
        .blobs
        .into_iter()
        .map(|c| c.digest)
        .collect();
    for (digest, mounted) in digests.iter().zip(mounted) {
        let mounted = mounted.unwrap().is_some();
        let deletion = store.blob_deletion(digest).await.unwrap();
        let at_from = store.blob_size(&from, digest).await.unwrap();
        let at_to = store.blob_size(&to, digest).await.unwrap();
        if marked.contains(digest) {
            assert_eq!(
                deletion.map(|d| (d.run, d.state)),
                Some((31, DeletionState::Marked))
            );
            assert_eq!(
                (at_from, at_to),
                (None, None),
                "a marked blob is linked nowhere"
            );
        } else {
            assert_eq!(deletion, None, "{digest}");
            assert!(at_from.is_some(), "an unmarked blob stays where it was");
            assert!(mounted, "a mount fails only when the blob was marked first");
            assert!(at_to.is_some(), "a mount that won is kept");
        }
    }
}

async fn reachability_follows_tags_indexes_and_referrers(store: &dyn MetadataStore) {
    let r = repo("gc/reach/app");
    let layer = blob("gc-reach-layer");
    store
        .link_blob(&r, &layer.digest, layer.size, &origin())
        .await
        .unwrap();
    let layers = std::slice::from_ref(&layer);
    let tag = Tag::parse("v1").unwrap();
    let child = manifest(store, &r, "{\"reach\":\"child\"}", layers, &[], None, None).await;
    let index = manifest(
        store,
        &r,
        "{\"reach\":\"index\"}",
        &[],
        std::slice::from_ref(&child),
        None,
        Some(&tag),
    )
    .await;
    let signature = manifest(
        store,
        &r,
        "{\"reach\":\"signature\"}",
        layers,
        &[],
        Some(&index.digest),
        None,
    )
    .await;
    let signature_of_signature = manifest(
        store,
        &r,
        "{\"reach\":\"countersignature\"}",
        layers,
        &[],
        Some(&signature.digest),
        None,
    )
    .await;
    let orphan_referrer = manifest(
        store,
        &r,
        "{\"reach\":\"dangling\"}",
        layers,
        &[],
        Some(&Digest::of(Algorithm::Sha256, b"nothing here")),
        None,
    )
    .await;
    let loose = manifest(store, &r, "{\"reach\":\"loose\"}", layers, &[], None, None).await;

    // Everything is young: nothing is untagged yet.
    let before = now_millis() - 60_000;
    assert!(
        store
            .untagged_manifests(&r, before, NO_HISTORY)
            .await
            .unwrap()
            .is_empty()
    );

    let cutoff = now_cutoff();
    let untagged = store
        .untagged_manifests(&r, cutoff, NO_HISTORY)
        .await
        .unwrap();
    let digests: Vec<&Digest> = untagged.iter().map(|m| &m.digest).collect();
    assert_eq!(
        digests,
        vec![&orphan_referrer.digest, &loose.digest],
        "children of a tagged index and referrers of reachable manifests are reachable"
    );

    // A tag that appears between the listing and the deletion protects its manifest.
    store
        .put_manifest(NewManifest {
            repository: &r,
            digest: &loose.digest,
            media_type: berth_oci::manifest::OCI_IMAGE_MANIFEST,
            content: b"{\"reach\":\"loose\"}",
            blobs: layers,
            children: &[],
            subject: None,
            artifact_type: None,
            annotations: None,
            tag: Some(&Tag::parse("late").unwrap()),
            origin: &origin(),
            source: ManifestSource::Push,
        })
        .await
        .unwrap();
    let ids: Vec<i64> = untagged.iter().map(|m| m.id).collect();
    let (deleted, events) = store
        .delete_untagged_manifests(&r, &ids, cutoff, NO_HISTORY, &origin())
        .await
        .unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].digest, orphan_referrer.digest);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, crate::EventKind::ManifestDeleted);
    assert_eq!(events[0].digest.as_ref(), Some(&orphan_referrer.digest));

    // Untagging the index leaves the whole tree unreachable.
    store.delete_tag(&r, &tag, None, &origin()).await.unwrap();
    let untagged = store
        .untagged_manifests(&r, now_cutoff(), NO_HISTORY)
        .await
        .unwrap();
    let mut digests: Vec<&Digest> = untagged.iter().map(|m| &m.digest).collect();
    digests.sort();
    let mut expected = vec![
        &child.digest,
        &index.digest,
        &signature.digest,
        &signature_of_signature.digest,
    ];
    expected.sort();
    assert_eq!(digests, expected);
    // The layer stays referenced until those manifests go.
    assert!(
        candidates(store, &[&layer.digest], now_cutoff())
            .await
            .is_empty()
    );
    let ids: Vec<i64> = untagged.iter().map(|m| m.id).collect();
    store
        .delete_untagged_manifests(&r, &ids, now_cutoff(), NO_HISTORY, &origin())
        .await
        .unwrap();
    let references = store.manifest_blob_references(&ids).await.unwrap();
    assert!(references.is_empty(), "their references went with them");
    // `loose` (tagged `late`) still references it.
    assert!(
        candidates(store, &[&layer.digest], now_cutoff())
            .await
            .is_empty()
    );
    let counts = store
        .blob_reference_counts(
            std::slice::from_ref(&layer.digest),
            free_before(now_cutoff()),
        )
        .await
        .unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].1, 1);
    assert!(!counts[0].2, "not recent for a cutoff of now");
}

async fn orphans_are_bytes_without_records(store: &dyn MetadataStore) {
    let r = repo("gc/orphans/app");
    let (recorded, orphan) = (blob("gc-orphan-recorded"), blob("gc-orphan-bytes"));
    store
        .link_blob(&r, &recorded.digest, recorded.size, &origin())
        .await
        .unwrap();
    let listed = [recorded.digest.clone(), orphan.digest.clone()];
    assert_eq!(
        store.unrecorded_blobs(&listed).await.unwrap(),
        vec![orphan.digest.clone()]
    );
    let marked = store
        .mark_orphan_blobs(
            31,
            &[
                (recorded.digest.clone(), recorded.size),
                (orphan.digest.clone(), orphan.size),
            ],
        )
        .await
        .unwrap();
    assert_eq!(marked, vec![orphan.digest.clone()]);
    assert!(store.unrecorded_blobs(&listed).await.unwrap().is_empty());
    let pending = store.pending_blob_deletions().await.unwrap();
    assert!(pending.marked >= 1);

    // A push committing the same bytes right now wins.
    let seen = store.blob_deletion(&orphan.digest).await.unwrap();
    link_seen(store, &r, &orphan.digest, orphan.size, seen)
        .await
        .unwrap();
    assert_eq!(store.blob_deletion(&orphan.digest).await.unwrap(), None);
}

async fn runs_are_recorded(store: &dyn MetadataStore) {
    let first = store.start_gc_run("schedule", "system", "a").await.unwrap();
    let second = store.start_gc_run("cli", "cli:root", "b").await.unwrap();
    assert!(second > first);
    store
        .gc_run_progress(second, "{\"phase\":\"mark\"}")
        .await
        .unwrap();
    assert_eq!(store.interrupt_gc_runs(second).await.unwrap(), vec![first]);
    store
        .finish_gc_run(second, GcRunStatus::Finished, "{\"freed\":1}", None)
        .await
        .unwrap();
    let run = store.gc_run(second).await.unwrap().unwrap();
    assert_eq!(run.status, GcRunStatus::Finished);
    assert_eq!(run.trigger, "cli");
    assert_eq!(run.actor, "cli:root");
    assert_eq!(run.report.as_deref(), Some("{\"freed\":1}"));
    assert_eq!(run.progress, None);
    assert!(run.finished_at.is_some());
    let runs = store.gc_runs(None, 10).await.unwrap();
    assert_eq!(
        runs.iter().map(|r| (r.id, r.status)).collect::<Vec<_>>()[..2],
        [
            (second, GcRunStatus::Finished),
            (first, GcRunStatus::Interrupted)
        ]
    );
    assert_eq!(store.gc_runs(Some(second), 10).await.unwrap()[0].id, first);
}

/// Records a blob whose bytes were committed after `seen` was read, as a push does.
async fn link_seen(
    store: &dyn MetadataStore,
    repository: &RepositoryName,
    digest: &Digest,
    size: u64,
    seen: Option<BlobDeletion>,
) -> crate::Result<Vec<crate::Event>> {
    let blob = crate::NewBlob {
        digest,
        size,
        cid: None,
    };
    store
        .record_committed_blob(repository, blob, seen, &origin())
        .await
}
