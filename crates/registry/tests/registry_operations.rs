//! Registry operations against the real embedded backends (SQLite + filesystem) in a
//! temporary directory.

use std::sync::Arc;
use std::time::Duration;

use berth_meta::SqliteStore;
use berth_oci::manifest::OCI_IMAGE_MANIFEST;
use berth_oci::{Algorithm, ContentRange, Digest, ErrorCode, Page, Reference, RepositoryName, Tag};
use berth_registry::events::Origin;
use berth_registry::{Chunk, Registry, Settings};
use berth_storage::{BlobContent, ByteStream, FilesystemStore};
use bytes::Bytes;
use futures_util::{StreamExt, stream};

async fn registry_at(dir: &std::path::Path, settings: Settings) -> Registry {
    let blobs = FilesystemStore::open(dir).unwrap();
    let meta = SqliteStore::open(&dir.join("berth.db")).await.unwrap();
    Registry::new(Arc::new(blobs), Arc::new(meta), settings)
}

fn body(data: &[u8]) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(7)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(stream::iter(chunks))
}

fn chunk(data: &[u8], range: Option<(u64, u64)>) -> Chunk {
    Chunk {
        content_range: range.map(|(start, end)| ContentRange { start, end }),
        content_length: Some(data.len() as u64),
        body: body(data),
    }
}

fn origin() -> Arc<Origin> {
    Arc::new(Origin::system("test"))
}

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

async fn read_all(registry: &Registry, repository: &RepositoryName, digest: &Digest) -> Vec<u8> {
    let read = registry
        .read_blob(&origin(), repository, digest, None)
        .await
        .unwrap();
    let BlobContent::Stream(mut s) = read.content else {
        panic!("stream expected")
    };
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

#[tokio::test]
async fn chunked_upload_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let r = repo("team/app");
    let data = b"the quick brown fox jumps over the lazy dog";
    let digest = Digest::of(Algorithm::Sha256, data);

    let id = {
        let registry = registry_at(dir.path(), Settings::default()).await;
        let session = registry.start_upload(&r).await.unwrap();
        let session = registry
            .append_upload(&r, session.id, chunk(&data[..10], Some((0, 9))))
            .await
            .unwrap();
        assert_eq!(session.size, 10);
        session.id
    };
    // A new process on the same data.
    let registry = registry_at(dir.path(), Settings::default()).await;
    assert_eq!(registry.upload_status(&r, id).await.unwrap().size, 10);
    registry
        .append_upload(&r, id, chunk(&data[10..30], Some((10, 29))))
        .await
        .unwrap();
    let size = registry
        .finish_upload(&origin(), &r, id, &digest, chunk(&data[30..], None))
        .await
        .unwrap();
    assert_eq!(size, data.len() as u64);
    assert_eq!(read_all(&registry, &r, &digest).await, data);
    assert_eq!(
        registry.upload_status(&r, id).await.unwrap_err().code,
        ErrorCode::BlobUploadUnknown
    );
}

#[tokio::test]
async fn out_of_order_and_mis_sized_chunks_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry_at(dir.path(), Settings::default()).await;
    let r = repo("chunks");
    let session = registry.start_upload(&r).await.unwrap();
    registry
        .append_upload(&r, session.id, chunk(b"12345", Some((0, 4))))
        .await
        .unwrap();

    let err = registry
        .append_upload(&r, session.id, chunk(b"xx", Some((3, 4))))
        .await
        .unwrap_err();
    assert_eq!((err.code, err.status), (ErrorCode::RangeInvalid, 416));
    assert_eq!(err.headers, vec![("range", "0-4".to_string())]);
    let err = registry
        .append_upload(&r, session.id, chunk(b"xx", Some((9, 4))))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::RangeInvalid);
    // Content-Range says 3 bytes, body has 2.
    let mut short = chunk(b"67", Some((5, 7)));
    short.content_length = None;
    assert_eq!(
        registry
            .append_upload(&r, session.id, short)
            .await
            .unwrap_err()
            .code,
        ErrorCode::SizeInvalid
    );
    assert_eq!(
        registry.upload_status(&r, session.id).await.unwrap().size,
        5
    );

    // The upload still completes correctly.
    registry
        .append_upload(&r, session.id, chunk(b"678", Some((5, 7))))
        .await
        .unwrap();
    let digest = Digest::of(Algorithm::Sha256, b"12345678");
    registry
        .finish_upload(&origin(), &r, session.id, &digest, chunk(b"", None))
        .await
        .unwrap();
    assert_eq!(read_all(&registry, &r, &digest).await, b"12345678");
}

