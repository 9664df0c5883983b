//! How the tag history behaves in every [`MetadataStore`] (see [`crate::tag_history`]): the
//! transactions that untag record it, a restore puts the tag back under the same rules as a
//! push, and unexpired entries keep their manifests from garbage collection.

use std::sync::Arc;

use berth_oci::{Algorithm, Digest, Pattern, RepositoryName, Tag, TagPattern};

use crate::events::{EventKind, Origin};
use crate::tag_history::RestoreOutcome;
use crate::{ManifestSource, MetaError, MetadataStore, NewManifest, now_millis};

pub async fn run_tag_history(store: &dyn MetadataStore) {
    deletes_and_moves_are_recorded_newest_first(store).await;
    a_manifest_deleted_by_digest_is_restored_from_its_copy(store).await;
    a_restore_puts_the_tag_back_and_follows_the_rules(store).await;
    unexpired_history_keeps_manifests_reachable(store).await;
    expired_entries_are_forgotten(store).await;
}

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

fn tag(name: &str) -> Tag {
    Tag::parse(name).unwrap()
}

fn origin() -> Arc<Origin> {
    Arc::new(Origin::system("history-behaviour"))
}

/// Pushes a manifest with no references, under `tagged` if given; returns its digest.
async fn push(
    store: &dyn MetadataStore,
    repository: &str,
    tagged: Option<&str>,
    body: &str,
) -> Digest {
    let content = format!("{{\"schemaVersion\":2,\"history\":{body:?}}}");
    let digest = Digest::of(Algorithm::Sha256, content.as_bytes());
    let tagged = tagged.map(tag);
    store
        .put_manifest(NewManifest {
            repository: &repo(repository),
            digest: &digest,
            media_type: berth_oci::manifest::OCI_IMAGE_MANIFEST,
            content: content.as_bytes(),
            blobs: &[],
            children: &[],
            subject: None,
            artifact_type: None,
            annotations: None,
            tag: tagged.as_ref(),
            origin: &origin(),
            source: ManifestSource::Push,
        })
        .await
        .unwrap();
    digest
}

async fn deletes_and_moves_are_recorded_newest_first(store: &dyn MetadataStore) {
    let r = repo("history/a");
    let first = push(store, "history/a", Some("latest"), "1").await;
    let second = push(store, "history/a", Some("latest"), "2").await;
    push(store, "history/a", Some("other"), "3").await;
    store
        .delete_tag(&r, &tag("latest"), None, &origin())
        .await
        .unwrap()
        .expect("deleted");
    let entries = store
        .tag_history(&r, Some(&tag("latest")), 0, 10)
        .await
        .unwrap();
    let seen: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.digest.as_str(), e.reason.as_str()))
        .collect();
    assert_eq!(
        seen,
        [(second.as_str(), "deleted"), (first.as_str(), "moved")],
        "newest first"
    );
    assert!(
        entries
            .iter()
            .all(|e| e.restorable && e.actor == "system:history-behaviour")
    );
    // Every tag of the repository; none removed after now.
    assert_eq!(store.tag_history(&r, None, 0, 10).await.unwrap().len(), 2);
    assert!(
        store
            .tag_history(&r, None, now_millis() + 1000, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_restore_puts_the_tag_back_and_follows_the_rules(store: &dyn MetadataStore) {
    let r = repo("history/b");
    let old = push(store, "history/b", Some("v1"), "old").await;
    store
        .delete_tag(&r, &tag("v1"), None, &origin())
        .await
        .unwrap();
    let RestoreOutcome::Restored(events) = store
        .restore_tag(&r, &tag("v1"), &old, &origin())
        .await
        .unwrap()
    else {
        panic!("the manifest is stored: restored");
    };
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::TagCreated);
    // Restoring over a tag that moved since records where it pointed.
    let new = push(store, "history/b", Some("v1"), "new").await;
    let RestoreOutcome::Restored(events) = store
        .restore_tag(&r, &tag("v1"), &old, &origin())
        .await
        .unwrap()
    else {
        panic!("restored");
    };
    assert_eq!(events[0].kind, EventKind::TagMoved);
    assert_eq!(events[0].previous.as_ref(), Some(&new));
    let newest = &store.tag_history(&r, Some(&tag("v1")), 0, 1).await.unwrap()[0];
    assert_eq!(
        (newest.digest.as_str(), newest.reason.as_str()),
        (new.as_str(), "moved")
    );
    // Where it points already: nothing to do.
    let RestoreOutcome::Restored(events) = store
        .restore_tag(&r, &tag("v1"), &old, &origin())
        .await
        .unwrap()
    else {
        panic!("restored");
    };
    assert!(events.is_empty());
    // An immutability rule protecting the tag where it points refuses the move.
    let rule = store
        .add_immutable_tag_rule(
            &Pattern::parse("history/b").unwrap(),
            &TagPattern::parse("v*").unwrap(),
            "alice",
        )
        .await
        .unwrap();
    let refused = store.restore_tag(&r, &tag("v1"), &new, &origin()).await;
    assert!(
        matches!(refused, Err(MetaError::ImmutableTag { .. })),
        "{refused:?}"
    );
    store.remove_immutable_tag_rule(rule.id).await.unwrap();
    // Content that is gone cannot be restored.
    store
        .delete_manifest(&r, &new, &origin())
        .await
        .unwrap()
        .expect("deleted");
    assert_eq!(
        store
            .restore_tag(&r, &tag("latest"), &new, &origin())
            .await
            .unwrap(),
        RestoreOutcome::ContentGone
    );
    assert_eq!(
        store
            .restore_tag(&repo("history/none"), &tag("v1"), &new, &origin())
            .await
            .unwrap(),
        RestoreOutcome::ContentGone
    );
}

async fn unexpired_history_keeps_manifests_reachable(store: &dyn MetadataStore) {
    let r = repo("history/c");
    let kept = push(store, "history/c", Some("v1"), "kept").await;
    let before_delete = now_millis();
    store
        .delete_tag(&r, &tag("v1"), None, &origin())
        .await
        .unwrap();
    let cutoff = now_millis() + 1;
    let unreachable = |since: i64| {
        let r = r.clone();
        async move {
            store
                .untagged_manifests(&r, cutoff, since)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.digest)
                .collect::<Vec<_>>()
        }
    };
    assert!(
        unreachable(before_delete).await.is_empty(),
        "an entry removed after the history's start keeps its manifest"
    );
    assert_eq!(
        unreachable(now_millis() + 1000).await,
        vec![kept.clone()],
        "an expired entry keeps nothing"
    );
    let untagged = store
        .untagged_manifests(&r, cutoff, i64::MAX)
        .await
        .unwrap();
    let ids: Vec<i64> = untagged.iter().map(|m| m.id).collect();
    let (deleted, _) = store
        .delete_untagged_manifests(&r, &ids, cutoff, before_delete, &origin())
        .await
        .unwrap();
    assert!(
        deleted.is_empty(),
        "the re-check under the lock sees the history too"
    );
}

