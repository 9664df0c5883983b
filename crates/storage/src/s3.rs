//! Blob storage in an S3-compatible object store (AWS S3, Garage, MinIO, Ceph RGW), through
//! the `object_store` crate.
//!
//! Layout under the configured root prefix, the same as the filesystem backend's:
//!
//! ```text
//! docker/registry/v2/blobs/sha256/ab/abcdef.../data   committed blobs
//! berth/uploads/<id>/state/<size>                    an upload's state once <size> bytes were acknowledged
//! berth/uploads/<id>/tail/<size>                     the bytes after its last complete part at that point
//! berth/uploads/<id>/data                            the assembled upload, once sealed
//! ```
//!
//! An upload streams into an S3 multipart upload, cut into parts of a fixed size (S3 wants
//! at least 5 MiB for every part but the last). Bytes that do not fill a part yet are kept
//! as a `tail` object between requests, so at most one part is ever in memory. After each
//! write the store records a state snapshot named by the size it represents: the next
//! write, on this instance or another, starts from the snapshot of the size the database
//! acknowledged, re-uploading (and so replacing) any part a failed request left behind.
//! Nothing an instance holds in memory is needed by another.
//!
//! Committing completes the multipart upload, then copies it to the blob's address; S3
//! makes an object visible only once it is whole.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use berth_oci::{ByteRange, Digest, UploadId};
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use serde::{Deserialize, Serialize};

use crate::{BlobContent, BlobStore, ByteStream, StorageError};

/// S3's largest single-request copy; bigger blobs are copied by streaming.
const MAX_SERVER_SIDE_COPY: u64 = 5 * 1024 * 1024 * 1024;
/// S3's smallest part (except the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// How to reach the bucket.
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub bucket: String,
    pub region: String,
    /// A custom endpoint (`http://127.0.0.1:3900`) for S3-compatible stores.
    pub endpoint: Option<String>,
    /// Static credentials; without them the usual AWS sources (environment, instance
    /// profile) are used.
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    /// A temporary session token (STS) accompanying the keys.
    pub session_token: Option<String>,
    /// A prefix under which everything is stored.
    pub root: String,
    /// Path-style requests (`endpoint/bucket/key`), which most self-hosted stores need.
    pub path_style: bool,
    /// The size of multipart upload parts.
    pub part_size: u64,
    /// Redirect blob GETs to presigned URLs valid this long, instead of streaming them.
    pub redirect: Option<Duration>,
}

pub struct S3Store {
    s3: Arc<AmazonS3>,
    root: String,
    part_size: u64,
    redirect: Option<Duration>,
}

/// Where an upload stood when a given number of bytes had been acknowledged.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct UploadState {
    /// The multipart upload holding the complete parts, once one was needed.
    multipart: Option<String>,
    /// The ETags of the complete parts, in order; each is `part_size` bytes.
    parts: Vec<String>,
    /// The part size this upload started with; a configuration change must not alter it.
    part_size: u64,
    /// Bytes after the last part, in the `tail` object of the same size.
    tail: u64,
    /// The parts were assembled into the `data` object; no more writes.
    sealed: bool,
}

impl UploadState {
    fn size(&self) -> u64 {
        self.parts.len() as u64 * self.part_size + self.tail
    }
}

fn storage_error(err: object_store::Error) -> StorageError {
    match err {
        object_store::Error::NotFound { .. } => StorageError::NotFound,
        other => StorageError::Unavailable(other.to_string()),
    }
}