#[tokio::test]
async fn digest_mismatch_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry_at(dir.path(), Settings::default()).await;
    let r = repo("mismatch");
    let wrong = Digest::of(Algorithm::Sha256, b"something else");
    let err = registry
        .upload_blob(&origin(), &r, &wrong, Some(4), body(b"data"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::DigestInvalid);

    let session = registry.start_upload(&r).await.unwrap();
    let err = registry
        .finish_upload(&origin(), &r, session.id, &wrong, chunk(b"data", None))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::DigestInvalid);
    assert_eq!(
        registry
            .upload_status(&r, session.id)
            .await
            .unwrap_err()
            .code,
        ErrorCode::BlobUploadUnknown
    );

    let right = Digest::of(Algorithm::Sha256, b"data");
    assert_eq!(
        registry.blob_size(&r, &right).await.unwrap_err().code,
        ErrorCode::BlobUnknown
    );
    assert_eq!(
        registry.blob_size(&r, &wrong).await.unwrap_err().code,
        ErrorCode::BlobUnknown
    );
    let uploads = std::fs::read_dir(dir.path().join("berth/uploads"))
        .unwrap()
        .count();
    assert_eq!(uploads, 0, "no upload data is left behind");
    assert!(
        !dir.path().join("docker/registry/v2/blobs/sha256").exists(),
        "no blob was stored"
    );
}

/// A follower of an upload (a pull-through cache's clients) as the registry sees it: what
/// was written when it heard that the bytes are the blob, and whether they were stored then.
struct Follower {
    stored_at: std::path::PathBuf,
    written: std::sync::Mutex<u64>,
    verified: std::sync::Mutex<Vec<(u64, bool)>>,
}

impl berth_storage::UploadFollower for Follower {
    fn opened(&self, _: Arc<std::fs::File>) {}

    fn written(&self, upto: u64) {
        *self.written.lock().unwrap() = upto;
    }

    fn verified(&self) {
        let written = *self.written.lock().unwrap();
        self.verified
            .lock()
            .unwrap()
            .push((written, self.stored_at.exists()));
    }
}

/// The follower hears that the bytes are the blob once all of them are checked, before the
/// commit flushes and records them (its clients need not wait for that), and never when
/// they are not the blob.
#[tokio::test]
async fn a_followed_upload_is_verified_before_its_commit_and_never_when_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry_at(dir.path(), Settings::default()).await;
    let r = repo("followed");
    let data = b"a layer a cache fetches";
    let digest = Digest::of(Algorithm::Sha256, data);
    let hex = digest.hex();
    let follower = Follower {
        stored_at: dir.path().join(format!(
            "docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        )),
        written: Default::default(),
        verified: Default::default(),
    };
    let len = data.len() as u64;

    let wrong = Digest::of(Algorithm::Sha256, b"another layer");
    let err = registry
        .upload_blob_followed(&origin(), &r, &wrong, Some(len), body(data), &follower)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::DigestInvalid);
    assert!(
        follower.verified.lock().unwrap().is_empty(),
        "never verified"
    );

    let size = registry
        .upload_blob_followed(&origin(), &r, &digest, Some(len), body(data), &follower)
        .await
        .unwrap();
    assert_eq!(size, len);
    assert_eq!(
        *follower.verified.lock().unwrap(),
        [(len, false)],
        "verified once, every byte written, before the commit stored the blob"
    );
    assert!(follower.stored_at.exists(), "committed after");
    assert_eq!(read_all(&registry, &r, &digest).await, data);
}

#[tokio::test]
async fn sha512_uploads_are_verified() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry_at(dir.path(), Settings::default()).await;
    let r = repo("sha512");
    let digest = Digest::of(Algorithm::Sha512, b"chunked sha512 content");
    let session = registry.start_upload(&r).await.unwrap();
    registry
        .append_upload(&r, session.id, chunk(b"chunked ", Some((0, 7))))
        .await
        .unwrap();
    registry
        .finish_upload(
            &origin(),
            &r,
            session.id,
            &digest,
            chunk(b"sha512 content", None),
        )
        .await
        .unwrap();
    assert_eq!(
        read_all(&registry, &r, &digest).await,
        b"chunked sha512 content"
    );
    let mono = Digest::of(Algorithm::Sha512, b"monolithic");
    registry
        .upload_blob(&origin(), &r, &mono, None, body(b"monolithic"))
        .await
        .unwrap();
}

