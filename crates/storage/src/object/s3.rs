//! S3 and S3-compatible stores (AWS S3, Garage, MinIO, Ceph RGW).

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};

use super::writer::MultipartWriter;
use super::{ObjectBlobStore, retry_config};
use crate::StorageError;

/// S3's largest single-request copy; bigger blobs are copied by streaming.
const MAX_SERVER_SIDE_COPY: u64 = 5 * 1024 * 1024 * 1024;
/// S3's smallest part (except the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// Server-side encryption of what berth writes (registry:2's `encrypt` and `keyid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S3Encryption {
    /// SSE-S3: keys managed by the service (`AES256`).
    S3Managed,
    /// SSE-KMS, with a key id or ARN (the account's default KMS key when `None`).
    Kms(Option<String>),
}

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
    /// Server-side encryption; `None` leaves it to the bucket's default.
    pub encryption: Option<S3Encryption>,
    /// Redirect blob GETs to presigned URLs valid this long, instead of streaming them.
    pub redirect: Option<Duration>,
}

impl ObjectBlobStore {
    pub fn s3(settings: &S3Settings) -> Result<ObjectBlobStore, StorageError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_virtual_hosted_style_request(!settings.path_style)
            .with_retry(retry_config());
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
        if let Some(token) = &settings.session_token {
            builder = builder.with_token(token);
        }
        let config_key = |name: &str| -> AmazonS3ConfigKey {
            name.parse()
                .expect("object_store knows its encryption keys")
        };
        match &settings.encryption {
            None => {}
            Some(S3Encryption::S3Managed) => {
                builder = builder.with_config(config_key("aws_server_side_encryption"), "AES256");
            }
            Some(S3Encryption::Kms(key)) => {
                builder = builder.with_config(config_key("aws_server_side_encryption"), "aws:kms");
                if let Some(key) = key {
                    builder = builder.with_config(config_key("aws_sse_kms_key_id"), key);
                }
            }
        }
        let s3 = Arc::new(
            builder
                .build()
                .map_err(|e| StorageError::Unavailable(e.to_string()))?,
        );
        let part_size = settings.part_size.max(MIN_PART_SIZE);
        let writer = MultipartWriter {
            objects: s3.clone(),
            multipart: s3.clone(),
            max_copy: Some(MAX_SERVER_SIDE_COPY),
            part_size,
            verify_copy: false,
        };
        Ok(ObjectBlobStore::new(
            s3.clone(),
            Box::new(writer),
            Some(s3),
            &settings.root,
            part_size,
            settings.redirect,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behaviour::{is_unavailable, push, read};
    use crate::testing::fetch;
    use crate::testing::garage::Garage;
    use crate::{BlobContent, BlobStore};
    use futures_util::TryStreamExt;
    use object_store::ObjectStore;

    #[tokio::test]
    async fn passes_the_behaviour_suite_on_garage() {
        let garage = Garage::start();
        let store = ObjectBlobStore::s3(&garage.settings("suite")).unwrap();
        let other = ObjectBlobStore::s3(&garage.settings("suite")).unwrap();
        crate::behaviour::run_all(&store, &other, MIN_PART_SIZE as usize).await;
    }

    #[tokio::test]
    async fn layout_redirects_and_outages() {
        let mut garage = Garage::start();
        let store = ObjectBlobStore::s3(&garage.settings("/registry/")).unwrap();
        let blob = push(&store, b"in the bucket").await;

        // The official registry's layout under the root prefix, and no upload left behind.
        let keys: Vec<String> = store
            .objects
            .list(None)
            .map_ok(|o| o.location.to_string())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            keys,
            vec![format!("registry/{}", crate::blob_key(&blob.digest))]
        );

        // With redirects on, a blob GET is a presigned URL that works without credentials.
        let redirecting = ObjectBlobStore::s3(&S3Settings {
            redirect: Some(Duration::from_secs(60)),
            ..garage.settings("registry")
        })
        .unwrap();
        let BlobContent::Redirect(url) = redirecting.read_blob(&blob, None).await.unwrap() else {
            panic!("expected a redirect")
        };
        assert_eq!(fetch(&url).await, b"in the bucket");

        // The store down: unavailable, not "not found"; back up: served again.
        garage.stop();
        is_unavailable(&store, &blob).await;
        garage.start_again();
        assert_eq!(read(&store, &blob, None).await, b"in the bucket");
    }
}

#[cfg(test)]
mod encryption_tests {
    use super::*;
    use crate::BlobStore;
    use crate::testing::garage::Garage;
    use crate::testing::{RecordingProxy, body};
    use berth_oci::{Algorithm, Digest, UploadId};

    /// Every request that creates an object (a PUT that is not a part, a multipart upload's
    /// creation) asks for `encryption`, and the upload goes through.
    async fn writes_ask_for(encryption: S3Encryption, expected: &[&str]) {
        let garage = Garage::start();
        let proxy = RecordingProxy::start(garage.s3_port).await;
        let store = ObjectBlobStore::s3(&S3Settings {
            endpoint: Some(format!("http://127.0.0.1:{}", proxy.port)),
            encryption: Some(encryption),
            ..garage.settings("encrypted")
        })
        .unwrap();
        let data: Vec<u8> = (0..MIN_PART_SIZE as usize * 2 + 77)
            .map(|i| i as u8)
            .collect();
        let id = UploadId::random();
        store.create_upload(id).await.unwrap();
        store.write_upload(id, 0, body(b"first ")).await.unwrap();
        let chunks = vec![Ok(bytes::Bytes::from(data.clone()))];
        store
            .write_upload(id, 6, Box::pin(futures_util::stream::iter(chunks)))
            .await
            .unwrap();
        let whole = [b"first ".as_slice(), &data].concat();
        let digest = Digest::of(Algorithm::Sha256, &whole);
        store
            .commit_upload(id, whole.len() as u64, &digest)
            .await
            .unwrap();
        let creating: Vec<String> = proxy
            .heads()
            .into_iter()
            .filter(|head| {
                let line = head.lines().next().unwrap_or_default();
                (line.starts_with("PUT ") && !line.contains("partNumber="))
                    || (line.starts_with("POST ") && line.contains("?uploads"))
            })
            .collect();
        assert!(
            creating
                .iter()
                .any(|h| h.contains("/docker/registry/v2/blobs/")),
            "the blob itself was written through the proxy"
        );
        for head in &creating {
            let lower = head.to_ascii_lowercase();
            for header in expected {
                assert!(lower.contains(header), "{header} missing from:\n{head}");
            }
        }
    }

    #[tokio::test]
    async fn sse_s3_is_asked_for_on_every_write() {
        writes_ask_for(
            S3Encryption::S3Managed,
            &["x-amz-server-side-encryption: aes256"],
        )
        .await;
    }

    #[tokio::test]
    async fn sse_kms_with_a_key_is_asked_for_on_every_write() {
        writes_ask_for(
            S3Encryption::Kms(Some("arn:aws:kms:eu-west-1:111122223333:key/berth".into())),
            &[
                "x-amz-server-side-encryption: aws:kms",
                "x-amz-server-side-encryption-aws-kms-key-id: arn:aws:kms:eu-west-1:111122223333:key/berth",
            ],
        )
        .await;
    }
}