impl S3Store {
    pub fn new(settings: &S3Settings) -> Result<S3Store, StorageError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_virtual_hosted_style_request(!settings.path_style)
            // Fail over to a 503 within seconds rather than retrying for minutes.
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(20),
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &settings.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let (Some(access), Some(secret)) = (&settings.access_key, &settings.secret_key) {
            builder = builder
                .with_access_key_id(access)
                .with_secret_access_key(secret);
        }
        let s3 = builder
            .build()
            .map_err(|e| StorageError::Unavailable(format!("configuring S3: {e}")))?;
        Ok(S3Store {
            s3: Arc::new(s3),
            root: settings.root.trim_matches('/').to_string(),
            part_size: settings.part_size.max(MIN_PART_SIZE),
            redirect: settings.redirect,
        })
    }

    fn path(&self, relative: &str) -> Path {
        if self.root.is_empty() {
            Path::from(relative)
        } else {
            Path::from(format!("{}/{relative}", self.root))
        }
    }

    /// The registry:2 layout, as on the filesystem.
    pub fn blob_path(&self, digest: &Digest) -> Path {
        let hex = digest.hex();
        self.path(&format!(
            "docker/registry/v2/blobs/{}/{}/{hex}/data",
            digest.algorithm().as_str(),
            &hex[..2]
        ))
    }

    fn upload_prefix(&self, id: UploadId) -> Path {
        self.path(&format!("berth/uploads/{id}"))
    }

    fn state_path(&self, id: UploadId, size: u64) -> Path {
        self.path(&format!("berth/uploads/{id}/state/{size}"))
    }

    fn tail_path(&self, id: UploadId, size: u64) -> Path {
        self.path(&format!("berth/uploads/{id}/tail/{size}"))
    }

    fn data_path(&self, id: UploadId) -> Path {
        self.path(&format!("berth/uploads/{id}/data"))
    }

    async fn get_bytes(&self, path: &Path) -> Result<Bytes, StorageError> {
        self.s3
            .get(path)
            .await
            .map_err(storage_error)?
            .bytes()
            .await
            .map_err(storage_error)
    }

    async fn put(&self, path: &Path, bytes: Bytes) -> Result<(), StorageError> {
        self.s3
            .put(path, PutPayload::from(bytes))
            .await
            .map_err(storage_error)?;
        Ok(())
    }

    async fn load_state(&self, id: UploadId, size: u64) -> Result<UploadState, StorageError> {
        let json = self.get_bytes(&self.state_path(id, size)).await?;
        serde_json::from_slice(&json).map_err(|e| {
            StorageError::Io(std::io::Error::other(format!("corrupt upload state: {e}")))
        })
    }

    async fn save_state(&self, id: UploadId, state: &UploadState) -> Result<(), StorageError> {
        let json = serde_json::to_vec(state).expect("upload states serialize");
        self.put(&self.state_path(id, state.size()), Bytes::from(json))
            .await
    }

    async fn load_tail(&self, id: UploadId, state: &UploadState) -> Result<BytesMut, StorageError> {
        if state.tail == 0 {
            return Ok(BytesMut::new());
        }
        let tail = self.get_bytes(&self.tail_path(id, state.size())).await?;
        Ok(BytesMut::from(&tail[..]))
    }

    /// Uploads `data` as part number `parts.len()`, creating the multipart upload first if
    /// this is the first part.
    async fn put_part(
        &self,
        id: UploadId,
        state: &mut UploadState,
        data: Bytes,
    ) -> Result<(), StorageError> {
        let path = self.data_path(id);
        let multipart = match &state.multipart {
            Some(multipart) => multipart.clone(),
            None => {
                let created = self
                    .s3
                    .create_multipart(&path)
                    .await
                    .map_err(storage_error)?;
                state.multipart = Some(created.clone());
                // Recorded in the snapshot being extended (its size is unchanged: no part yet),
                // so a retry reuses this multipart upload and deleting the upload aborts it.
                self.save_state(id, state).await?;
                created
            }
        };
        let part = self
            .s3
            .put_part(&path, &multipart, state.parts.len(), PutPayload::from(data))
            .await
            .map_err(storage_error)?;
        state.parts.push(part.content_id);
        Ok(())
    }

    /// Assembles an upload's first `size` bytes into its `data` object (idempotent).
    async fn seal(&self, id: UploadId, size: u64) -> Result<UploadState, StorageError> {
        let mut state = self.load_state(id, size).await?;
        if state.sealed {
            return Ok(state);
        }
        let tail = self.load_tail(id, &state).await?.freeze();
        if state.multipart.is_none() {
            // Small enough never to have needed a part.
            self.put(&self.data_path(id), tail).await?;
        } else {
            if !tail.is_empty() {
                self.put_part(id, &mut state, tail).await?;
            }
            let multipart = state.multipart.clone().expect("checked above");
            let parts = state
                .parts
                .iter()
                .map(|etag| PartId {
                    content_id: etag.clone(),
                })
                .collect();
            self.s3
                .complete_multipart(&self.data_path(id), &multipart, parts)
                .await
                .map_err(storage_error)?;
        }
        let sealed = UploadState {
            sealed: true,
            ..state.clone()
        };
        // The snapshot of this size now says "sealed": a retried commit skips the work.
        let json = serde_json::to_vec(&sealed).expect("upload states serialize");
        self.put(&self.state_path(id, size), Bytes::from(json))
            .await?;
        Ok(sealed)
    }

    /// Copies a blob that is too large for S3's single-request copy by streaming it.
    async fn stream_copy(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        let mut source = self
            .s3
            .get(from)
            .await
            .map_err(storage_error)?
            .into_stream();
        let mut upload = object_store::WriteMultipart::new_with_chunk_size(
            self.s3.put_multipart(to).await.map_err(storage_error)?,
            self.part_size as usize,
        );
        while let Some(chunk) = source.try_next().await.map_err(storage_error)? {
            upload.wait_for_capacity(2).await.map_err(storage_error)?;
            upload.put(chunk);
        }
        upload.finish().await.map_err(storage_error)?;
        Ok(())
    }
}

