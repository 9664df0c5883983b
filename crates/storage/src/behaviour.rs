//! The behaviour every [`BlobStore`] must have, as one suite that each implementation's tests
//! run. `store` and `other` are two handles on the same storage (two instances of berth):
//! an upload started through one must continue through the other.
//!
//! Writes only ever start at an acknowledged size (the registry's session row holds it);
//! the suite keeps to that rule too.

use std::io;

use berth_oci::{Algorithm, ByteRange, Digest, DigestHasher, UploadId};
use bytes::Bytes;
use futures_util::{StreamExt, stream};

use crate::{BlobContent, BlobStore, ByteStream, StorageError};

pub async fn run_all(store: &dyn BlobStore, other: &dyn BlobStore, part_size: usize) {
    store.check().await.expect("check");
    writes_commit_and_read_back_with_ranges(store, other).await;
    a_write_that_was_not_acknowledged_is_overwritten(store).await;
    commit_takes_the_acknowledged_size_and_dedupes(store).await;
    large_uploads_cross_part_boundaries(store, other, part_size).await;
    uploads_can_be_read_back(store).await;
    a_failing_body_is_the_clients_failure(store).await;
    missing_things_are_not_found(store).await;
    uploads_are_listed_until_deleted(store).await;
}

fn body(chunks: Vec<&'static [u8]>) -> ByteStream {
    Box::pin(stream::iter(
        chunks.into_iter().map(|c| Ok(Bytes::from_static(c))),
    ))
}

fn owned(data: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<io::Result<Bytes>> = data
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(stream::iter(chunks))
}

async fn collect(mut stream: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("read"));
    }
    out
}

