//! `berth import registry-v2 SOURCE`: indexes an official registry (registry:2) store.
//!
//! registry:2 keeps everything as files (or objects) under `docker/registry/v2/`:
//!
//! ```text
//! blobs/sha256/ab/abcd.../data                                  content, manifests included
//! repositories/<name>/_layers/sha256/<hex>/link                 blobs the repository holds
//! repositories/<name>/_manifests/revisions/sha256/<hex>/link    its manifests
//! repositories/<name>/_manifests/tags/<tag>/current/link        its tags
//! ```
//!
//! The import reads those links and records the same facts in berth's database through the
//! registry's own operations, so a manifest is accepted only if its content is present and
//! valid, exactly as if it had been pushed. When the source is the store berth uses (same
//! directory, or same bucket and prefix) blobs are not copied: they are already where berth
//! looks for them. Otherwise each blob is streamed into berth's store and verified against
//! its digest. Running the import again changes nothing that is already there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use berth_config::Config;
use berth_oci::{Digest, ErrorCode, Reference, RepositoryName, Tag};
use berth_registry::Registry;
use berth_registry::events::Origin;
use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;

const ROOT: &str = "docker/registry/v2";

/// Where the registry:2 store is.
pub enum Source {
    Directory(PathBuf),
    /// `s3://bucket/prefix`, reached with berth's own S3 settings (endpoint, credentials).
    S3 {
        bucket: String,
        prefix: String,
    },
}

impl Source {
    pub fn parse(text: &str) -> Source {
        match text.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                Source::S3 {
                    bucket: bucket.to_string(),
                    prefix: prefix.trim_matches('/').to_string(),
                }
            }
            None => Source::Directory(PathBuf::from(text)),
        }
    }

    /// Whether this is the store berth itself uses, so blobs are already in place.
    fn is_berths_store(&self, config: &Config) -> bool {
        match (self, &config.storage.s3) {
            (Source::Directory(dir), None) => {
                same_directory(dir, &config.storage.filesystem.rootdirectory)
            }
            (Source::S3 { bucket, prefix }, Some(s3)) => {
                bucket == &s3.bucket && prefix == &s3.rootdirectory
            }
            _ => false,
        }
    }

    fn open(&self, config: &Config) -> Result<(Arc<dyn ObjectStore>, String), String> {
        match self {
            Source::Directory(dir) => {
                let store = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| format!("opening {}: {e}", dir.display()))?;
                Ok((Arc::new(store), String::new()))
            }
            Source::S3 { bucket, prefix } => {
                let s3 = config
                    .storage
                    .s3
                    .as_ref()
                    .ok_or("an s3:// source uses berth's storage.s3 settings (endpoint, credentials); configure them")?;
                let mut builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(&s3.region)
                    .with_virtual_hosted_style_request(!s3.forcepathstyle);
                if let Some(endpoint) = s3.endpoint() {
                    builder = builder
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_endpoint(endpoint);
                }
                if let (Some(access), Some(secret)) = (&s3.accesskey, &s3.secretkey) {
                    builder = builder
                        .with_access_key_id(access)
                        .with_secret_access_key(secret);
                }
                if let Some(token) = &s3.sessiontoken {
                    builder = builder.with_token(token);
                }
                let store = builder
                    .build()
                    .map_err(|e| format!("configuring S3: {e}"))?;
                Ok((Arc::new(store), prefix.clone()))
            }
        }
    }
}

fn same_directory(a: &FsPath, b: &FsPath) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// What an import found and did.
#[derive(Debug, Default)]
pub struct Report {
    pub repositories: usize,
    pub blobs: usize,
    /// Blobs streamed into berth's store (0 for an in-place import).
    pub blobs_copied: usize,
    pub manifests: usize,
    pub tags: usize,
    /// What could not be imported, and why.
    pub problems: Vec<String>,
}

/// Everything one repository's links say.
#[derive(Default)]
struct RepositoryLinks {
    layers: BTreeSet<Digest>,
    revisions: BTreeSet<Digest>,
    tags: BTreeMap<String, Digest>,
}

struct Importer<'a> {
    source: Arc<dyn ObjectStore>,
    prefix: String,
    registry: &'a Registry,
    /// Events of the import are berth's own doing.
    origin: Arc<Origin>,
    in_place: bool,
    report: Report,
}

pub async fn import_registry_v2(
    source: &Source,
    config: &Config,
    registry: &Registry,
) -> Result<Report, String> {
    let (store, prefix) = source.open(config)?;
    let mut importer = Importer {
        source: store,
        prefix,
        registry,
        origin: Arc::new(Origin::system("import")),
        in_place: source.is_berths_store(config),
        report: Report::default(),
    };
    let repositories = importer.read_links().await?;
    for (name, links) in repositories {
        let Ok(repository) = RepositoryName::parse(&name) else {
            importer.problem(format!("{name}: not a valid repository name; skipped"));
            continue;
        };
        importer.report.repositories += 1;
        importer.import_repository(&repository, links).await;
    }
    Ok(importer.report)
}

