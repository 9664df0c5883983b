//! What the dashboard reads through the registry, against the real embedded backends: a
//! pushed image taken apart, an index's platforms, referrers by kind (the referrers API and
//! cosign's tags), the search over labels with the caller's visibility, and pull counts
//! written in batches.

use std::sync::Arc;

use berth_meta::{Origin, SqliteStore};
use berth_oci::{Algorithm, Digest, Reference, RepositoryName, Tag};
use berth_registry::inspect::Kind;
use berth_registry::pull_stats::PullStats;
use berth_registry::search::Search;
use berth_registry::{Registry, Settings, TagSort};
use berth_storage::{ByteStream, FilesystemStore};
use bytes::Bytes;
use futures_util::stream;
use serde_json::json;

const IMAGE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

struct Fixture {
    registry: Registry,
    meta: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let blobs = FilesystemStore::open(dir.path()).unwrap();
    let meta = Arc::new(
        SqliteStore::open(&dir.path().join("berth.db"))
            .await
            .unwrap(),
    );
    let registry = Registry::new(Arc::new(blobs), meta.clone(), Settings::default());
    Fixture {
        registry,
        meta,
        _dir: dir,
    }
}

fn origin() -> Arc<Origin> {
    Arc::new(Origin::system("inspect-tests"))
}

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

async fn blob(registry: &Registry, repository: &RepositoryName, data: &[u8]) -> serde_json::Value {
    let digest = Digest::of(Algorithm::Sha256, data);
    let body: ByteStream = Box::pin(stream::iter([Ok(Bytes::copy_from_slice(data))]));
    registry
        .upload_blob(
            &origin(),
            repository,
            &digest,
            Some(data.len() as u64),
            body,
        )
        .await
        .unwrap();
    json!({"digest": digest.as_str(), "size": data.len()})
}

async fn put(
    registry: &Registry,
    repository: &RepositoryName,
    reference: &str,
    media_type: &str,
    manifest: serde_json::Value,
) -> Digest {
    let reference = Reference::parse(reference).unwrap();
    registry
        .put_manifest(
            &origin(),
            repository,
            &reference,
            Some(media_type),
            Bytes::from(serde_json::to_vec(&manifest).unwrap()),
        )
        .await
        .unwrap()
        .digest
}