#[tokio::test]
async fn blobs_are_visible_only_where_pushed_or_mounted() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry_at(dir.path(), Settings::default()).await;
    let (a, b, c) = (repo("a"), repo("b"), repo("c"));
    let digest = Digest::of(Algorithm::Sha256, b"shared layer");
    registry
        .upload_blob(&origin(), &a, &digest, None, body(b"shared layer"))
        .await
        .unwrap();
    assert_eq!(
        registry.blob_size(&b, &digest).await.unwrap_err().code,
        ErrorCode::BlobUnknown
    );

    assert_eq!(
        registry
            .mount_blob(&origin(), &b, &digest, Some(&c), &|_| true)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        registry
            .mount_blob(&origin(), &b, &digest, Some(&a), &|_| true)
            .await
            .unwrap(),
        Some(12)
    );
    assert_eq!(
        registry
            .mount_blob(&origin(), &c, &digest, None, &|_| true)
            .await
            .unwrap(),
        Some(12)
    );
    assert_eq!(read_all(&registry, &c, &digest).await, b"shared layer");
    let unknown = Digest::of(Algorithm::Sha256, b"unknown");
    assert_eq!(
        registry
            .mount_blob(&origin(), &c, &unknown, None, &|_| true)
            .await
            .unwrap(),
        None
    );
}

fn image_manifest(config: &Digest, config_size: usize, layer: &Digest, layer_size: usize) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": layer_size}],
        })
        .to_string(),
    )
}

#[tokio::test]
async fn manifests_need_their_blobs_and_deletion_needs_the_switch() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry_at(dir.path(), Settings::default()).await;
    let r = repo("library/app");
    let (config, layer) = (b"{\"config\":true}".as_slice(), b"layer bytes".as_slice());
    let (config_digest, layer_digest) = (
        Digest::of(Algorithm::Sha256, config),
        Digest::of(Algorithm::Sha256, layer),
    );
    let manifest = image_manifest(&config_digest, config.len(), &layer_digest, layer.len());
    let latest = Reference::Tag(Tag::parse("latest").unwrap());

    registry
        .upload_blob(&origin(), &r, &config_digest, None, body(config))
        .await
        .unwrap();
    let err = registry
        .put_manifest(
            &origin(),
            &r,
            &latest,
            Some(OCI_IMAGE_MANIFEST),
            manifest.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ManifestBlobUnknown);
    assert!(err.body().to_string().contains(layer_digest.as_str()));

    registry
        .upload_blob(&origin(), &r, &layer_digest, None, body(layer))
        .await
        .unwrap();
    let pushed = registry
        .put_manifest(
            &origin(),
            &r,
            &latest,
            Some(OCI_IMAGE_MANIFEST),
            manifest.clone(),
        )
        .await
        .unwrap();
    assert_eq!(pushed.digest, Digest::of(Algorithm::Sha256, &manifest));
    let got = registry
        .get_manifest(Some(&origin()), &r, &latest, [OCI_IMAGE_MANIFEST])
        .await
        .unwrap();
    assert_eq!(got.content, manifest);
    let err = registry
        .get_manifest(
            Some(&origin()),
            &r,
            &latest,
            ["application/vnd.docker.distribution.manifest.v2+json"],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ManifestUnknown);
    let err = registry
        .get_manifest(Some(&origin()), &repo("nope"), &latest, [])
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NameUnknown);

    // Pushing by a digest that is not the content's.
    let wrong = Reference::Digest(Digest::of(Algorithm::Sha256, b"not it"));
    let err = registry
        .put_manifest(&origin(), &r, &wrong, None, manifest.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::DigestInvalid);

    let err = registry
        .delete_manifest(&origin(), &r, &latest)
        .await
        .unwrap_err();
    assert_eq!((err.code, err.status), (ErrorCode::Unsupported, 405));
    let registry = registry_at(
        dir.path(),
        Settings {
            delete_enabled: true,
            read_only: false,
        },
    )
    .await;
    registry
        .delete_manifest(&origin(), &r, &latest)
        .await
        .unwrap();
    assert_eq!(
        registry
            .delete_manifest(&origin(), &r, &latest)
            .await
            .unwrap_err()
            .code,
        ErrorCode::ManifestUnknown
    );
    let by_digest = Reference::Digest(pushed.digest.clone());
    registry
        .get_manifest(Some(&origin()), &r, &by_digest, [])
        .await
        .expect("deleting the tag keeps the manifest");
    registry
        .delete_manifest(&origin(), &r, &by_digest)
        .await
        .unwrap();
    assert_eq!(
        registry
            .get_manifest(Some(&origin()), &r, &by_digest, [])
            .await
            .unwrap_err()
            .code,
        ErrorCode::ManifestUnknown
    );
}

