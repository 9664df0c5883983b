//! Manifest parsing and validation.
//!
//! A pushed manifest is kept byte for byte (its digest is of exactly what was pushed); this
//! module only reads it to learn its media type and what it references, and refuses what a
//! registry must not store: Docker schema1, documents whose declared type disagrees with
//! their content type or their structure, and malformed descriptors.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use crate::digest::{Algorithm, Digest};
use crate::error::RegistryError;

/// Manifests up to this size are accepted: the size the specification asks registries to
/// support at least. Larger ones are refused with 413.
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

pub const OCI_IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];
/// Layers of these types may live outside the registry (they carry `urls`), so a manifest
/// can reference them without their blobs having been pushed.
const NON_DISTRIBUTABLE_LAYERS: [&str; 4] = [
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
];

/// The manifest media types berth stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ManifestMediaType {
    OciImageManifest,
    OciImageIndex,
    DockerManifest,
    DockerManifestList,
}

impl ManifestMediaType {
    pub const ALL: [ManifestMediaType; 4] = [
        ManifestMediaType::OciImageManifest,
        ManifestMediaType::OciImageIndex,
        ManifestMediaType::DockerManifest,
        ManifestMediaType::DockerManifestList,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ManifestMediaType::OciImageManifest => OCI_IMAGE_MANIFEST,
            ManifestMediaType::OciImageIndex => OCI_IMAGE_INDEX,
            ManifestMediaType::DockerManifest => DOCKER_MANIFEST,
            ManifestMediaType::DockerManifestList => DOCKER_MANIFEST_LIST,
        }
    }

    pub fn parse(s: &str) -> Option<ManifestMediaType> {
        ManifestMediaType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Indexes list other manifests; image manifests list blobs.
    pub fn is_index(self) -> bool {
        matches!(
            self,
            ManifestMediaType::OciImageIndex | ManifestMediaType::DockerManifestList
        )
    }
}

/// A content descriptor as it appears in manifests.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Value>,
}

impl Descriptor {
    fn is_non_distributable(&self) -> bool {
        NON_DISTRIBUTABLE_LAYERS.contains(&self.media_type.as_str())
            && self.urls.as_ref().is_some_and(|urls| !urls.is_empty())
    }
}

/// What berth needs to know about a valid manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedManifest {
    pub media_type: ManifestMediaType,
    /// Blobs that must be present in the repository: the config and every layer that is not
    /// hosted elsewhere.
    pub blobs: Vec<Descriptor>,
    /// Manifests an index lists; they must be present in the repository.
    pub children: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    /// The type the referrers API reports: `artifactType`, else the config's media type.
    pub artifact_type: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The fields of any manifest or index that berth looks at. Unknown fields are allowed: the
/// specification lets manifests carry extensions.
#[derive(Deserialize)]
struct RawManifest {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<i64>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    #[serde(rename = "artifactType")]
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
    #[serde(rename = "fsLayers")]
    fs_layers: Option<IgnoredAny>,
}

fn schema1_refused() -> RegistryError {
    RegistryError::manifest_invalid(
        "Docker schema1 manifests are not supported: they are deprecated and unverifiable. \
         Push with a current client, or convert with `skopeo copy --format v2s2`.",
    )
}

/// The media type part of a `Content-Type` value, without parameters, lowercased.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// RFC 6838 `type/subtype` with restricted-name characters, without parameters.
pub fn is_valid_media_type(s: &str) -> bool {
    fn restricted_name(s: &str) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 127
            && b[0].is_ascii_alphanumeric()
            && b.iter()
                .all(|&c| c.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&c))
    }
    s.split_once('/')
        .is_some_and(|(t, st)| restricted_name(t) && restricted_name(st))
}

