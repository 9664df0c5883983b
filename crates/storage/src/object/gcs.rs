//! Google Cloud Storage.
//!
//! Reads, listings, deletes and presigned URLs go through `object_store`. Writes use the JSON
//! API, because that is where GCS assembles objects: parts of an upload are ordinary objects
//! (`berth/uploads/<id>/data-part-<n>`), and `compose` (32 sources at a time) concatenates
//! them into the upload's data, and copies it to the blob's address. Each part is pinned by
//! its generation, so a part rewritten by a request that failed late cannot slip into a blob.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::gcp::{GoogleCloudStorage, GoogleCloudStorageBuilder};
use object_store::path::Path;
use serde::Deserialize;

use super::writer::ObjectWriter;
use super::{ObjectBlobStore, retry_config};
use crate::StorageError;

const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";
/// The most sources one `compose` takes.
const MAX_COMPOSE_SOURCES: usize = 32;

/// How to reach the bucket (registry:2's `storage.gcs`).
#[derive(Debug, Clone)]
pub struct GcsSettings {
    pub bucket: String,
    /// A service account key file (JSON). Without one, `application_credentials`, then
    /// gcloud's own file (`~/.config/gcloud/application_default_credentials.json`), then the
    /// metadata server on Google Cloud: Google's application default credentials.
    pub keyfile: Option<std::path::PathBuf>,
    /// Application default credentials (a service account key or a `gcloud auth
    /// application-default login` file): what `GOOGLE_APPLICATION_CREDENTIALS` names.
    pub application_credentials: Option<std::path::PathBuf>,
    /// Another endpoint than `https://storage.googleapis.com` (an emulator, a private
    /// endpoint).
    pub endpoint: Option<String>,
    /// A prefix under which everything is stored.
    pub root: String,
    /// The size of upload parts.
    pub part_size: u64,
    /// Redirect blob GETs to signed URLs valid this long (needs a key file with a private
    /// key), instead of streaming them.
    pub redirect: Option<Duration>,
}

/// The smallest part berth uses: GCS has no minimum, but tiny parts mean many compose calls.
pub const MIN_COMPOSE_PART: u64 = 256 * 1024;

impl ObjectBlobStore {
    pub fn gcs(settings: &GcsSettings) -> Result<ObjectBlobStore, StorageError> {
        let configuring = |e: &dyn std::fmt::Display| StorageError::Unavailable(e.to_string());
        let endpoint = settings
            .endpoint
            .as_deref()
            .unwrap_or(DEFAULT_ENDPOINT)
            .trim_end_matches('/')
            .to_string();
        let mut builder = GoogleCloudStorageBuilder::new()
            .with_bucket_name(&settings.bucket)
            .with_base_url(&endpoint)
            .with_retry(retry_config());
        if let Some(keyfile) = &settings.keyfile {
            builder = builder.with_service_account_path(keyfile.to_string_lossy());
        } else if let Some(credentials) = &settings.application_credentials {
            builder = builder.with_application_credentials(credentials.to_string_lossy());
        }
        if endpoint.starts_with("http://") {
            builder = builder
                .with_client_options(object_store::ClientOptions::new().with_allow_http(true));
        }
        let gcs = Arc::new(builder.build().map_err(|e| configuring(&e))?);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| configuring(&e))?;
        let writer = ComposeWriter {
            gcs: gcs.clone(),
            http,
            endpoint: url::Url::parse(&endpoint).map_err(|e| configuring(&e))?,
            bucket: settings.bucket.clone(),
        };
        Ok(ObjectBlobStore::new(
            gcs.clone(),
            Box::new(writer),
            Some(gcs),
            &settings.root,
            settings.part_size.max(MIN_COMPOSE_PART),
            settings.redirect,
        ))
    }
}

/// Writes through the JSON API (see the module documentation).
struct ComposeWriter {
    gcs: Arc<GoogleCloudStorage>,
    http: reqwest::Client,
    endpoint: url::Url,
    bucket: String,
}

/// The part of an object resource berth reads.
#[derive(Deserialize)]
struct ObjectResource {
    generation: String,
}

fn unavailable(e: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable(format!("Google Cloud Storage: {e}"))
}

