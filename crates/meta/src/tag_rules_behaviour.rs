//! How tag immutability rules behave in every [`MetadataStore`].

use std::sync::Arc;

use berth_oci::{Algorithm, Digest, Pattern, RepositoryName, Tag, TagPattern};

use crate::tag_rules::Keep;

use crate::events::Origin;
use crate::{ManifestSource, MetaError, MetadataStore, NewManifest};

pub async fn run_tag_rules(store: &dyn MetadataStore) {
    rules_are_added_once_listed_and_removed(store).await;
    a_protected_tag_is_created_and_re_pushed_but_never_moved_or_deleted(store).await;
    a_pull_through_cache_follows_its_upstream_whatever_the_rules(store).await;
    retention_rules_are_stored_as_given(store).await;
    a_tag_is_deleted_only_where_it_was_planned_to_be(store).await;
}

fn origin() -> Arc<Origin> {
    Arc::new(Origin::system("tag-rules-behaviour"))
}

/// Pushes a manifest with no references under `tag`; returns its digest.
async fn push(
    store: &dyn MetadataStore,
    repository: &str,
    tag: &str,
    body: &str,
    source: ManifestSource,
) -> Result<Digest, MetaError> {
    let content = format!("{{\"schemaVersion\":2,\"body\":{body:?}}}");
    let digest = Digest::of(Algorithm::Sha256, content.as_bytes());
    store
        .put_manifest(NewManifest {
            repository: &RepositoryName::parse(repository).unwrap(),
            digest: &digest,
            media_type: berth_oci::manifest::OCI_IMAGE_MANIFEST,
            content: content.as_bytes(),
            blobs: &[],
            children: &[],
            subject: None,
            artifact_type: None,
            annotations: None,
            tag: Some(&Tag::parse(tag).unwrap()),
            origin: &origin(),
            source,
        })
        .await
        .map(|_| digest)
}

async fn rules_are_added_once_listed_and_removed(store: &dyn MetadataStore) {
    let repositories = Pattern::parse("rules/**").unwrap();
    let tags = TagPattern::parse("v*").unwrap();
    let first = store
        .add_immutable_tag_rule(&repositories, &tags, "alice")
        .await
        .unwrap();
    let again = store
        .add_immutable_tag_rule(&repositories, &tags, "bob")
        .await
        .unwrap();
    assert_eq!(first, again, "the same patterns twice are one rule");
    assert_eq!(first.created_by, "alice");
    assert_eq!(first.describe(), format!("#{} (rules/**:v*)", first.id));
    let listed = store.immutable_tag_rules().await.unwrap();
    assert!(listed.contains(&first));
    let removed = store.remove_immutable_tag_rule(first.id).await.unwrap();
    assert_eq!(removed, Some(first.clone()));
    assert_eq!(
        store.remove_immutable_tag_rule(first.id).await.unwrap(),
        None
    );
    assert!(!store.immutable_tag_rules().await.unwrap().contains(&first));
}

async fn a_protected_tag_is_created_and_re_pushed_but_never_moved_or_deleted(
    store: &dyn MetadataStore,
) {
    let rule = store
        .add_immutable_tag_rule(
            &Pattern::parse("frozen/**").unwrap(),
            &TagPattern::parse("release-*").unwrap(),
            "admin",
        )
        .await
        .unwrap();
    let repo = "frozen/app";
    let name = RepositoryName::parse(repo).unwrap();
    let push_ = |tag, body| push(store, repo, tag, body, ManifestSource::Push);
    let one = push_("release-1", "one")
        .await
        .expect("creating a protected tag");
    push_("release-1", "one")
        .await
        .expect("re-pushing the digest it points at");
    match push_("release-1", "two").await {
        Err(MetaError::ImmutableTag { tag, rule: named }) => {
            assert_eq!(tag, "release-1");
            assert_eq!(named, rule.describe());
        }
        other => panic!("moving a protected tag: {other:?}"),
    }
    let release = Tag::parse("release-1").unwrap();
    let current = store
        .manifest(&name, &berth_oci::Reference::Tag(release.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.digest, one, "the refused push changed nothing");
    assert!(matches!(
        store.delete_tag(&name, &release, None, &origin()).await,
        Err(MetaError::ImmutableTag { .. })
    ));
    assert!(
        matches!(
            store.delete_manifest(&name, &one, &origin()).await,
            Err(MetaError::ImmutableTag { .. })
        ),
        "deleting the manifest would delete the tag"
    );

    // Tags the rule does not match move and go as usual.
    push_("latest", "one").await.unwrap();
    push_("latest", "two")
        .await
        .expect("an unprotected tag moves");
    let latest = Tag::parse("latest").unwrap();
    assert!(
        store
            .delete_tag(&name, &latest, None, &origin())
            .await
            .unwrap()
            .is_some()
    );

    // Without the rule the tag moves.
    store.remove_immutable_tag_rule(rule.id).await.unwrap();
    push_("release-1", "two")
        .await
        .expect("moving the tag once the rule is gone");
}

async fn a_pull_through_cache_follows_its_upstream_whatever_the_rules(store: &dyn MetadataStore) {
    let rule = store
        .add_immutable_tag_rule(
            &Pattern::parse("mirror/**").unwrap(),
            &TagPattern::parse("*").unwrap(),
            "admin",
        )
        .await
        .unwrap();
    let cache = |body| {
        push(
            store,
            "mirror/library/alpine",
            "latest",
            body,
            ManifestSource::Cache,
        )
    };
    cache("old").await.unwrap();
    cache("new")
        .await
        .expect("the upstream moved its tag; the cache follows");
    store.remove_immutable_tag_rule(rule.id).await.unwrap();
}

async fn retention_rules_are_stored_as_given(store: &dyn MetadataStore) {
    let keep = Keep {
        keep_last_pushed: Some(10),
        keep_last_pulled: None,
        keep_tags: vec![
            TagPattern::parse("v*").unwrap(),
            TagPattern::parse("stable").unwrap(),
        ],
        keep_tags_regex: vec!["^release-[0-9]+$".into()],
        keep_pushed_within: Some(7 * 86_400_000),
        keep_pulled_within: None,
    };
    let rule = store
        .add_retention_rule(&Pattern::parse("ci/**").unwrap(), &keep, "alice")
        .await
        .unwrap();
    assert_eq!(rule.keep, keep);
    assert_eq!(rule.created_by, "alice");
    assert!(store.retention_rules().await.unwrap().contains(&rule));
    assert_eq!(
        store.remove_retention_rule(rule.id).await.unwrap(),
        Some(rule.clone())
    );
    assert_eq!(store.remove_retention_rule(rule.id).await.unwrap(), None);
}

async fn a_tag_is_deleted_only_where_it_was_planned_to_be(store: &dyn MetadataStore) {
    let repo = "planned/app";
    let name = RepositoryName::parse(repo).unwrap();
    let tag = Tag::parse("nightly").unwrap();
    let old = push(store, repo, "nightly", "old", ManifestSource::Push)
        .await
        .unwrap();
    let new = push(store, repo, "nightly", "new", ManifestSource::Push)
        .await
        .unwrap();
    assert!(
        store
            .delete_tag(&name, &tag, Some(&old), &origin())
            .await
            .unwrap()
            .is_none(),
        "the tag moved since it was planned: it stays"
    );
    assert!(
        store
            .delete_tag(&name, &tag, Some(&new), &origin())
            .await
            .unwrap()
            .is_some()
    );
}