#[async_trait]
impl BlobStore for S3Store {
    async fn read_blob(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobContent, StorageError> {
        let path = self.blob_path(digest);
        if let Some(expires) = self.redirect {
            let url = self
                .s3
                .signed_url(http::Method::GET, &path, expires)
                .await
                .map_err(storage_error)?;
            return Ok(BlobContent::Redirect(url.to_string()));
        }
        let options = GetOptions {
            range: range.map(|r| GetRange::Bounded(r.start..r.end + 1)),
            ..GetOptions::default()
        };
        let result = self
            .s3
            .get_opts(&path, options)
            .await
            .map_err(storage_error)?;
        let stream = result
            .into_stream()
            .map_err(|e| std::io::Error::other(e.to_string()));
        Ok(BlobContent::Stream(Box::pin(stream)))
    }

    async fn create_upload(&self, id: UploadId) -> Result<(), StorageError> {
        let state = UploadState {
            part_size: self.part_size,
            ..UploadState::default()
        };
        self.save_state(id, &state).await
    }

    async fn write_upload(
        &self,
        id: UploadId,
        offset: u64,
        mut data: ByteStream,
    ) -> Result<u64, StorageError> {
        let mut state = self.load_state(id, offset).await?;
        if state.sealed {
            return Err(StorageError::Io(std::io::Error::other(
                "the upload is already sealed",
            )));
        }
        let part_size = state.part_size as usize;
        let mut pending = self.load_tail(id, &state).await?;
        let mut written = 0u64;
        while let Some(chunk) = data.next().await {
            let mut chunk = chunk.map_err(StorageError::Body)?;
            written += chunk.len() as u64;
            while !chunk.is_empty() {
                let take = (part_size - pending.len()).min(chunk.len());
                pending.extend_from_slice(&chunk.split_to(take));
                if pending.len() == part_size {
                    let part = std::mem::replace(&mut pending, BytesMut::with_capacity(part_size))
                        .freeze();
                    self.put_part(id, &mut state, part).await?;
                }
            }
        }
        state.tail = pending.len() as u64;
        if !pending.is_empty() {
            self.put(&self.tail_path(id, state.size()), pending.freeze())
                .await?;
        }
        // The snapshot last: until it exists, the write did not happen.
        self.save_state(id, &state).await?;
        Ok(written)
    }

    async fn read_upload(&self, id: UploadId, size: u64) -> Result<ByteStream, StorageError> {
        // Parts of an unfinished multipart upload cannot be read back: assemble them first.
        self.seal(id, size).await?;
        let result = self
            .s3
            .get(&self.data_path(id))
            .await
            .map_err(storage_error)?;
        Ok(Box::pin(
            result
                .into_stream()
                .map_err(|e| std::io::Error::other(e.to_string())),
        ))
    }

    async fn commit_upload(
        &self,
        id: UploadId,
        size: u64,
        digest: &Digest,
    ) -> Result<(), StorageError> {
        let blob = self.blob_path(digest);
        let exists = match self.s3.head(&blob).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(storage_error(e)),
        };
        if !exists {
            self.seal(id, size).await?;
            let data = self.data_path(id);
            if size > MAX_SERVER_SIDE_COPY {
                self.stream_copy(&data, &blob).await?;
            } else {
                self.s3.copy(&data, &blob).await.map_err(storage_error)?;
            }
        }
        self.delete_upload(id).await
    }

    async fn delete_upload(&self, id: UploadId) -> Result<(), StorageError> {
        let prefix = self.upload_prefix(id);
        let objects: Vec<_> = self
            .s3
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(storage_error)?;
        // Abandon any unfinished multipart upload so its parts stop costing storage.
        for object in &objects {
            if object.location.as_ref().contains("/state/")
                && let Ok(json) = self.get_bytes(&object.location).await
                && let Ok(UploadState {
                    multipart: Some(multipart),
                    sealed: false,
                    ..
                }) = serde_json::from_slice::<UploadState>(&json)
            {
                // Already completed or aborted through another snapshot: nothing to do.
                let _ = self
                    .s3
                    .abort_multipart(&self.data_path(id), &multipart)
                    .await;
            }
        }
        for object in objects {
            match self.s3.delete(&object.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(storage_error(e)),
            }
        }
        Ok(())
    }