/// An image with `labels`, for `arch`, tagged `tag`.
async fn image(
    registry: &Registry,
    repository: &RepositoryName,
    tag: &str,
    arch: &str,
    labels: serde_json::Value,
) -> Digest {
    let config = serde_json::to_vec(&json!({
        "architecture": arch, "os": "linux",
        "config": {"Entrypoint": ["/app"], "WorkingDir": "/srv", "Labels": labels},
        "history": [{"created_by": "COPY app /app"}, {"created_by": "ENV X=1", "empty_layer": true}],
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap();
    let mut config_descriptor = blob(registry, repository, &config).await;
    config_descriptor["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
    let mut layer = blob(
        registry,
        repository,
        format!("layer {tag} {arch}").as_bytes(),
    )
    .await;
    layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar".into();
    put(
        registry,
        repository,
        tag,
        IMAGE,
        json!({"schemaVersion": 2, "mediaType": IMAGE, "config": config_descriptor, "layers": [layer]}),
    )
    .await
}

#[tokio::test]
async fn an_image_is_taken_apart_and_described() {
    let f = fixture().await;
    let r = repo("team/web");
    let digest = image(
        &f.registry,
        &r,
        "v1",
        "arm64",
        json!({"org.opencontainers.image.description": "The web front", "vendor": "Quuxcorp"}),
    )
    .await;
    let seen = f
        .registry
        .inspect(&r, &Reference::Tag(Tag::parse("v1").unwrap()))
        .await
        .unwrap();
    assert_eq!(seen.digest, digest);
    assert_eq!(seen.kind, Kind::Image);
    assert_eq!(seen.tags, ["v1"]);
    assert_eq!(seen.platforms, ["linux/arm64"]);
    assert_eq!(seen.description.as_deref(), Some("The web front"));
    let config = seen.image.expect("the config is read");
    assert_eq!(
        config.config.entrypoint.as_deref(),
        Some(&["/app".to_string()][..])
    );
    assert_eq!(config.history.len(), 2);
    assert!(config.history[1].empty_layer);
    assert_eq!(seen.parts.layers.len(), 1);
    assert!(seen.total_size > seen.content.len() as u64);

    let page = f.registry.tag_page(&r, TagSort::Name, 0, 10).await.unwrap();
    assert_eq!(page.rows[0].platforms, ["linux/arm64"]);
    assert_eq!(page.rows[0].size, seen.total_size);
    assert!(
        f.registry
            .tag_page(&repo("team/none"), TagSort::Name, 0, 10)
            .await
            .is_err(),
        "an unknown repository"
    );
}

#[tokio::test]
async fn an_index_lists_its_platforms_and_referrers_are_classified() {
    let f = fixture().await;
    let r = repo("team/multi");
    let amd = image(&f.registry, &r, "amd", "amd64", json!({})).await;
    let arm = image(&f.registry, &r, "arm", "arm64", json!({})).await;
    let size = |d: &Digest| {
        let meta = f.meta.clone();
        let d = d.clone();
        let r = r.clone();
        async move {
            use berth_meta::MetadataStore;
            meta.manifest(&r, &Reference::Digest(d))
                .await
                .unwrap()
                .unwrap()
                .content
                .len()
        }
    };
    let index = put(
        &f.registry,
        &r,
        "latest",
        INDEX,
        json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
            {"mediaType": IMAGE, "digest": amd.as_str(), "size": size(&amd).await, "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": IMAGE, "digest": arm.as_str(), "size": size(&arm).await, "platform": {"os": "linux", "architecture": "arm64"}},
        ]}),
    )
    .await;
    let seen = f
        .registry
        .inspect(&r, &Reference::Digest(index.clone()))
        .await
        .unwrap();
    assert_eq!(seen.kind, Kind::Index);
    assert_eq!(seen.platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(seen.children.len(), 2);
    assert!(
        seen.children
            .iter()
            .all(|(_, kind)| *kind == Some(Kind::Image))
    );

    // A signature by the referrers API, an SBOM by cosign's tag convention.
    let empty = blob(&f.registry, &r, b"{}").await;
    let subject = json!({"mediaType": INDEX, "digest": index.as_str(), "size": seen.content.len()});
    let mut config = empty.clone();
    config["mediaType"] = "application/vnd.oci.empty.v1+json".into();
    let mut layer = blob(&f.registry, &r, b"signature bytes").await;
    layer["mediaType"] = "application/vnd.dev.cosign.simplesigning.v1+json".into();
    put(
        &f.registry,
        &r,
        "signature",
        IMAGE,
        json!({"schemaVersion": 2, "mediaType": IMAGE,
               "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
               "config": config, "layers": [layer], "subject": subject}),
    )
    .await;
    let mut sbom_layer = blob(&f.registry, &r, b"{\"spdxVersion\":\"SPDX-2.3\"}").await;
    sbom_layer["mediaType"] = "application/spdx+json".into();
    let cosign_tag = format!("sha256-{}.sbom", index.hex());
    put(
        &f.registry,
        &r,
        &cosign_tag,
        IMAGE,
        json!({"schemaVersion": 2, "mediaType": IMAGE, "config": config, "layers": [sbom_layer]}),
    )
    .await;
    let referrers = f.registry.referrer_views(&r, &index).await.unwrap();
    let kinds: Vec<Kind> = referrers.iter().map(|v| v.kind).collect();
    assert_eq!(kinds, [Kind::Signature, Kind::Sbom]);
    assert_eq!(referrers[1].tag.as_deref(), Some(cosign_tag.as_str()));

    // The search filter "signed" finds the index's tag.
    let found = f
        .registry
        .search(
            &Search {
                signed: true,
                ..Search::default()
            },
            &|_| true,
        )
        .await
        .unwrap();
    assert_eq!(found.hits.len(), 1);
    assert_eq!(found.hits[0].tags, ["latest"]);
}

#[tokio::test]
async fn search_ranks_groups_and_hides_what_the_caller_may_not_pull() {
    let f = fixture().await;
    image(
        &f.registry,
        &repo("shop/storefront"),
        "2024.11",
        "amd64",
        json!({"vendor": "Quuxcorp"}),
    )
    .await;
    image(
        &f.registry,
        &repo("shop/storefront"),
        "2024.12",
        "amd64",
        json!({"vendor": "Quuxcorp"}),
    )
    .await;
    image(
        &f.registry,
        &repo("secret/storefront"),
        "v1",
        "amd64",
        json!({"vendor": "Quuxcorp"}),
    )
    .await;
    let search = |text: &str| Search {
        text: text.into(),
        ..Search::default()
    };
    let found = f
        .registry
        .search(&search("Quuxcorp"), &|name| !name.starts_with("secret/"))
        .await
        .unwrap();
    assert_eq!(found.hits.len(), 1, "{found:?}");
    assert_eq!(found.hits[0].repository, "shop/storefront");
    assert_eq!(found.hits[0].tags.len(), 2);
    let by_name = f
        .registry
        .search(&search("storefront"), &|_| true)
        .await
        .unwrap();
    assert_eq!(by_name.hits.len(), 2);
    assert!(
        f.registry
            .search(&search(""), &|_| true)
            .await
            .unwrap()
            .hits
            .is_empty()
    );
}

#[tokio::test]
async fn pulls_are_counted_in_batches() {
    let f = fixture().await;
    let r = repo("team/pulled");
    let digest = image(&f.registry, &r, "v1", "amd64", json!({})).await;
    let stats = PullStats::new(f.meta.clone());
    let tag = Tag::parse("v1").unwrap();
    for _ in 0..3 {
        assert!(!stats.record(&r, &digest, Some(&tag)));
    }
    stats.record(&r, &digest, None);
    assert_eq!(stats.flush().await.unwrap(), 4);
    assert_eq!(stats.flush().await.unwrap(), 0, "nothing pending");
    let row = &f
        .registry
        .tag_page(&r, TagSort::Name, 0, 1)
        .await
        .unwrap()
        .rows[0];
    assert_eq!(row.pulls, 3);
    assert!(row.last_pulled_at.is_some());
    let seen = f
        .registry
        .inspect(&r, &Reference::Digest(digest))
        .await
        .unwrap();
    assert_eq!(seen.pulls, 4);
    let activity = f.registry.activity(&r, 7).await.unwrap();
    assert_eq!(activity.len(), 7);
    let today = activity.last().unwrap();
    assert_eq!((today.pulls, today.pushes), (4, 1));
}