impl ComposeWriter {
    fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.endpoint.clone();
        url.path_segments_mut()
            .expect("an http(s) endpoint")
            .pop_if_empty()
            .extend(segments);
        url
    }

    fn part_path(target: &Path, index: usize) -> Path {
        Path::from(format!("{target}-part-{index:06}"))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<ObjectResource, StorageError> {
        let credential = self
            .gcs
            .credentials()
            .get_credential()
            .await
            .map_err(unavailable)?;
        let request = if credential.bearer.is_empty() {
            request
        } else {
            request.bearer_auth(&credential.bearer)
        };
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(StorageError::NotFound);
        }
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(unavailable(format!("{status}: {}", text.trim())));
        }
        response.json().await.map_err(unavailable)
    }

    /// Uploads `bytes` as object `path` in one request; returns its generation.
    async fn upload(&self, path: &Path, bytes: Bytes) -> Result<String, StorageError> {
        let mut url = self.url(&["upload", "storage", "v1", "b", &self.bucket, "o"]);
        url.query_pairs_mut()
            .append_pair("uploadType", "media")
            .append_pair("name", path.as_ref());
        let request = self
            .http
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes);
        Ok(self.send(request).await?.generation)
    }

    /// Makes `target` the concatenation of `sources` (at most 32), each at its generation
    /// when one is given.
    async fn compose(
        &self,
        target: &Path,
        sources: &[(Path, Option<&str>)],
    ) -> Result<(), StorageError> {
        let url = self.url(&[
            "storage",
            "v1",
            "b",
            &self.bucket,
            "o",
            target.as_ref(),
            "compose",
        ]);
        let source_objects: Vec<serde_json::Value> = sources
            .iter()
            .map(|(name, generation)| match generation {
                Some(generation) => serde_json::json!({
                    "name": name.as_ref(),
                    "objectPreconditions": {"ifGenerationMatch": generation},
                }),
                None => serde_json::json!({"name": name.as_ref()}),
            })
            .collect();
        let body = serde_json::json!({
            "sourceObjects": source_objects,
            "destination": {"contentType": "application/octet-stream"},
        });
        self.send(self.http.post(url).json(&body)).await?;
        Ok(())
    }
}

#[async_trait]
impl ObjectWriter for ComposeWriter {
    async fn put(&self, path: &Path, bytes: Bytes) -> Result<(), StorageError> {
        self.upload(path, bytes).await?;
        Ok(())
    }

    async fn copy(&self, from: &Path, to: &Path, _size: u64) -> Result<(), StorageError> {
        // Composing one source is GCS's server-side copy, whatever the size.
        self.compose(to, &[(from.clone(), None)]).await
    }

    async fn start_parts(&self, _target: &Path) -> Result<String, StorageError> {
        // Parts are plain objects: nothing to start.
        Ok("compose".to_string())
    }

    async fn put_part(
        &self,
        target: &Path,
        _assembly: &str,
        index: usize,
        data: Bytes,
    ) -> Result<String, StorageError> {
        self.upload(&Self::part_path(target, index), data).await
    }

    async fn complete_parts(
        &self,
        target: &Path,
        _assembly: &str,
        parts: &[String],
    ) -> Result<(), StorageError> {
        let sources: Vec<(Path, Option<&str>)> = parts
            .iter()
            .enumerate()
            .map(|(index, generation)| (Self::part_path(target, index), Some(generation.as_str())))
            .collect();
        // The first compose takes up to 32 parts; each later one the result so far and 31 more.
        let first = sources.len().min(MAX_COMPOSE_SOURCES);
        self.compose(target, &sources[..first]).await?;
        for batch in sources[first..].chunks(MAX_COMPOSE_SOURCES - 1) {
            let mut with_target = vec![(target.clone(), None)];
            with_target.extend_from_slice(batch);
            self.compose(target, &with_target).await?;
        }
        Ok(())
    }