async fn read(store: &dyn BlobStore, digest: &Digest, range: Option<ByteRange>) -> Vec<u8> {
    match store.read_blob(digest, range).await.expect("read blob") {
        BlobContent::Stream(stream) => collect(stream).await,
        BlobContent::Redirect(url) => panic!("the suite runs without redirects, got {url}"),
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

async fn writes_commit_and_read_back_with_ranges(store: &dyn BlobStore, other: &dyn BlobStore) {
    let id = UploadId::random();
    store.create_upload(id).await.unwrap();
    assert_eq!(
        store
            .write_upload(id, 0, body(vec![b"hello ", b"wor"]))
            .await
            .unwrap(),
        9
    );
    // The next chunk arrives at another instance.
    assert_eq!(
        other.write_upload(id, 9, body(vec![b"ld"])).await.unwrap(),
        2
    );
    let digest = Digest::of(Algorithm::Sha256, b"hello world");
    store.commit_upload(id, 11, &digest).await.unwrap();

    assert_eq!(read(store, &digest, None).await, b"hello world");
    assert_eq!(read(other, &digest, None).await, b"hello world");
    assert_eq!(
        read(store, &digest, Some(ByteRange { start: 6, end: 10 })).await,
        b"world"
    );
    assert_eq!(
        read(store, &digest, Some(ByteRange { start: 0, end: 0 })).await,
        b"h"
    );
    let remaining = store.list_uploads().await.unwrap();
    assert!(
        !remaining.iter().any(|(u, _)| *u == id),
        "the upload became the blob"
    );
}

async fn a_write_that_was_not_acknowledged_is_overwritten(store: &dyn BlobStore) {
    let id = UploadId::random();
    store.create_upload(id).await.unwrap();
    store.write_upload(id, 0, body(vec![b"abc"])).await.unwrap();
    // Written, but the session never advanced past 3 (the request failed afterwards).
    store
        .write_upload(id, 3, body(vec![b"zzzzzz"]))
        .await
        .unwrap();
    store.write_upload(id, 3, body(vec![b"def"])).await.unwrap();
    assert_eq!(
        collect(store.read_upload(id, 6).await.unwrap()).await,
        b"abcdef"
    );
    store.delete_upload(id).await.unwrap();
}

async fn commit_takes_the_acknowledged_size_and_dedupes(store: &dyn BlobStore) {
    let digest = Digest::of(Algorithm::Sha256, b"dedupe me");
    for _ in 0..2 {
        let id = UploadId::random();
        store.create_upload(id).await.unwrap();
        store
            .write_upload(id, 0, body(vec![b"dedupe me"]))
            .await
            .unwrap();
        store
            .write_upload(id, 9, body(vec![b"junk"]))
            .await
            .unwrap();
        store.commit_upload(id, 9, &digest).await.unwrap();
    }
    assert_eq!(read(store, &digest, None).await, b"dedupe me");
}

async fn large_uploads_cross_part_boundaries(
    store: &dyn BlobStore,
    other: &dyn BlobStore,
    part_size: usize,
) {
    let id = UploadId::random();
    store.create_upload(id).await.unwrap();
    let data = pattern(part_size * 7 / 2, 7);
    // Odd chunk sizes, small requests (less than a part each), then one large request,
    // alternating instances.
    let first = part_size / 3;
    let second = part_size;
    let mut offset = 0;
    for (i, end) in [first, first * 2, first * 2 + second, data.len()]
        .into_iter()
        .enumerate()
    {
        let handle = if i % 2 == 0 { store } else { other };
        let written = handle
            .write_upload(id, offset as u64, owned(&data[offset..end], 77_777))
            .await
            .unwrap();
        assert_eq!(written, (end - offset) as u64);
        offset = end;
    }
    let mut hasher = DigestHasher::new(Algorithm::Sha256);
    hasher.update(&data);
    let digest = hasher.finish();
    other
        .commit_upload(id, data.len() as u64, &digest)
        .await
        .unwrap();
    let stored = read(store, &digest, None).await;
    assert_eq!(stored.len(), data.len());
    assert!(stored == data, "content differs");
    let start = part_size as u64 - 10;
    let range = ByteRange {
        start,
        end: start + 19,
    };
    assert_eq!(
        read(store, &digest, Some(range)).await,
        &data[start as usize..start as usize + 20]
    );
}

async fn uploads_can_be_read_back(store: &dyn BlobStore) {
    // What the registry does to verify a digest of another algorithm than its running hash.
    let id = UploadId::random();
    store.create_upload(id).await.unwrap();
    store
        .write_upload(id, 0, body(vec![b"read me ", b"back"]))
        .await
        .unwrap();
    assert_eq!(
        collect(store.read_upload(id, 12).await.unwrap()).await,
        b"read me back"
    );
    let digest = Digest::of(Algorithm::Sha512, b"read me back");
    store.commit_upload(id, 12, &digest).await.unwrap();
    assert_eq!(read(store, &digest, None).await, b"read me back");
}

async fn a_failing_body_is_the_clients_failure(store: &dyn BlobStore) {
    let id = UploadId::random();
    store.create_upload(id).await.unwrap();
    let failing: ByteStream = Box::pin(stream::iter(vec![
        Ok(Bytes::from_static(b"partial")),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ]));
    assert!(matches!(
        store.write_upload(id, 0, failing).await,
        Err(StorageError::Body(_))
    ));
    // The upload is still usable from where it was.
    store
        .write_upload(id, 0, body(vec![b"whole"]))
        .await
        .unwrap();
    assert_eq!(
        collect(store.read_upload(id, 5).await.unwrap()).await,
        b"whole"
    );
    store.delete_upload(id).await.unwrap();
}

async fn missing_things_are_not_found(store: &dyn BlobStore) {
    let digest = Digest::of(Algorithm::Sha256, b"nothing here");
    assert!(matches!(
        store.read_blob(&digest, None).await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        store
            .write_upload(UploadId::random(), 0, body(vec![b"x"]))
            .await,
        Err(StorageError::NotFound)
    ));
    store
        .delete_upload(UploadId::random())
        .await
        .expect("deleting nothing is fine");
}

async fn uploads_are_listed_until_deleted(store: &dyn BlobStore) {
    let id = UploadId::random();
    store.create_upload(id).await.unwrap();
    store
        .write_upload(id, 0, body(vec![b"pending"]))
        .await
        .unwrap();
    let listed = store.list_uploads().await.unwrap();
    let (_, modified) = listed.iter().find(|(u, _)| *u == id).expect("listed");
    let age = std::time::SystemTime::now()
        .duration_since(*modified)
        .unwrap_or_default();
    assert!(
        age < std::time::Duration::from_secs(60),
        "modified recently: {age:?}"
    );
    store.delete_upload(id).await.unwrap();
    assert!(
        !store
            .list_uploads()
            .await
            .unwrap()
            .iter()
            .any(|(u, _)| *u == id)
    );
}