async fn expired_entries_are_forgotten(store: &dyn MetadataStore) {
    let r = repo("history/d");
    push(store, "history/d", Some("v1"), "d").await;
    store
        .delete_tag(&r, &tag("v1"), None, &origin())
        .await
        .unwrap();
    let now = now_millis() + 1;
    assert!(store.expire_tag_history(now).await.unwrap() >= 1);
    assert!(store.tag_history(&r, None, 0, 10).await.unwrap().is_empty());
}

async fn a_manifest_deleted_by_digest_is_restored_from_its_copy(store: &dyn MetadataStore) {
    let r = repo("history/e");
    let layer = Digest::of(Algorithm::Sha256, b"history-e-layer");
    store.link_blob(&r, &layer, 15, &origin()).await.unwrap();
    let content =
        format!("{{\"schemaVersion\":2,\"layers\":[{{\"digest\":\"{layer}\",\"size\":15}}]}}");
    let digest = Digest::of(Algorithm::Sha256, content.as_bytes());
    let descriptor = berth_oci::Descriptor {
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        digest: layer.clone(),
        size: 15,
        urls: None,
        annotations: None,
        artifact_type: None,
        platform: None,
    };
    store
        .put_manifest(NewManifest {
            repository: &r,
            digest: &digest,
            media_type: berth_oci::manifest::OCI_IMAGE_MANIFEST,
            content: content.as_bytes(),
            blobs: std::slice::from_ref(&descriptor),
            children: &[],
            subject: None,
            artifact_type: None,
            annotations: None,
            tag: Some(&tag("v1")),
            origin: &origin(),
            source: ManifestSource::Push,
        })
        .await
        .unwrap();
    store
        .delete_manifest(&r, &digest, &origin())
        .await
        .unwrap()
        .expect("deleted");
    let entry = &store.tag_history(&r, Some(&tag("v1")), 0, 1).await.unwrap()[0];
    assert_eq!(
        (
            entry.digest.as_str(),
            entry.reason.as_str(),
            entry.restorable
        ),
        (digest.as_str(), "deleted", true)
    );
    // While the copy is kept, its layer is referenced: not a collection candidate. Once the
    // history has expired (a dry run reads it so before it is forgotten), it is.
    let deleted_at = now_millis();
    let is_candidate = |history_since: i64| {
        let layer = layer.clone();
        async move {
            let collectable = crate::gc::Collectable {
                cutoff: now_millis() + 1,
                history_since,
            };
            let page = store
                .unreferenced_blobs(None, collectable, 1_000_000, 1_000_000)
                .await
                .unwrap();
            let counts = store
                .blob_reference_counts(std::slice::from_ref(&layer), collectable)
                .await
                .unwrap();
            let references = counts[0].1;
            (
                page.candidates.iter().any(|c| c.digest == layer),
                references,
            )
        }
    };
    assert_eq!(is_candidate(deleted_at - 60_000).await, (false, 1));
    assert_eq!(is_candidate(deleted_at + 60_000).await, (true, 0));

    let RestoreOutcome::Restored(events) = store
        .restore_tag(&r, &tag("v1"), &digest, &origin())
        .await
        .unwrap()
    else {
        panic!("restored from the copy");
    };
    assert_eq!(events[0].kind, EventKind::TagCreated);
    let stored = store
        .manifest(&r, &berth_oci::Reference::Tag(tag("v1")))
        .await
        .unwrap()
        .expect("the manifest is back");
    assert_eq!(stored.content.as_ref(), content.as_bytes());
    // Deleted again, and its layer gone meanwhile: nothing to restore.
    store
        .delete_manifest(&r, &digest, &origin())
        .await
        .unwrap()
        .expect("deleted");
    store.unlink_blob(&r, &layer, &origin()).await.unwrap();
    assert_eq!(
        store
            .restore_tag(&r, &tag("v1"), &digest, &origin())
            .await
            .unwrap(),
        RestoreOutcome::ContentGone
    );
}