    async fn abort_parts(&self, _target: &Path, _assembly: &str) -> Result<(), StorageError> {
        // The parts are objects under the upload's prefix, deleted with it.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behaviour::{is_unavailable, push, read};
    use crate::testing::fake_gcs::FakeGcs;
    use crate::testing::fetch;
    use crate::{BlobContent, BlobStore, StoredBlob};
    use berth_oci::{Algorithm, Digest, UploadId};
    use futures_util::TryStreamExt;
    use object_store::ObjectStore;

    #[tokio::test]
    async fn passes_the_behaviour_suite_on_fake_gcs_server() {
        let gcs = FakeGcs::start();
        let store = ObjectBlobStore::gcs(&gcs.settings("suite")).unwrap();
        let other = ObjectBlobStore::gcs(&gcs.settings("suite")).unwrap();
        crate::behaviour::run_all(&store, &other, MIN_COMPOSE_PART as usize).await;
    }

    /// Google's V4 signing, as Cloud Storage checks it: the canonical request (host
    /// `storage.googleapis.com`, which object_store signs for whatever endpoint it talks to),
    /// hashed into the string to sign, whose RSA-SHA256 signature the URL carries.
    fn verify_v4_signature(url: &url::Url, public_key: &[u8]) {
        let strict = |text: &str| -> String {
            text.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect()
        };
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let find = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{name} in {url}"))
        };
        let mut query: Vec<(String, String)> = pairs
            .iter()
            .filter(|(k, _)| k != "X-Goog-Signature")
            .map(|(k, v)| (strict(k), strict(v)))
            .collect();
        query.sort();
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let canonical = format!(
            "GET\n{}\n{}\nhost:storage.googleapis.com\n\nhost\nUNSIGNED-PAYLOAD",
            url.path(),
            query.join("&")
        );
        let credential = find("X-Goog-Credential");
        let scope = credential
            .split_once('/')
            .map(|(_, scope)| scope.to_string())
            .unwrap();
        let hashed = data_encoding::HEXLOWER
            .encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref());
        let to_sign = format!(
            "GOOG4-RSA-SHA256\n{}\n{scope}\n{hashed}",
            find("X-Goog-Date")
        );
        let signature = data_encoding::HEXLOWER
            .decode(find("X-Goog-Signature").as_bytes())
            .expect("a hex signature");
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            public_key,
        )
        .verify(to_sign.as_bytes(), &signature)
        .expect("the URL is signed with the service account's key");
    }

    #[tokio::test]
    async fn redirects_are_urls_signed_with_the_service_account_key() {
        let gcs = FakeGcs::start();
        let store = ObjectBlobStore::gcs(&gcs.settings("registry")).unwrap();
        let blob = push(&store, b"in a bucket").await;

        let redirecting = ObjectBlobStore::gcs(&GcsSettings {
            redirect: Some(Duration::from_secs(600)),
            ..gcs.settings("registry")
        })
        .unwrap();
        let BlobContent::Redirect(url) = redirecting.read_blob(&blob, None).await.unwrap() else {
            panic!("expected a redirect")
        };
        let parsed = url::Url::parse(&url).unwrap();
        assert_eq!(
            parsed.path(),
            format!("/{}/registry/{}", gcs.bucket, crate::blob_key(&blob.digest)),
            "{url}"
        );
        let query: std::collections::HashMap<String, String> =
            parsed.query_pairs().into_owned().collect();
        assert_eq!(query["X-Goog-Algorithm"], "GOOG4-RSA-SHA256");
        assert_eq!(query["X-Goog-Expires"], "600");
        assert!(
            query["X-Goog-Credential"]
                .starts_with(&format!("{}/", crate::testing::fake_gcs::SERVICE_ACCOUNT)),
            "{url}"
        );
        verify_v4_signature(&parsed, &gcs.public_key);
        // The emulator serves signed URLs without checking signatures; the check above is
        // Google's.
        assert_eq!(fetch(&url).await, b"in a bucket");
    }

    #[tokio::test]
    async fn many_parts_compose_in_batches_and_outages_are_unavailable() {
        let mut gcs = FakeGcs::start();
        let store = ObjectBlobStore::gcs(&gcs.settings("registry")).unwrap();
        // 70 parts: three compose rounds (32, then 31 and 7 more onto the result).
        let data: Vec<u8> = (0..70 * MIN_COMPOSE_PART as usize + 1234)
            .map(|i| (i % 253) as u8)
            .collect();
        let id = UploadId::random();
        store.create_upload(id).await.unwrap();
        let chunks: Vec<std::io::Result<Bytes>> = data
            .chunks(1 << 20)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        store
            .write_upload(id, 0, Box::pin(futures_util::stream::iter(chunks)))
            .await
            .unwrap();
        let digest = Digest::of(Algorithm::Sha256, &data);
        store
            .commit_upload(id, data.len() as u64, &digest)
            .await
            .unwrap();
        let blob = StoredBlob {
            digest: digest.clone(),
            size: data.len() as u64,
            cid: None,
        };
        assert!(
            read(&store, &blob, None).await == data,
            "the composed blob is the upload"
        );

        // Only the blob remains, in the registry:2 layout under the prefix.
        let keys: Vec<String> = store
            .objects
            .list(None)
            .map_ok(|o| o.location.to_string())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(keys, vec![format!("registry/{}", crate::blob_key(&digest))]);

        gcs.stop();
        is_unavailable(&store, &blob).await;
        gcs.start_again();
        assert_eq!(store.stat_blob(&blob).await.unwrap(), Some(blob.size));
        let after = push(&store, b"after").await;
        assert_eq!(read(&store, &after, None).await, b"after");
    }
}