impl ParsedManifest {
    /// Parses `bytes` pushed with the given `Content-Type`.
    pub fn parse(
        bytes: &[u8],
        content_type: Option<&str>,
    ) -> Result<ParsedManifest, RegistryError> {
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(RegistryError::manifest_invalid(format!(
                "manifest is {} bytes; the limit is {MAX_MANIFEST_SIZE}",
                bytes.len()
            ))
            .with_status(413));
        }
        let value: Value = crate::unique_json::parse(bytes).map_err(|e| {
            if e.is_data() {
                RegistryError::manifest_invalid(format!("manifest is ambiguous: {e}"))
            } else {
                RegistryError::manifest_invalid(format!("manifest is not valid JSON: {e}"))
            }
        })?;
        if !value.is_object() {
            return Err(RegistryError::manifest_invalid(
                "manifest must be a JSON object",
            ));
        }
        let raw: RawManifest = serde_path_to_error::deserialize(&value)
            .map_err(|e| RegistryError::manifest_invalid(format!("{}: {}", e.path(), e.inner())))?;

        let declared = content_type.map(essence).filter(|ct| !ct.is_empty());
        let is_schema1 = raw.schema_version == Some(1)
            || raw.fs_layers.is_some()
            || declared
                .as_deref()
                .is_some_and(|ct| DOCKER_SCHEMA1.contains(&ct))
            || raw
                .media_type
                .as_deref()
                .is_some_and(|mt| DOCKER_SCHEMA1.contains(&mt));
        if is_schema1 {
            return Err(schema1_refused());
        }
        match raw.schema_version {
            Some(2) => {}
            Some(v) => {
                return Err(RegistryError::manifest_invalid(format!(
                    "unsupported schemaVersion {v}"
                )));
            }
            None => return Err(RegistryError::manifest_invalid("schemaVersion is missing")),
        }

        let media_type = resolve_media_type(declared.as_deref(), raw.media_type.as_deref(), &raw)?;
        check_structure(media_type, &raw)?;

        if let Some(artifact_type) = &raw.artifact_type
            && !is_valid_media_type(artifact_type)
        {
            return Err(RegistryError::manifest_invalid(format!(
                "artifactType {artifact_type:?} is not a media type"
            )));
        }
        let all_descriptors = raw
            .config
            .iter()
            .chain(raw.layers.iter().flatten())
            .chain(raw.manifests.iter().flatten())
            .chain(raw.subject.iter());
        for descriptor in all_descriptors {
            if !is_valid_media_type(&descriptor.media_type) {
                return Err(RegistryError::manifest_invalid(format!(
                    "descriptor {} has an invalid mediaType {:?}",
                    descriptor.digest, descriptor.media_type
                )));
            }
        }

        let mut blobs = Vec::new();
        if let Some(config) = &raw.config {
            blobs.push(config.clone());
        }
        blobs.extend(
            raw.layers
                .iter()
                .flatten()
                .filter(|l| !l.is_non_distributable())
                .cloned(),
        );
        let artifact_type = raw.artifact_type.clone().or_else(|| {
            (!media_type.is_index())
                .then(|| raw.config.as_ref().map(|c| c.media_type.clone()))
                .flatten()
        });
        Ok(ParsedManifest {
            media_type,
            blobs,
            children: raw.manifests.unwrap_or_default(),
            subject: raw.subject,
            artifact_type,
            annotations: raw.annotations,
        })
    }
}

/// Decides the manifest's media type from the request's `Content-Type` and the body's
/// `mediaType`, which must agree when both are given.
fn resolve_media_type(
    declared: Option<&str>,
    in_body: Option<&str>,
    raw: &RawManifest,
) -> Result<ManifestMediaType, RegistryError> {
    // Clients that predate typed manifests send generic types; then the body decides.
    let declared =
        declared.filter(|ct| !matches!(*ct, "application/json" | "application/octet-stream"));
    if let (Some(ct), Some(mt)) = (declared, in_body)
        && ct != mt
    {
        return Err(RegistryError::manifest_invalid(format!(
            "Content-Type {ct:?} does not match the manifest's mediaType {mt:?}"
        )));
    }
    let Some(name) = declared.or(in_body) else {
        // OCI image manifests and indexes may omit mediaType; their structure tells them apart.
        return match (raw.manifests.is_some(), raw.config.is_some()) {
            (true, false) => Ok(ManifestMediaType::OciImageIndex),
            (false, true) => Ok(ManifestMediaType::OciImageManifest),
            _ => Err(RegistryError::manifest_invalid(
                "manifest has no mediaType and no Content-Type, and is neither clearly a manifest nor an index",
            )),
        };
    };
    ManifestMediaType::parse(name).ok_or_else(|| {
        RegistryError::manifest_invalid(format!(
            "unsupported manifest media type {name:?}; berth stores {}",
            ManifestMediaType::ALL.map(|t| t.as_str()).join(", ")
        ))
    })
}

