//! The behaviour every [`BlobStore`] must have, as one suite that each implementation's tests
//! run. `store` and `other` are two handles on the same storage (two instances of berth):
//! an upload started through one must continue through the other.
//!
//! Writes only ever start at an acknowledged size (the registry's session row holds it);
//! the suite keeps to that rule too.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_oci::{Algorithm, ByteRange, Digest, DigestHasher, UploadId};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};

use crate::{
    BlobContent, BlobKey, BlobStore, ByteStream, StorageError, StoredBlob, UploadFollower,
};

pub async fn run_all(store: &dyn BlobStore, other: &dyn BlobStore, part_size: usize) {
    store.check().await.expect("check");
    writes_commit_and_read_back_with_ranges(store, other).await;
    a_write_that_was_not_acknowledged_is_overwritten(store).await;
    commit_takes_the_acknowledged_size_and_dedupes(store).await;
    large_uploads_cross_part_boundaries(store, other, part_size).await;
    uploads_can_be_read_back(store).await;
    a_failing_body_is_the_clients_failure(store).await;
    a_followed_upload_is_read_while_it_grows(store).await;
    whole_uploads_commit_in_one_call_and_refused_ones_leave_no_blob(store, other).await;
    missing_things_are_not_found(store).await;
    uploads_are_listed_until_deleted(store).await;
    committed_blobs_are_listed_until_deleted(store, other).await;
    a_quarantined_blob_can_be_pushed_again(store).await;
}

/// Commits an upload and returns the blob as the database would record it.
async fn commit(store: &dyn BlobStore, id: UploadId, size: u64, digest: &Digest) -> StoredBlob {
    let committed = store.commit_upload(id, size, digest).await.expect("commit");
    StoredBlob {
        digest: digest.clone(),
        size,
        cid: committed.cid,
    }
}

/// A whole blob in one upload, as the database would record it.
pub async fn push(store: &dyn BlobStore, data: &'static [u8]) -> StoredBlob {
    let id = UploadId::random();
    store.create_upload(id).await.unwrap();
    store.write_upload(id, 0, body(vec![data])).await.unwrap();
    commit(
        store,
        id,
        data.len() as u64,
        &Digest::of(Algorithm::Sha256, data),
    )
    .await
}

fn key_of(blob: &StoredBlob) -> BlobKey {
    match &blob.cid {
        Some(cid) => BlobKey::Cid(cid.clone()),
        None => BlobKey::Digest(blob.digest.clone()),
    }
}

