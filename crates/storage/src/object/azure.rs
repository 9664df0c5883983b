//! Azure Blob Storage: parts of an upload are blocks of its `data` blob, committed as a block
//! list when it is sealed.

use std::sync::Arc;
use std::time::Duration;

use object_store::azure::MicrosoftAzureBuilder;

use super::writer::MultipartWriter;
use super::{ObjectBlobStore, retry_config};
use crate::StorageError;

/// How to reach the container (registry:2's `storage.azure`).
#[derive(Debug, Clone)]
pub struct AzureSettings {
    pub account_name: String,
    /// The account's shared key; without one, Azure's usual sources (environment, managed
    /// identity, workload identity, the Azure CLI).
    pub account_key: Option<String>,
    pub container: String,
    /// The service's URL, `https://<account>.blob.<realm>` unless given (an emulator such as
    /// Azurite: `http://127.0.0.1:10000/devstoreaccount1`).
    pub endpoint: String,
    /// A prefix under which everything is stored.
    pub root: String,
    /// The size of the blocks an upload is cut into.
    pub part_size: u64,
    /// Redirect blob GETs to shared-access-signature URLs valid this long (needs the account
    /// key or a user delegation key), instead of streaming them.
    pub redirect: Option<Duration>,
}

/// The smallest block berth writes (Azure takes any size; a blob has at most 50,000 blocks).
pub const MIN_BLOCK_SIZE: u64 = 1024 * 1024;

impl ObjectBlobStore {
    pub fn azure(settings: &AzureSettings) -> Result<ObjectBlobStore, StorageError> {
        let mut builder = MicrosoftAzureBuilder::from_env()
            .with_account(&settings.account_name)
            .with_container_name(&settings.container)
            .with_endpoint(settings.endpoint.clone())
            .with_allow_http(settings.endpoint.starts_with("http://"))
            .with_retry(retry_config());
        if let Some(key) = &settings.account_key {
            builder = builder.with_access_key(key);
        }
        let azure = Arc::new(
            builder
                .build()
                .map_err(|e| StorageError::Unavailable(e.to_string()))?,
        );
        let part_size = settings.part_size.max(MIN_BLOCK_SIZE);
        let writer = MultipartWriter {
            objects: azure.clone(),
            multipart: azure.clone(),
            max_copy: None,
            part_size,
            // Copy Blob may complete asynchronously; within one account it normally does not.
            verify_copy: true,
        };
        Ok(ObjectBlobStore::new(
            azure.clone(),
            Box::new(writer),
            Some(azure),
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
    use crate::testing::azurite::Azurite;
    use crate::testing::fetch;
    use crate::{BlobContent, BlobStore};

    #[tokio::test]
    async fn passes_the_behaviour_suite_on_azurite() {
        let azurite = Azurite::start();
        let store = ObjectBlobStore::azure(&azurite.settings("suite")).unwrap();
        let other = ObjectBlobStore::azure(&azurite.settings("suite")).unwrap();
        crate::behaviour::run_all(&store, &other, MIN_BLOCK_SIZE as usize).await;
    }

    #[tokio::test]
    async fn redirects_are_signed_and_outages_are_unavailable() {
        let mut azurite = Azurite::start();
        let store = ObjectBlobStore::azure(&azurite.settings("registry")).unwrap();
        let blob = push(&store, b"in a container").await;

        // A shared access signature URL that the emulator accepts without other credentials.
        let redirecting = ObjectBlobStore::azure(&AzureSettings {
            redirect: Some(Duration::from_secs(60)),
            ..azurite.settings("registry")
        })
        .unwrap();
        let BlobContent::Redirect(url) = redirecting.read_blob(&blob, None).await.unwrap() else {
            panic!("expected a redirect")
        };
        assert!(url.contains("sig="), "{url}");
        assert_eq!(fetch(&url).await, b"in a container");

        azurite.stop();
        is_unavailable(&store, &blob).await;
        azurite.start_again();
        assert_eq!(store.stat_blob(&blob).await.unwrap(), Some(14));
        assert_eq!(read(&store, &blob, None).await, b"in a container");
    }
}
