//! The behaviour of the blob records integrity checks and backups rely on (content ids,
//! quarantine, the inventory), as a suite each engine's tests run after the main one.

use berth_oci::{Algorithm, Descriptor, Digest, RepositoryName};

use crate::behaviour::{origin, origin_ref};
use crate::inventory::BlobInventory;
use crate::{ManifestSource, MetadataStore, NewBlob, NewManifest, ReferenceKind};

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

fn digest_of(content: &str) -> Digest {
    Digest::of(Algorithm::Sha256, content.as_bytes())
}

pub async fn run_all<S: MetadataStore + BlobInventory>(store: &S) {
    content_ids_are_recorded_with_blobs(store).await;
    quarantined_blobs_are_not_mounted_and_a_push_heals_them(store).await;
    blobs_are_verified_least_recently_first(store).await;
    unheld_references_are_found_and_unreferenced_blobs_forgotten(store).await;
}

async fn content_ids_are_recorded_with_blobs<S: MetadataStore + BlobInventory>(store: &S) {
    let r = repo("inventory/cid");
    let digest = digest_of("in ipfs");
    let blob = NewBlob {
        digest: &digest,
        size: 7,
        cid: Some("bafkreiexample"),
    };
    store.record_blob(&r, blob, &origin()).await.unwrap();
    let record = store.blob(&r, &digest).await.unwrap().unwrap();
    assert_eq!(record.cid.as_deref(), Some("bafkreiexample"));
    assert_eq!(record.quarantine, None);
    // Recording it again (another repository) keeps the row as it is.
    let other = NewBlob {
        cid: Some("bafkreiother"),
        ..blob
    };
    store
        .record_blob(&repo("inventory/cid2"), other, &origin())
        .await
        .unwrap();
    let record = store.inventory_blob(&digest).await.unwrap().unwrap();
    assert_eq!(record.cid.as_deref(), Some("bafkreiexample"));
    store.set_cid(&digest, Some("bafkreimoved")).await.unwrap();
    assert_eq!(
        store
            .blob(&r, &digest)
            .await
            .unwrap()
            .unwrap()
            .cid
            .as_deref(),
        Some("bafkreimoved")
    );
}

async fn quarantined_blobs_are_not_mounted_and_a_push_heals_them<
    S: MetadataStore + BlobInventory,
>(
    store: &S,
) {
    let (source, target) = (repo("quarantine/source"), repo("quarantine/target"));
    let digest = digest_of("went bad");
    store
        .link_blob(&source, &digest, 8, &origin())
        .await
        .unwrap();
    assert!(
        store
            .quarantine(&digest, "hashes to sha256:00")
            .await
            .unwrap()
    );
    assert!(
        !store.quarantine(&digest, "again").await.unwrap(),
        "already quarantined"
    );
    let record = store.blob(&source, &digest).await.unwrap().unwrap();
    assert_eq!(record.quarantine.as_deref(), Some("hashes to sha256:00"));
    assert_eq!(
        store
            .mount_blob(&target, &digest, &source, &origin())
            .await
            .unwrap(),
        None,
        "a quarantined blob is not mounted: the client uploads it"
    );
    store.mark_verified(&digest, 1).await.unwrap();
    store
        .record_blob(
            &target,
            NewBlob {
                digest: &digest,
                size: 8,
                cid: None,
            },
            &origin(),
        )
        .await
        .unwrap();
    let healed = store.inventory_blob(&digest).await.unwrap().unwrap();
    assert_eq!(healed.quarantine, None);
    assert_eq!(healed.verified_at, None, "verified again soon");
    assert!(store.blob(&source, &digest).await.unwrap().is_some());
}

async fn blobs_are_verified_least_recently_first<S: MetadataStore + BlobInventory>(store: &S) {
    let r = repo("inventory/verify");
    let digests: Vec<Digest> = (0..3).map(|i| digest_of(&format!("verify {i}"))).collect();
    for digest in &digests {
        store.link_blob(&r, digest, 3, &origin()).await.unwrap();
    }
    // Everything is due: take all, then mark them verified in an order.
    let before = store.blob_counts().await.unwrap();
    assert!(before.blobs >= 3 && before.bytes >= 9);
    store.mark_verified(&digests[0], 2000).await.unwrap();
    store.mark_verified(&digests[1], 1000).await.unwrap();
    store.mark_verified(&digests[2], 3000).await.unwrap();
    let due: Vec<Digest> = store
        .blobs_to_verify(2500, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.digest)
        .filter(|d| digests.contains(d))
        .collect();
    assert_eq!(due, vec![digests[1].clone(), digests[0].clone()]);
    // Quarantined blobs are not verified again.
    assert!(store.quarantine(&digests[1], "bad").await.unwrap());
    let due = store.blobs_to_verify(2500, 1000).await.unwrap();
    assert!(!due.iter().any(|b| b.digest == digests[1]));
    assert_eq!(
        store.blob_counts().await.unwrap().quarantined,
        before.quarantined + 1
    );
    // Paging through every blob in digest order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.blobs_after(after.as_ref(), 2).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.digest.clone());
        seen.extend(page.into_iter().map(|b| b.digest));
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, no repeats");
    assert_eq!(seen.len() as u64, store.blob_counts().await.unwrap().blobs);
}

async fn unheld_references_are_found_and_unreferenced_blobs_forgotten<
    S: MetadataStore + BlobInventory,
>(
    store: &S,
) {
    let r = repo("inventory/unheld");
    let layer = Descriptor {
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        digest: digest_of("needed"),
        size: 6,
        urls: None,
        annotations: None,
        artifact_type: None,
        platform: None,
    };
    store
        .link_blob(&r, &layer.digest, 6, &origin())
        .await
        .unwrap();
    let content = b"{\"unheld\":1}";
    let manifest_digest = Digest::of(Algorithm::Sha256, content);
    store
        .put_manifest(NewManifest {
            repository: &r,
            digest: &manifest_digest,
            media_type: berth_oci::manifest::OCI_IMAGE_MANIFEST,
            content,
            blobs: std::slice::from_ref(&layer),
            children: &[],
            subject: None,
            artifact_type: None,
            annotations: None,
            tag: None,
            origin: origin_ref(),
            source: ManifestSource::Push,
        })
        .await
        .unwrap();
    assert!(
        !store
            .unheld_references(100)
            .await
            .unwrap()
            .iter()
            .any(|u| u.repository == r)
    );
    assert!(
        store
            .unlink_blob(&r, &layer.digest, &origin())
            .await
            .unwrap()
            .is_some()
    );
    let unheld: Vec<_> = store
        .unheld_references(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|u| u.repository == r)
        .collect();
    assert_eq!(unheld.len(), 1);
    assert_eq!(
        (
            unheld[0].manifest.clone(),
            unheld[0].kind,
            unheld[0].digest.clone()
        ),
        (manifest_digest, ReferenceKind::Blob, layer.digest.clone())
    );
    assert!(
        !store.forget_unreferenced_blob(&layer.digest).await.unwrap(),
        "a manifest references it"
    );
    let loose = digest_of("nobody needs me");
    store.link_blob(&r, &loose, 15, &origin()).await.unwrap();
    assert!(store.forget_unreferenced_blob(&loose).await.unwrap());
    assert_eq!(store.inventory_blob(&loose).await.unwrap(), None);
    assert_eq!(store.blob(&r, &loose).await.unwrap(), None);
}