async fn listed(store: &dyn BlobStore) -> Vec<BlobKey> {
    store
        .list_blobs()
        .map_ok(|b| b.key)
        .try_collect()
        .await
        .expect("list blobs")
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

/// A blob's bytes (or a range of them), streamed.
pub async fn read(store: &dyn BlobStore, blob: &StoredBlob, range: Option<ByteRange>) -> Vec<u8> {
    match store.read_blob(blob, range).await.expect("read blob") {
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
    let blob = commit(store, id, 11, &digest).await;

    assert_eq!(read(store, &blob, None).await, b"hello world");
    assert_eq!(read(other, &blob, None).await, b"hello world");
    assert_eq!(
        read(store, &blob, Some(ByteRange { start: 6, end: 10 })).await,
        b"world"
    );
    assert_eq!(
        read(store, &blob, Some(ByteRange { start: 0, end: 0 })).await,
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
    let mut blobs = Vec::new();
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
        blobs.push(commit(store, id, 9, &digest).await);
    }
    assert_eq!(blobs[0], blobs[1], "the same content is the same blob");
    assert_eq!(read(store, &blobs[1], None).await, b"dedupe me");
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
    let blob = commit(other, id, data.len() as u64, &digest).await;
    let stored = read(store, &blob, None).await;
    assert_eq!(stored.len(), data.len());
    assert!(stored == data, "content differs");
    let start = part_size as u64 - 10;
    let range = ByteRange {
        start,
        end: start + 19,
    };
    assert_eq!(
        read(store, &blob, Some(range)).await,
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
    let blob = commit(store, id, 12, &digest).await;
    assert_eq!(read(store, &blob, None).await, b"read me back");
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

/// What a follower of an upload has heard: the file, and each size reported written.
#[derive(Default)]
struct Follower {
    file: Mutex<Option<Arc<File>>>,
    written: Mutex<Vec<u64>>,
    changed: tokio::sync::Notify,
}

impl UploadFollower for Follower {
    fn opened(&self, bytes: Arc<File>) {
        assert!(self.written.lock().unwrap().is_empty(), "opened first");
        *self.file.lock().unwrap() = Some(bytes);
    }

    fn written(&self, upto: u64) {
        self.written.lock().unwrap().push(upto);
        self.changed.notify_waiters();
    }
}

impl Follower {
    fn read(&self, len: u64) -> Vec<u8> {
        let file = self.file.lock().unwrap().clone().expect("opened");
        let mut bytes = vec![0; len as usize];
        file.read_exact_at(&mut bytes, 0)
            .expect("read the written prefix");
        bytes
    }

    fn last(&self) -> u64 {
        self.written.lock().unwrap().last().copied().unwrap_or(0)
    }

    /// Waits until at least `least` bytes are reported written.
    async fn reach(&self, least: u64) -> u64 {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let changed = self.changed.notified();
                let last = self.last();
                if last >= least {
                    return last;
                }
                changed.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{least} bytes reported written in 30 s"))
    }
}

/// A follower reads the prefix an upload has so far while the body is still coming, and
/// the whole upload at the end, also once it is committed.
async fn a_followed_upload_is_read_while_it_grows(store: &dyn BlobStore) {
    const MIB: usize = 1024 * 1024;
    let data: Vec<u8> = (0..3 * MIB + 11).map(|i| (i % 253) as u8).collect();
    let (first, rest) = data.split_at(2 * MIB + MIB / 2);
    let id = UploadId::random();
    store.create_upload(id).await.unwrap();
    let (sender, receiver) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    let body: ByteStream = Box::pin(stream::unfold(receiver, |mut r| async {
        r.recv().await.map(|item| (item, r))
    }));
    let follower = Follower::default();
    let feeding = async {
        for chunk in first.chunks(100_003) {
            sender
                .send(Ok(Bytes::copy_from_slice(chunk)))
                .await
                .unwrap();
        }
        // The body is not over, yet its first megabyte is readable.
        let so_far = follower.reach(MIB as u64).await;
        assert!(so_far <= first.len() as u64, "{so_far}");
        assert_eq!(follower.read(so_far), &data[..so_far as usize]);
        for chunk in rest.chunks(100_003) {
            sender
                .send(Ok(Bytes::copy_from_slice(chunk)))
                .await
                .unwrap();
        }
        drop(sender);
    };
    let (written, ()) =
        futures_util::join!(store.write_upload_followed(id, body, &follower), feeding);
    assert_eq!(written.expect("followed write"), data.len() as u64);
    let reported = follower.written.lock().unwrap().clone();
    assert!(reported.is_sorted(), "{reported:?}");
    assert_eq!(follower.last(), data.len() as u64);
    assert!(follower.read(data.len() as u64) == data, "the whole upload");
    let digest = Digest::of(Algorithm::Sha256, &data);
    let blob = commit(store, id, data.len() as u64, &digest).await;
    assert!(
        follower.read(data.len() as u64) == data,
        "still readable after the commit"
    );
    store.delete_blob(&blob).await.unwrap();

    // A body that fails midway fails the write, as the client's failure.
    let id = UploadId::random();
    store.create_upload(id).await.unwrap();
    let failing: ByteStream = Box::pin(stream::iter(vec![
        Ok(Bytes::from_static(b"partial")),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "upstream went away",
        )),
    ]));
    assert!(matches!(
        store
            .write_upload_followed(id, failing, &Follower::default())
            .await,
        Err(StorageError::Body(_))
    ));
    store.delete_upload(id).await.unwrap();
}

/// A whole blob is written and committed in one call, and a body that fails as it ends (the
/// registry's checks refusing it) leaves no blob behind and its upload usable.
async fn whole_uploads_commit_in_one_call_and_refused_ones_leave_no_blob(
    store: &dyn BlobStore,
    other: &dyn BlobStore,
) {
    let data: &'static [u8] = b"a whole blob, refused once as it ended";
    let digest = Digest::of(Algorithm::Sha256, data);
    let id = UploadId::random();
    store.create_upload(id).await.unwrap();
    let refused: ByteStream = Box::pin(stream::iter(vec![
        Ok(Bytes::from_static(data)),
        Err(io::Error::other("refused: the digest does not match")),
    ]));
    assert!(
        store
            .write_whole_upload(id, refused, &digest)
            .await
            .is_err()
    );
    let before = listed(store).await;

    let (size, committed) = store
        .write_whole_upload(id, body(vec![&data[..9], &data[9..]]), &digest)
        .await
        .expect("whole upload");
    assert_eq!(size, data.len() as u64);
    let blob = StoredBlob {
        digest,
        size,
        cid: committed.cid,
    };
    assert!(
        !before.contains(&key_of(&blob)),
        "the refused body left a blob"
    );
    assert_eq!(read(other, &blob, None).await, data);
    assert!(
        !store
            .list_uploads()
            .await
            .unwrap()
            .iter()
            .any(|(u, _)| *u == id),
        "the upload is gone once committed"
    );
    store.delete_blob(&blob).await.unwrap();
}

async fn missing_things_are_not_found(store: &dyn BlobStore) {
    let digest = Digest::of(Algorithm::Sha256, b"nothing here");
    let never_stored = StoredBlob {
        digest: digest.clone(),
        size: 12,
        cid: None,
    };
    assert!(matches!(store.stat_blob(&never_stored).await, Ok(None)));
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

async fn committed_blobs_are_listed_until_deleted(store: &dyn BlobStore, other: &dyn BlobStore) {
    let blob = push(store, b"listed, then deleted").await;
    assert_eq!(store.stat_blob(&blob).await.unwrap(), Some(blob.size));
    assert!(listed(other).await.contains(&key_of(&blob)));
    other.delete_blob(&blob).await.unwrap();
    store
        .delete_blob(&blob)
        .await
        .expect("deleting what is gone is fine");
    assert!(!listed(store).await.contains(&key_of(&blob)));

    // Garbage collection's batched delete: several at once, one of them already gone.
    let (a, b) = (
        push(store, b"swept one").await,
        push(store, b"swept two").await,
    );
    let kept = push(store, b"not swept").await;
    store
        .delete_blobs(&[a.clone(), blob.clone(), b.clone()])
        .await
        .expect("a batch with a blob already gone deletes the rest");
    let left = listed(store).await;
    assert!(!left.contains(&key_of(&a)) && !left.contains(&key_of(&b)));
    assert!(left.contains(&key_of(&kept)));
    store.delete_blobs(&[]).await.unwrap();
}

async fn a_quarantined_blob_can_be_pushed_again(store: &dyn BlobStore) {
    let blob = push(store, b"quarantine me").await;
    store.quarantine_blob(&blob).await.unwrap();
    // Pushed again (the database marks it quarantined; the registry lets a push through).
    let again = push(store, b"quarantine me").await;
    assert_eq!(read(store, &again, None).await, b"quarantine me");
}

/// While the store's server is down: reads, writes and the readiness check are
/// `Unavailable` (a 503 for clients), never `NotFound`.
pub async fn is_unavailable(store: &dyn BlobStore, blob: &StoredBlob) {
    assert!(matches!(
        store.read_blob(blob, None).await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(matches!(
        store.create_upload(UploadId::random()).await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(matches!(
        store.check().await,
        Err(StorageError::Unavailable(_))
    ));
}