impl Importer<'_> {
    fn path(&self, relative: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(relative)
        } else {
            Path::from(format!("{}/{relative}", self.prefix))
        }
    }

    fn blob_path(&self, digest: &Digest) -> Path {
        let hex = digest.hex();
        self.path(&format!(
            "{ROOT}/blobs/{}/{}/{hex}/data",
            digest.algorithm().as_str(),
            &hex[..2]
        ))
    }

    fn problem(&mut self, message: String) {
        tracing::warn!("{message}");
        self.report.problems.push(message);
    }

    async fn read(&self, path: &Path) -> Result<Bytes, object_store::Error> {
        self.source.get(path).await?.bytes().await
    }

    /// Walks `repositories/` once and sorts every link by repository.
    async fn read_links(&mut self) -> Result<BTreeMap<String, RepositoryLinks>, String> {
        let base = self.path(&format!("{ROOT}/repositories"));
        let mut repositories: BTreeMap<String, RepositoryLinks> = BTreeMap::new();
        let mut listing = self.source.list(Some(&base));
        while let Some(object) = listing
            .try_next()
            .await
            .map_err(|e| format!("listing {base}: {e}"))?
        {
            let location = object.location.as_ref();
            let Some(relative) = location
                .strip_prefix(base.as_ref())
                .map(|r| r.trim_start_matches('/'))
            else {
                continue;
            };
            if !relative.ends_with("/link") {
                continue;
            }
            let Some((name, kind)) = ["/_layers/", "/_manifests/"].iter().find_map(|marker| {
                relative
                    .split_once(marker)
                    .map(|(name, rest)| (name, (*marker, rest)))
            }) else {
                continue;
            };
            let entry = repositories.entry(name.to_string()).or_default();
            let link = match self.read(&object.location).await {
                Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
                Err(e) => {
                    self.problem(format!("{location}: unreadable: {e}"));
                    continue;
                }
            };
            let Ok(digest) = Digest::parse(&link) else {
                self.problem(format!("{location}: does not hold a digest"));
                continue;
            };
            match kind {
                ("/_layers/", _) => {
                    entry.layers.insert(digest);
                }
                ("/_manifests/", rest) if rest.starts_with("revisions/") => {
                    entry.revisions.insert(digest);
                }
                ("/_manifests/", rest) => {
                    // tags/<tag>/current/link; the tags' index/ history is not imported.
                    if let Some(tag) = rest
                        .strip_prefix("tags/")
                        .and_then(|r| r.strip_suffix("/current/link"))
                    {
                        entry.tags.insert(tag.to_string(), digest);
                    }
                }
                _ => {}
            }
        }
        Ok(repositories)
    }

    async fn import_repository(&mut self, repository: &RepositoryName, links: RepositoryLinks) {
        for digest in &links.layers {
            if let Err(why) = self.import_blob(repository, digest).await {
                self.problem(format!("{repository}: blob {digest}: {why}"));
            }
        }

        // Read every manifest, then record them in rounds: an index can only be recorded
        // once the manifests it lists are.
        let mut pending: BTreeMap<Digest, Bytes> = BTreeMap::new();
        for digest in &links.revisions {
            match self.read(&self.blob_path(digest)).await {
                Ok(bytes) => {
                    pending.insert(digest.clone(), bytes);
                }
                Err(e) => self.problem(format!(
                    "{repository}: manifest {digest}: content unreadable: {e}"
                )),
            }
        }
        let mut recorded: BTreeMap<Digest, Bytes> = BTreeMap::new();
        while !pending.is_empty() {
            let before = pending.len();
            let mut waiting = BTreeMap::new();
            let mut reasons = Vec::new();
            for (digest, bytes) in std::mem::take(&mut pending) {
                let reference = Reference::Digest(digest.clone());
                match self
                    .registry
                    .put_manifest(&self.origin, repository, &reference, None, bytes.clone())
                    .await
                {
                    Ok(_) => {
                        self.report.manifests += 1;
                        recorded.insert(digest, bytes);
                    }
                    Err(e) if e.code == ErrorCode::ManifestBlobUnknown => {
                        reasons.push(format!("{repository}: manifest {digest}: {e}"));
                        waiting.insert(digest, bytes);
                    }
                    Err(e) => self.problem(format!("{repository}: manifest {digest}: {e}")),
                }
            }
            if waiting.len() == before {
                // No progress: what still waits references content that is not there.
                for reason in reasons {
                    self.problem(reason);
                }
                break;
            }
            pending = waiting;
        }

        for (tag, digest) in &links.tags {
            let Ok(tag) = Tag::parse(tag) else {
                self.problem(format!("{repository}: tag {tag:?} is not valid; skipped"));
                continue;
            };
            let Some(bytes) = recorded.get(digest) else {
                self.problem(format!(
                    "{repository}: tag {tag} points at {digest}, which was not imported"
                ));
                continue;
            };
            match self
                .registry
                .put_manifest(
                    &self.origin,
                    repository,
                    &Reference::Tag(tag.clone()),
                    None,
                    bytes.clone(),
                )
                .await
            {
                Ok(_) => self.report.tags += 1,
                Err(e) => self.problem(format!("{repository}: tag {tag}: {e}")),
            }
        }
    }

    async fn import_blob(
        &mut self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<(), String> {
        let path = self.blob_path(digest);
        let size = match self.source.head(&path).await {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => {
                return Err("its data is missing from the store".into());
            }
            Err(e) => return Err(e.to_string()),
        };
        if self.in_place {
            self.registry
                .adopt_blob(&self.origin, repository, digest, size)
                .await
                .map_err(|e| e.to_string())?;
        } else if self
            .registry
            .mount_blob(&self.origin, repository, digest, None, &|_| true)
            .await
            .map_err(|e| e.to_string())?
            .is_none()
        {
            let stream = self
                .source
                .get(&path)
                .await
                .map_err(|e| e.to_string())?
                .into_stream()
                .map_err(|e| std::io::Error::other(e.to_string()));
            self.registry
                .upload_blob(
                    &self.origin,
                    repository,
                    digest,
                    Some(size),
                    Box::pin(stream),
                )
                .await
                .map_err(|e| e.to_string())?;
            self.report.blobs_copied += 1;
        }
        self.report.blobs += 1;
        Ok(())
    }
}
