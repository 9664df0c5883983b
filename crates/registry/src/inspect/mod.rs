//! What a person wants to know about repositories and manifests: summaries, pages of tags,
//! a manifest taken apart (an index's platforms; an image's config, layers and history; an
//! artifact's files), its referrers by kind, activity, storage usage. Typed values for the
//! dashboard, read from the metadata store and (for configs) the blob store.
//!
//! When a manifest is first pushed, `describe_pushed` records what kind of thing it is, its
//! platforms, total size, description and the words of its labels and annotations: the search
//! index and the filters use them (pushing it again under another tag only checks they exist;
//! [`Registry::describe_manifest`] and [`Registry::describe_missing`] fill in what is missing).

use std::collections::BTreeMap;

use berth_oci::manifest::{DOCKER_MANIFEST_LIST, OCI_IMAGE_INDEX};
use berth_oci::{Digest, Reference, RegistryError, RepositoryName};
use bytes::Bytes;
use serde::Deserialize;

mod describe;
mod pages;

/// Configs larger than this are not read for pages or details (real ones are kilobytes).
pub const MAX_CONFIG_SIZE: u64 = 1024 * 1024;
/// The words of one manifest's labels and annotations kept for search, at most.
const MAX_WORDS: usize = 4096;
/// The annotation (or label) holding an image's description.
pub const DESCRIPTION: &str = "org.opencontainers.image.description";
/// The annotation naming a file in an artifact's layer.
pub const TITLE: &str = "org.opencontainers.image.title";

/// What a manifest is, for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Image,
    Index,
    Signature,
    Sbom,
    Attestation,
    Helm,
    Wasm,
    Artifact,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Image,
        Kind::Index,
        Kind::Signature,
        Kind::Sbom,
        Kind::Attestation,
        Kind::Helm,
        Kind::Wasm,
        Kind::Artifact,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Index => "index",
            Kind::Signature => "signature",
            Kind::Sbom => "sbom",
            Kind::Attestation => "attestation",
            Kind::Helm => "helm",
            Kind::Wasm => "wasm",
            Kind::Artifact => "artifact",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// What a manifest of this media type, artifact type (or config media type) and layer
    /// media types is. Signatures, SBOMs and attestations are recognised by the media types
    /// cosign, notation, sigstore bundles, SPDX, CycloneDX and in-toto use.
    pub fn classify<'a>(
        media_type: &str,
        artifact_type: Option<&str>,
        layer_types: impl IntoIterator<Item = &'a str>,
    ) -> Kind {
        if media_type == OCI_IMAGE_INDEX || media_type == DOCKER_MANIFEST_LIST {
            return Kind::Index;
        }
        let layer_types: Vec<&str> = layer_types.into_iter().collect();
        let types = artifact_type.into_iter().chain(layer_types.iter().copied());
        let mut kind = None;
        for t in types {
            let t = t.to_ascii_lowercase();
            let found = if t.contains("cosign.simplesigning")
                || t.contains("cosign.artifact.sig")
                || t.contains("notary.signature")
                || t.contains("sigstore.bundle")
            {
                Some(Kind::Signature)
            } else if t.contains("spdx") || t.contains("cyclonedx") || t.contains("sbom") {
                Some(Kind::Sbom)
            } else if t.contains("in-toto")
                || t.contains("intoto")
                || t.contains("attestation")
                || t.contains("dsse")
            {
                Some(Kind::Attestation)
            } else if t.contains("helm") {
                Some(Kind::Helm)
            } else if t.contains("wasm") {
                Some(Kind::Wasm)
            } else {
                None
            };
            if found.is_some() {
                kind = found;
                break;
            }
        }
        kind.unwrap_or(match artifact_type {
            None => Kind::Image,
            Some(
                "application/vnd.oci.image.config.v1+json"
                | "application/vnd.docker.container.image.v1+json",
            ) => Kind::Image,
            Some(_) => Kind::Artifact,
        })
    }
}

/// A descriptor as manifests carry it, read leniently for display.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Entry {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "artifactType", default)]
    pub artifact_type: Option<String>,
}