#[tokio::test]
async fn tag_pages_link_onwards() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry_at(dir.path(), Settings::default()).await;
    let r = repo("paged");
    let config = b"{}";
    let config_digest = Digest::of(Algorithm::Sha256, config);
    registry
        .upload_blob(&origin(), &r, &config_digest, None, body(config))
        .await
        .unwrap();
    let manifest = Bytes::from(
        serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_IMAGE_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config_digest, "size": 2},
            "layers": []
        })
        .to_string(),
    );
    for tag in ["c", "a", "b"] {
        let reference = Reference::Tag(Tag::parse(tag).unwrap());
        registry
            .put_manifest(&origin(), &r, &reference, None, manifest.clone())
            .await
            .unwrap();
    }
    let first = registry
        .tags(
            &r,
            &Page {
                limit: Some(2),
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (first.items.clone(), first.next_after()),
        (vec!["a".to_string(), "b".to_string()], Some("b"))
    );
    let second = registry
        .tags(
            &r,
            &Page {
                limit: Some(2),
                after: Some("b".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (second.items.clone(), second.next_after()),
        (vec!["c".to_string()], None)
    );
    let all = registry
        .tags(
            &r,
            &Page {
                limit: None,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(all.items.len(), 3);
    assert_eq!(
        registry
            .tags(
                &repo("unknown"),
                &Page {
                    limit: None,
                    after: None
                }
            )
            .await
            .unwrap_err()
            .code,
        ErrorCode::NameUnknown
    );
    let catalog = registry
        .catalog(
            &Page {
                limit: None,
                after: None,
            },
            &|_| true,
        )
        .await
        .unwrap();
    assert_eq!(catalog.items, vec!["paged"]);
}

#[tokio::test]
async fn a_filtered_catalog_keeps_pages_full() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry_at(dir.path(), Settings::default()).await;
    for i in 0..30 {
        let data = format!("blob {i}");
        let digest = Digest::of(Algorithm::Sha256, data.as_bytes());
        let name = if i % 3 == 0 {
            format!("public/r{i:02}")
        } else {
            format!("secret/r{i:02}")
        };
        registry
            .upload_blob(
                &origin(),
                &repo(&name),
                &digest,
                None,
                body(data.into_bytes().leak()),
            )
            .await
            .unwrap();
    }
    let visible = |name: &str| name.starts_with("public/");
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = registry
            .catalog(
                &Page {
                    limit: Some(3),
                    after: after.clone(),
                },
                &visible,
            )
            .await
            .unwrap();
        assert!(
            page.items.len() == 3 || page.next_after().is_none(),
            "{page:?}"
        );
        seen.extend(page.items.clone());
        match page.next_after() {
            Some(last) => after = Some(last.to_string()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..30)
        .filter(|i| i % 3 == 0)
        .map(|i| format!("public/r{i:02}"))
        .collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn abandoned_uploads_are_purged() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry_at(dir.path(), Settings::default()).await;
    let r = repo("purge");
    let old = registry.start_upload(&r).await.unwrap();
    // An upload file without a session, as a crash mid-request leaves.
    let orphan = dir
        .path()
        .join("berth/uploads")
        .join(berth_oci::UploadId::random().to_string());
    std::fs::write(&orphan, b"partial").unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fresh = registry.start_upload(&r).await.unwrap();

    let dry = registry
        .purge_uploads(Duration::from_millis(25), true)
        .await
        .unwrap();
    assert_eq!((dry.sessions, dry.orphans), (1, 1));
    assert!(orphan.exists(), "a dry run deletes nothing");
    registry
        .upload_status(&r, old.id)
        .await
        .expect("a dry run deletes nothing");

    let report = registry
        .purge_uploads(Duration::from_millis(25), false)
        .await
        .unwrap();
    assert_eq!((report.sessions, report.orphans), (1, 1));
    assert_eq!(
        registry.upload_status(&r, old.id).await.unwrap_err().code,
        ErrorCode::BlobUploadUnknown
    );
    assert!(!orphan.exists());
    registry
        .upload_status(&r, fresh.id)
        .await
        .expect("recent uploads stay");
}

#[tokio::test]
async fn read_only_mode_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry_at(
        dir.path(),
        Settings {
            delete_enabled: true,
            read_only: true,
        },
    )
    .await;
    let r = repo("frozen");
    let err = registry.start_upload(&r).await.unwrap_err();
    assert_eq!((err.code, err.status), (ErrorCode::Unsupported, 405));
    let digest = Digest::of(Algorithm::Sha256, b"x");
    assert_eq!(
        registry
            .upload_blob(&origin(), &r, &digest, None, body(b"x"))
            .await
            .unwrap_err()
            .code,
        ErrorCode::Unsupported
    );
}