/// Refuses documents whose structure contradicts their type: an "image manifest" with a
/// `manifests` list could be read as an index by another client, and that ambiguity has been
/// used to serve different content to different clients under one digest.
fn check_structure(media_type: ManifestMediaType, raw: &RawManifest) -> Result<(), RegistryError> {
    if media_type.is_index() {
        if raw.config.is_some() || raw.layers.is_some() {
            return Err(RegistryError::manifest_invalid(format!(
                "{} must not have config or layers",
                media_type.as_str()
            )));
        }
        if raw.manifests.is_none() {
            return Err(RegistryError::manifest_invalid(
                "an index must have a manifests list",
            ));
        }
    } else {
        if raw.manifests.is_some() {
            return Err(RegistryError::manifest_invalid(format!(
                "{} must not have a manifests list",
                media_type.as_str()
            )));
        }
        if raw.config.is_none() {
            return Err(RegistryError::manifest_invalid(
                "an image manifest must have a config",
            ));
        }
        if raw.layers.is_none() {
            return Err(RegistryError::manifest_invalid(
                "an image manifest must have a layers list",
            ));
        }
    }
    Ok(())
}

/// The digest a pushed manifest is stored under: of its exact bytes, with the algorithm of
/// the digest it was pushed by (or sha256 when pushed by tag).
pub fn manifest_digest(bytes: &[u8], pushed_as: Option<&Digest>) -> Digest {
    Digest::of(
        pushed_as.map_or(Algorithm::Sha256, Digest::algorithm),
        bytes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde_json::json;

    fn digest(n: u8) -> String {
        format!("sha256:{}", hex::encode([n; 32]))
    }

    fn image(media_type: Option<&str>) -> Value {
        let mut m = json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(1), "size": 10},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(2), "size": 20},
                {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "digest": digest(3), "size": 30, "urls": ["https://example.com/layer"]}
            ],
            "annotations": {"org.opencontainers.image.created": "2026-01-01"}
        });
        if let Some(mt) = media_type {
            m["mediaType"] = json!(mt);
        }
        m
    }

    fn parse(value: &Value, content_type: Option<&str>) -> Result<ParsedManifest, RegistryError> {
        ParsedManifest::parse(value.to_string().as_bytes(), content_type)
    }

    #[test]
    fn image_manifest_references_config_and_distributable_layers() {
        let m = parse(&image(Some(OCI_IMAGE_MANIFEST)), Some(OCI_IMAGE_MANIFEST)).unwrap();
        assert_eq!(m.media_type, ManifestMediaType::OciImageManifest);
        let blobs: Vec<String> = m.blobs.iter().map(|d| d.digest.to_string()).collect();
        assert_eq!(
            blobs,
            vec![digest(1), digest(2)],
            "the foreign layer is not required"
        );
        assert!(m.children.is_empty());
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        assert_eq!(m.annotations.unwrap().len(), 1);
    }

    #[test]
    fn media_type_comes_from_content_type_or_body_or_structure() {
        assert_eq!(
            parse(&image(None), Some(OCI_IMAGE_MANIFEST))
                .unwrap()
                .media_type,
            ManifestMediaType::OciImageManifest
        );
        assert_eq!(
            parse(&image(Some(DOCKER_MANIFEST)), None)
                .unwrap()
                .media_type,
            ManifestMediaType::DockerManifest
        );
        assert_eq!(
            parse(&image(Some(DOCKER_MANIFEST)), Some("application/json"))
                .unwrap()
                .media_type,
            ManifestMediaType::DockerManifest
        );
        assert_eq!(
            parse(&image(None), None).unwrap().media_type,
            ManifestMediaType::OciImageManifest
        );
        let index = json!({"schemaVersion": 2, "manifests": []});
        assert_eq!(
            parse(&index, None).unwrap().media_type,
            ManifestMediaType::OciImageIndex
        );
        assert_eq!(
            parse(
                &image(Some(OCI_IMAGE_MANIFEST)),
                Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8")
            )
            .unwrap()
            .media_type,
            ManifestMediaType::OciImageManifest
        );
    }

    #[test]
    fn content_type_must_agree_with_media_type() {
        let err = parse(&image(Some(OCI_IMAGE_MANIFEST)), Some(DOCKER_MANIFEST)).unwrap_err();
        assert_eq!(err.code, ErrorCode::ManifestInvalid);
        assert!(
            err.detail
                .unwrap()
                .as_str()
                .unwrap()
                .contains("does not match")
        );
        let err = parse(&image(Some(OCI_IMAGE_MANIFEST)), Some("text/plain")).unwrap_err();
        assert_eq!(err.code, ErrorCode::ManifestInvalid);
    }

    #[test]
    fn index_lists_children_and_subject() {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_INDEX,
            "artifactType": "application/vnd.example.sbom",
            "manifests": [
                {"mediaType": OCI_IMAGE_MANIFEST, "digest": digest(4), "size": 400, "platform": {"architecture": "amd64", "os": "linux"}},
                {"mediaType": OCI_IMAGE_MANIFEST, "digest": digest(5), "size": 500}
            ],
            "subject": {"mediaType": OCI_IMAGE_MANIFEST, "digest": digest(6), "size": 600}
        });
        let m = parse(&index, Some(OCI_IMAGE_INDEX)).unwrap();
        assert!(m.blobs.is_empty());
        assert_eq!(m.children.len(), 2);
        assert_eq!(m.subject.unwrap().digest.to_string(), digest(6));
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.example.sbom")
        );
    }

    #[test]
    fn schema1_is_refused_clearly() {
        let schema1 =
            json!({"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": [], "history": []});
        for ct in [None, Some(DOCKER_SCHEMA1[0]), Some(DOCKER_SCHEMA1[1])] {
            let err = parse(&schema1, ct).unwrap_err();
            assert_eq!(err.code, ErrorCode::ManifestInvalid);
            assert!(
                err.detail
                    .as_ref()
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .contains("schema1"),
                "{err}"
            );
        }
        let err = parse(&image(None), Some(DOCKER_SCHEMA1[1])).unwrap_err();
        assert!(err.to_string().contains("schema1"));
    }

    #[test]
    fn malformed_documents_are_invalid() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), "not valid JSON"),
            (b"[1,2]".to_vec(), "JSON object"),
            (b"{}".to_vec(), "schemaVersion"),
            (br#"{"schemaVersion": 3}"#.to_vec(), "schemaVersion"),
            (br#"{"schemaVersion": "2"}"#.to_vec(), "schemaVersion"),
            (json!({"schemaVersion": 2, "mediaType": OCI_IMAGE_MANIFEST, "layers": []}).to_string().into_bytes(), "config"),
            (json!({"schemaVersion": 2, "mediaType": OCI_IMAGE_MANIFEST, "config": image(None)["config"]}).to_string().into_bytes(), "layers"),
            (json!({"schemaVersion": 2, "mediaType": OCI_IMAGE_INDEX}).to_string().into_bytes(), "manifests"),
            (json!({"schemaVersion": 2, "mediaType": "application/vnd.example+json", "manifests": []}).to_string().into_bytes(), "unsupported"),
        ];
        for (bytes, expected) in cases {
            let err = ParsedManifest::parse(&bytes, None).unwrap_err();
            assert_eq!(err.code, ErrorCode::ManifestInvalid);
            assert!(
                err.to_string().contains(expected),
                "{err} should mention {expected}"
            );
        }
    }

    #[test]
    fn ambiguous_manifest_index_documents_are_refused() {
        let mut both = image(Some(OCI_IMAGE_MANIFEST));
        both["manifests"] = json!([]);
        assert!(
            parse(&both, None)
                .unwrap_err()
                .to_string()
                .contains("must not have a manifests")
        );
        let mut index = image(Some(OCI_IMAGE_INDEX));
        index["manifests"] = json!([]);
        assert!(
            parse(&index, None)
                .unwrap_err()
                .to_string()
                .contains("must not have config")
        );
    }

    #[test]
    fn manifests_with_a_key_twice_are_refused() {
        let manifest = image(Some(OCI_IMAGE_MANIFEST)).to_string();
        let cases = [
            manifest.replacen('{', r#"{"schemaVersion":2,"#, 1),
            manifest.replacen(r#""size":"#, r#""size":1,"size":"#, 1),
            manifest.replacen(
                r#""annotations":{"#,
                r#""annotations":{"a":"1","a":"2","#,
                1,
            ),
        ];
        for text in cases {
            let err = ParsedManifest::parse(text.as_bytes(), None).unwrap_err();
            assert_eq!(err.code, ErrorCode::ManifestInvalid, "{text}");
            assert!(err.to_string().contains("duplicate key"), "{err}");
        }
        assert!(ParsedManifest::parse(manifest.as_bytes(), None).is_ok());
    }

    #[test]
    fn descriptors_are_validated_with_their_path() {
        let mut bad_digest = image(None);
        bad_digest["layers"][0]["digest"] = json!("sha256:totallywrong");
        let err = parse(&bad_digest, None).unwrap_err();
        assert!(err.to_string().contains("layers[0].digest"), "{err}");

        let mut negative = image(None);
        negative["config"]["size"] = json!(-1);
        assert!(
            parse(&negative, None)
                .unwrap_err()
                .to_string()
                .contains("config.size")
        );

        let mut bad_type = image(None);
        bad_type["layers"][0]["mediaType"] = json!("not a type");
        assert!(
            parse(&bad_type, None)
                .unwrap_err()
                .to_string()
                .contains("invalid mediaType")
        );

        let mut bad_artifact = image(None);
        bad_artifact["artifactType"] = json!("nope");
        assert!(
            parse(&bad_artifact, None)
                .unwrap_err()
                .to_string()
                .contains("artifactType")
        );
    }

    #[test]
    fn oversized_manifests_are_413() {
        let mut big = image(None);
        big["annotations"]["padding"] = json!("x".repeat(MAX_MANIFEST_SIZE));
        let err = parse(&big, None).unwrap_err();
        assert_eq!((err.code, err.status), (ErrorCode::ManifestInvalid, 413));
    }

    #[test]
    fn digests_follow_the_push_algorithm() {
        let sha512 = Digest::parse(&format!("sha512:{}", "0".repeat(128))).unwrap();
        assert_eq!(manifest_digest(b"{}", None).algorithm(), Algorithm::Sha256);
        assert_eq!(
            manifest_digest(b"{}", Some(&sha512)).algorithm(),
            Algorithm::Sha512
        );
    }

    #[test]
    fn media_type_syntax() {
        assert!(is_valid_media_type(
            "application/vnd.oci.image.manifest.v1+json"
        ));
        assert!(is_valid_media_type(
            "application/vnd.cncf.helm.config.v1+json"
        ));
        for bad in [
            "",
            "application",
            "application/",
            "/json",
            "a b/c",
            "application/json; x=y",
        ] {
            assert!(!is_valid_media_type(bad), "{bad:?}");
        }
    }
}