    async fn list_uploads(&self) -> Result<Vec<(UploadId, SystemTime)>, StorageError> {
        let prefix = self.path("berth/uploads");
        let mut latest: std::collections::HashMap<UploadId, SystemTime> =
            std::collections::HashMap::new();
        let mut objects = self.s3.list(Some(&prefix));
        while let Some(object) = objects.try_next().await.map_err(storage_error)? {
            let relative = object
                .location
                .as_ref()
                .strip_prefix(prefix.as_ref())
                .unwrap_or_default();
            let Some(id) = relative
                .trim_start_matches('/')
                .split('/')
                .next()
                .and_then(|s| UploadId::parse(s).ok())
            else {
                continue;
            };
            let modified = SystemTime::from(object.last_modified);
            let entry = latest.entry(id).or_insert(modified);
            *entry = (*entry).max(modified);
        }
        Ok(latest.into_iter().collect())
    }

    async fn delete_blobs(&self, digests: &[Digest]) -> Vec<Result<(), StorageError>> {
        let paths: Vec<Path> = digests.iter().map(|d| self.blob_path(d)).collect();
        let input = futures_util::stream::iter(paths.clone().into_iter().map(Ok)).boxed();
        // DeleteObjects, 1000 keys per request; per-key failures come back as errors.
        let results: Vec<object_store::Result<Path>> = self.s3.delete_stream(input).collect().await;
        let mut deleted = std::collections::HashSet::new();
        let mut failure: Option<String> = None;
        for result in results {
            match result {
                Ok(path) => {
                    deleted.insert(path.to_string());
                }
                Err(object_store::Error::NotFound { path, .. }) => {
                    deleted.insert(path);
                }
                Err(e) => failure = Some(e.to_string()),
            }
        }
        paths
            .iter()
            .map(|path| {
                if deleted.contains(path.as_ref()) {
                    Ok(())
                } else {
                    Err(StorageError::Unavailable(failure.clone().unwrap_or_else(
                        || "the object store did not confirm the deletion".into(),
                    )))
                }
            })
            .collect()
    }

    async fn check(&self) -> Result<(), StorageError> {
        let probe = self.path("berth/readiness-probe");
        self.put(&probe, Bytes::from_static(b"ok")).await?;
        self.s3.delete(&probe).await.map_err(storage_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::garage_testing::Garage;

    fn body(data: &'static [u8]) -> ByteStream {
        Box::pin(futures_util::stream::iter([Ok(Bytes::from_static(data))]))
    }

    #[tokio::test]
    async fn passes_the_behaviour_suite_on_garage() {
        let garage = Garage::start();
        let store = S3Store::new(&garage.settings("suite")).unwrap();
        let other = S3Store::new(&garage.settings("suite")).unwrap();
        crate::behaviour::run_all(&store, &other, MIN_PART_SIZE as usize).await;
    }

    #[tokio::test]
    async fn layout_redirects_and_outages() {
        let mut garage = Garage::start();
        let store = S3Store::new(&garage.settings("/registry/")).unwrap();
        let id = UploadId::random();
        store.create_upload(id).await.unwrap();
        store
            .write_upload(id, 0, body(b"in the bucket"))
            .await
            .unwrap();
        let digest = Digest::of(berth_oci::Algorithm::Sha256, b"in the bucket");
        store.commit_upload(id, 13, &digest).await.unwrap();

        // The official registry's layout under the root prefix, and no upload left behind.
        let keys: Vec<String> = store
            .s3
            .list(None)
            .map_ok(|o| o.location.to_string())
            .try_collect()
            .await
            .unwrap();
        let hex = digest.hex();
        assert_eq!(
            keys,
            vec![format!(
                "registry/docker/registry/v2/blobs/sha256/{}/{hex}/data",
                &hex[..2]
            )]
        );

        // With redirects on, a blob GET is a presigned URL that works without credentials.
        let redirecting = S3Store::new(&S3Settings {
            redirect: Some(Duration::from_secs(60)),
            ..garage.settings("registry")
        })
        .unwrap();
        let BlobContent::Redirect(url) = redirecting.read_blob(&digest, None).await.unwrap() else {
            panic!("expected a redirect")
        };
        let fetched = reqwest_get(&url).await;
        assert_eq!(fetched, b"in the bucket");

        // The store down: unavailable, not "not found"; back up: served again.
        garage.stop();
        assert!(matches!(
            store.read_blob(&digest, None).await,
            Err(StorageError::Unavailable(_))
        ));
        assert!(matches!(
            store.check().await,
            Err(StorageError::Unavailable(_))
        ));
        garage.start_again();
        let BlobContent::Stream(content) = store.read_blob(&digest, None).await.unwrap() else {
            panic!("expected a stream")
        };
        let bytes: Vec<Bytes> = content.try_collect().await.unwrap();
        assert_eq!(bytes.concat(), b"in the bucket");
    }

    /// A plain HTTP GET, as a client following the redirect would make.
    async fn reqwest_get(url: &str) -> Vec<u8> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let url = url::Url::parse(url).unwrap();
        let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
        let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        response[split..].to_vec()
    }
}