impl Entry {
    /// The file name an artifact layer carries, if any.
    pub fn title(&self) -> Option<&str> {
        self.annotations.get(TITLE).map(String::as_str)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    /// `os/architecture[/variant]`.
    pub fn name(&self) -> String {
        match &self.variant {
            Some(v) if !v.is_empty() => format!("{}/{}/{v}", self.os, self.architecture),
            _ => format!("{}/{}", self.os, self.architecture),
        }
    }

    fn is_known(&self) -> bool {
        !self.os.is_empty() && self.os != "unknown" && !self.architecture.is_empty()
    }
}

/// The parts of a manifest or index the pages show.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ManifestParts {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    #[serde(rename = "artifactType", default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub config: Option<Entry>,
    #[serde(default)]
    pub layers: Vec<Entry>,
    #[serde(default)]
    pub manifests: Vec<Entry>,
    #[serde(default)]
    pub subject: Option<Entry>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl ManifestParts {
    pub fn parse(content: &[u8]) -> ManifestParts {
        // Stored manifests were validated at push; a field of an unexpected shape only
        // leaves the pages with less to show.
        serde_json::from_slice(content).unwrap_or_default()
    }

    /// `artifactType`, else the config's media type (as the referrers API reports it).
    pub fn artifact_type(&self) -> Option<&str> {
        self.artifact_type
            .as_deref()
            .or(self.config.as_ref().map(|c| c.media_type.as_str()))
    }

    pub fn kind(&self, media_type: &str) -> Kind {
        Kind::classify(
            media_type,
            self.artifact_type(),
            self.layers.iter().map(|l| l.media_type.as_str()),
        )
    }
}

/// An image config, the parts people look at.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub config: RunConfig,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

impl ImageConfig {
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct RunConfig {
    #[serde(rename = "User")]
    pub user: Option<String>,
    #[serde(rename = "Env")]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Entrypoint")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd")]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "WorkingDir")]
    pub working_dir: Option<String>,
    #[serde(rename = "ExposedPorts")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(rename = "Labels")]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct HistoryEntry {
    pub created: Option<String>,
    pub created_by: Option<String>,
    pub comment: Option<String>,
    pub empty_layer: bool,
}

/// A manifest of a repository, taken apart.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub repository: RepositoryName,
    pub digest: Digest,
    pub media_type: String,
    /// The manifest's exact bytes.
    pub content: Bytes,
    pub parts: ManifestParts,
    pub kind: Kind,
    /// Compressed bytes of the manifest and everything it references.
    pub total_size: u64,
    pub platforms: Vec<String>,
    pub description: Option<String>,
    pub pushed_at: i64,
    pub pulls: u64,
    pub last_pulled_at: Option<i64>,
    /// Tags pointing at it, sorted.
    pub tags: Vec<String>,
    /// Its config as stored, when it has one small enough to read.
    pub config: Option<Bytes>,
    /// The config parsed as an image config (images only).
    pub image: Option<ImageConfig>,
    /// For an index: what each child is, when known.
    pub children: Vec<(Entry, Option<Kind>)>,
    pub referrers: Vec<ReferrerView>,
    /// The content ids (IPFS CIDs) of its config and layers, by digest, on a store that gives
    /// them.
    pub content_ids: BTreeMap<String, String>,
}

/// A manifest whose subject is the inspected one (or, by cosign's older convention, a
/// `sha256-<hex>.sig`/`.att`/`.sbom` tag naming it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerView {
    pub digest: Digest,
    pub kind: Kind,
    pub artifact_type: Option<String>,
    pub size: u64,
    pub annotations: BTreeMap<String, String>,
    /// The tag it was found by, for cosign's tag convention.
    pub tag: Option<String>,
}

/// The words of texts, lower case, letters and digits only, each once, in order.
pub fn words<'a>(texts: impl IntoIterator<Item = &'a str>, limit: usize) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut out = String::new();
    for text in texts {
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let word = word.to_lowercase();
            if word.len() > 64 || !seen.insert(word.clone()) {
                continue;
            }
            if out.len() + word.len() + 1 > limit {
                return out;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&word);
        }
    }
    out
}

/// An unknown manifest (the pages answer an unknown repository with the same 404).
fn not_found_in(reference: &Reference) -> RegistryError {
    RegistryError::manifest_unknown(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_media_types() {
        let image = "application/vnd.oci.image.manifest.v1+json";
        assert_eq!(Kind::classify(OCI_IMAGE_INDEX, None, []), Kind::Index);
        assert_eq!(
            Kind::classify(
                image,
                Some("application/vnd.oci.image.config.v1+json"),
                ["application/vnd.oci.image.layer.v1.tar+gzip"]
            ),
            Kind::Image
        );
        assert_eq!(
            Kind::classify(
                image,
                Some("application/vnd.dev.cosign.artifact.sig.v1+json"),
                []
            ),
            Kind::Signature
        );
        assert_eq!(
            Kind::classify(
                image,
                Some("application/vnd.oci.image.config.v1+json"),
                ["application/vnd.dev.cosign.simplesigning.v1+json"]
            ),
            Kind::Signature
        );
        assert_eq!(
            Kind::classify(image, Some("application/spdx+json"), []),
            Kind::Sbom
        );
        assert_eq!(
            Kind::classify(image, Some("application/vnd.in-toto+json"), []),
            Kind::Attestation
        );
        assert_eq!(
            Kind::classify(image, Some("application/vnd.cncf.helm.config.v1+json"), []),
            Kind::Helm
        );
        assert_eq!(
            Kind::classify(image, Some("application/vnd.wasm.config.v0+json"), []),
            Kind::Wasm
        );
        assert_eq!(
            Kind::classify(image, Some("application/vnd.example.thing"), []),
            Kind::Artifact
        );
    }

    #[test]
    fn words_are_lower_case_letters_and_digits_once() {
        assert_eq!(
            words(["Hello, World! hello", "ünïcode 3.20"], 100),
            "hello world ünïcode 3 20"
        );
        assert_eq!(words(["aaa bbb ccc"], 8), "aaa bbb");
    }
}
