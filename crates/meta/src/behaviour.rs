//! The behaviour every [`MetadataStore`] must have, as one suite that each implementation's
//! tests run against a fresh, empty store.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use berth_oci::{Algorithm, Descriptor, Digest, Reference, RepositoryName, Tag, UploadId};

use crate::events::Origin;
use crate::{
    BrokenReference, ManifestSource, MetaError, MetadataStore, NewManifest, ReferenceKind,
    UploadSession,
};

/// Runs every check; each uses its own repository names, so they share one store.
pub async fn run_all(store: &dyn MetadataStore) {
    store.check().await.expect("check");
    blobs_are_per_repository(store).await;
    mounts_copy_links_between_repositories(store).await;
    manifests_require_their_references(store).await;
    manifests_and_tags(store).await;
    index_children_must_be_manifests_of_the_repository(store).await;
    referrers_are_listed_by_subject(store).await;
    listing_is_lexical_and_paginated(store).await;
    upload_sessions_advance_only_from_where_they_are(store).await;
}

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

fn digest_of(content: &str) -> Digest {
    Digest::of(Algorithm::Sha256, content.as_bytes())
}

fn descriptor(content: &str, media_type: &str) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest: digest_of(content),
        size: content.len() as u64,
        urls: None,
        annotations: None,
        artifact_type: None,
        platform: None,
    }
}

fn manifest<'a>(
    repository: &'a RepositoryName,
    digest: &'a Digest,
    content: &'a [u8],
    blobs: &'a [Descriptor],
) -> NewManifest<'a> {
    NewManifest {
        repository,
        digest,
        media_type: berth_oci::manifest::OCI_IMAGE_MANIFEST,
        content,
        blobs,
        children: &[],
        subject: None,
        artifact_type: None,
        annotations: None,
        tag: None,
        origin: origin_ref(),
        source: ManifestSource::Push,
    }
}

pub(crate) fn origin() -> Arc<Origin> {
    Arc::clone(origin_ref())
}

/// One origin for the whole suite, borrowed by the manifests it builds.
pub(crate) fn origin_ref() -> &'static Arc<Origin> {
    static ORIGIN: OnceLock<Arc<Origin>> = OnceLock::new();
    ORIGIN.get_or_init(|| Arc::new(Origin::system("behaviour-suite")))
}

async fn blobs_are_per_repository(store: &dyn MetadataStore) {
    let (a, b) = (repo("blobs/a"), repo("blobs/b"));
    let digest = digest_of("layer");
    assert_eq!(store.blob_size(&a, &digest).await.unwrap(), None);
    store.link_blob(&a, &digest, 5, &origin()).await.unwrap();
    store
        .link_blob(&a, &digest, 5, &origin())
        .await
        .expect("linking twice is harmless");
    assert_eq!(store.blob_size(&a, &digest).await.unwrap(), Some(5));
    assert_eq!(
        store.blob_size(&b, &digest).await.unwrap(),
        None,
        "knowing the digest is not enough"
    );
    assert!(store.repository_exists(&a).await.unwrap());
    assert!(!store.repository_exists(&b).await.unwrap());

    assert!(
        store
            .unlink_blob(&a, &digest, &origin())
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .unlink_blob(&a, &digest, &origin())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.blob_size(&a, &digest).await.unwrap(), None);
}

async fn mounts_copy_links_between_repositories(store: &dyn MetadataStore) {
    let (source, target, empty) = (
        repo("mount/source"),
        repo("mount/target"),
        repo("mount/empty"),
    );
    let digest = digest_of("mounted");
    store
        .link_blob(&source, &digest, 7, &origin())
        .await
        .unwrap();

    assert_eq!(
        store
            .mount_blob(&target, &digest, &empty, &origin())
            .await
            .unwrap(),
        None
    );
    assert!(
        !store.repository_exists(&target).await.unwrap(),
        "a failed mount creates nothing"
    );

    assert_eq!(
        store
            .mount_blob(&target, &digest, &source, &origin())
            .await
            .unwrap()
            .map(|(size, _)| size),
        Some(7)
    );
    assert_eq!(store.blob_size(&target, &digest).await.unwrap(), Some(7));
    assert_eq!(
        store.repositories_with_blob(&digest, 10).await.unwrap(),
        vec![source.clone(), target.clone()]
    );
    assert_eq!(
        store
            .repositories_with_blob(&digest, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .repositories_with_blob(&digest_of("nowhere"), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn manifests_require_their_references(store: &dyn MetadataStore) {
    let r = repo("refs/app");
    let config = descriptor("config", "application/vnd.oci.image.config.v1+json");
    let layer = descriptor("layer-bytes", "application/vnd.oci.image.layer.v1.tar+gzip");
    let blobs = [config.clone(), layer.clone()];
    let content = b"{\"manifest\":1}";
    let digest = Digest::of(Algorithm::Sha256, content);

    store
        .link_blob(&r, &config.digest, config.size, &origin())
        .await
        .unwrap();
    let err = store
        .put_manifest(manifest(&r, &digest, content, &blobs))
        .await
        .unwrap_err();
    let MetaError::BrokenReferences(broken) = err else {
        panic!("expected broken references, got {err}")
    };
    assert_eq!(
        broken,
        vec![BrokenReference::Missing {
            kind: ReferenceKind::Blob,
            digest: layer.digest.clone()
        }]
    );

    // Present with another size than declared.
    store
        .link_blob(&r, &layer.digest, layer.size + 1, &origin())
        .await
        .unwrap();
    let err = store
        .put_manifest(manifest(&r, &digest, content, &blobs))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MetaError::BrokenReferences(b) if matches!(b[..], [BrokenReference::WrongSize { declared, stored, .. }] if declared + 1 == stored)),
        "{err:?}"
    );
    assert_eq!(
        store
            .manifest(&r, &Reference::Digest(digest.clone()))
            .await
            .unwrap(),
        None
    );

    // A blob of another repository does not count.
    let other = repo("refs/other");
    let foreign = descriptor("foreign-layer", "application/vnd.oci.image.layer.v1.tar");
    store
        .link_blob(&other, &foreign.digest, foreign.size, &origin())
        .await
        .unwrap();
    let with_foreign = [config.clone(), foreign];
    let err = store
        .put_manifest(manifest(&r, &digest, content, &with_foreign))
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::BrokenReferences(_)));
    let fresh = repo("refs/fresh");
    let err = store
        .put_manifest(manifest(&fresh, &digest, content, &with_foreign))
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::BrokenReferences(_)));
    assert!(
        !store.repository_exists(&fresh).await.unwrap(),
        "a refused manifest creates nothing"
    );
}

async fn manifests_and_tags(store: &dyn MetadataStore) {
    let r = repo("tags/app");
    let config = descriptor("cfg", "application/vnd.oci.image.config.v1+json");
    store
        .link_blob(&r, &config.digest, config.size, &origin())
        .await
        .unwrap();
    let blobs = [config];
    let v1 = b"{\"v\":1}";
    let v2 = b"{\"v\":2}";
    let (d1, d2) = (
        Digest::of(Algorithm::Sha256, v1),
        Digest::of(Algorithm::Sha256, v2),
    );
    let latest = Tag::parse("latest").unwrap();
    let stable = Tag::parse("stable").unwrap();

    store
        .put_manifest(NewManifest {
            tag: Some(&latest),
            ..manifest(&r, &d1, v1, &blobs)
        })
        .await
        .unwrap();
    store
        .put_manifest(NewManifest {
            tag: Some(&stable),
            ..manifest(&r, &d1, v1, &blobs)
        })
        .await
        .expect("re-pushing a manifest under another tag");
    let by_tag = store
        .manifest(&r, &Reference::Tag(latest.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_tag.digest, d1);
    assert_eq!(&by_tag.content[..], v1);
    assert_eq!(by_tag.media_type, berth_oci::manifest::OCI_IMAGE_MANIFEST);
    let by_digest = store
        .manifest(&r, &Reference::Digest(d1.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_digest, by_tag);

    // Moving a tag.
    store
        .put_manifest(NewManifest {
            tag: Some(&latest),
            ..manifest(&r, &d2, v2, &blobs)
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .manifest(&r, &Reference::Tag(latest.clone()))
            .await
            .unwrap()
            .unwrap()
            .digest,
        d2
    );
    assert_eq!(
        store.list_tags(&r, None, 100).await.unwrap(),
        vec!["latest", "stable"]
    );

    // Deleting a tag keeps the manifest; deleting a manifest removes its tags.
    assert!(
        store
            .delete_tag(&r, &latest, None, &origin())
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .delete_tag(&r, &latest, None, &origin())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .manifest(&r, &Reference::Digest(d2.clone()))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .delete_manifest(&r, &d1, &origin())
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .delete_manifest(&r, &d1, &origin())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.manifest(&r, &Reference::Tag(stable)).await.unwrap(),
        None
    );
    assert!(store.list_tags(&r, None, 100).await.unwrap().is_empty());
    assert_eq!(
        store
            .manifest(&repo("tags/unknown"), &Reference::Digest(d2))
            .await
            .unwrap(),
        None
    );
}

async fn index_children_must_be_manifests_of_the_repository(store: &dyn MetadataStore) {
    let r = repo("index/app");
    let config = descriptor("index-cfg", "application/vnd.oci.image.config.v1+json");
    store
        .link_blob(&r, &config.digest, config.size, &origin())
        .await
        .unwrap();
    let child = b"{\"child\":true}";
    let child_digest = Digest::of(Algorithm::Sha256, child);
    let child_descriptor = Descriptor {
        media_type: berth_oci::manifest::OCI_IMAGE_MANIFEST.into(),
        digest: child_digest.clone(),
        size: child.len() as u64,
        urls: None,
        annotations: None,
        artifact_type: None,
        platform: None,
    };
    let index = b"{\"index\":true}";
    let index_digest = Digest::of(Algorithm::Sha256, index);
    let children = [child_descriptor];
    let new_index = || NewManifest {
        repository: &r,
        digest: &index_digest,
        media_type: berth_oci::manifest::OCI_IMAGE_INDEX,
        content: index,
        blobs: &[],
        children: &children,
        subject: None,
        artifact_type: None,
        annotations: None,
        tag: None,
        origin: origin_ref(),
        source: ManifestSource::Push,
    };
    let err = store.put_manifest(new_index()).await.unwrap_err();
    assert!(
        matches!(&err, MetaError::BrokenReferences(b) if matches!(&b[..], [BrokenReference::Missing { kind: ReferenceKind::Manifest, .. }]))
    );
    let blobs = [config];
    store
        .put_manifest(manifest(&r, &child_digest, child, &blobs))
        .await
        .unwrap();
    store.put_manifest(new_index()).await.unwrap();
}

async fn referrers_are_listed_by_subject(store: &dyn MetadataStore) {
    let r = repo("referrers/app");
    let config = descriptor("{}", "application/vnd.oci.empty.v1+json");
    store
        .link_blob(&r, &config.digest, config.size, &origin())
        .await
        .unwrap();
    let blobs = [config];
    let subject = digest_of("the subject, which need not exist");
    let mut annotations = BTreeMap::new();
    annotations.insert("org.example.kind".to_string(), "sbom".to_string());
    let (sbom, sig) = (b"{\"sbom\":1}", b"{\"sig\":1}");
    let (sbom_digest, sig_digest) = (
        Digest::of(Algorithm::Sha256, sbom),
        Digest::of(Algorithm::Sha256, sig),
    );
    store
        .put_manifest(NewManifest {
            subject: Some(&subject),
            artifact_type: Some("application/vnd.example.sbom"),
            annotations: Some(&annotations),
            ..manifest(&r, &sbom_digest, sbom, &blobs)
        })
        .await
        .unwrap();
    store
        .put_manifest(NewManifest {
            subject: Some(&subject),
            artifact_type: Some("application/vnd.example.signature"),
            ..manifest(&r, &sig_digest, sig, &blobs)
        })
        .await
        .unwrap();

    let all = store.referrers(&r, &subject, None).await.unwrap();
    assert_eq!(
        all.iter().map(|x| x.digest.clone()).collect::<Vec<_>>(),
        vec![sbom_digest.clone(), sig_digest]
    );
    assert_eq!(all[0].annotations.as_ref(), Some(&annotations));
    assert_eq!(all[0].size, sbom.len() as u64);
    let filtered = store
        .referrers(&r, &subject, Some("application/vnd.example.sbom"))
        .await
        .unwrap();
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0].digest, sbom_digest);
    assert!(
        store
            .referrers(&r, &digest_of("other"), None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .referrers(&repo("referrers/none"), &subject, None)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn listing_is_lexical_and_paginated(store: &dyn MetadataStore) {
    let config = descriptor("list-cfg", "application/vnd.oci.image.config.v1+json");
    for name in ["zlist/b", "zlist/a", "zlist/a-b", "zlist/a/b", "zlist/c"] {
        store
            .link_blob(&repo(name), &config.digest, config.size, &origin())
            .await
            .unwrap();
    }
    let all = store.list_repositories(Some("zlist"), 100).await.unwrap();
    // Byte order: '-' (0x2d) < '/' (0x2f) < letters.
    assert_eq!(
        all,
        vec!["zlist/a", "zlist/a-b", "zlist/a/b", "zlist/b", "zlist/c"]
    );
    assert_eq!(
        store.list_repositories(Some("zlist/a-b"), 2).await.unwrap(),
        vec!["zlist/a/b", "zlist/b"]
    );
    assert!(
        store
            .list_repositories(Some("zlist/c"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list_repositories(None, 0).await.unwrap().is_empty());

    let r = repo("zlist/a");
    let blobs = [config];
    for (i, tag) in ["v10", "v2", "V1", "latest", "_x", "v1.0"]
        .iter()
        .enumerate()
    {
        let content = format!("{{\"n\":{i}}}");
        let digest = Digest::of(Algorithm::Sha256, content.as_bytes());
        let tag = Tag::parse(tag).unwrap();
        store
            .put_manifest(NewManifest {
                tag: Some(&tag),
                ..manifest(&r, &digest, content.as_bytes(), &blobs)
            })
            .await
            .unwrap();
    }
    assert_eq!(
        store.list_tags(&r, None, 100).await.unwrap(),
        vec!["V1", "_x", "latest", "v1.0", "v10", "v2"]
    );
    assert_eq!(
        store.list_tags(&r, Some("latest"), 2).await.unwrap(),
        vec!["v1.0", "v10"]
    );
    assert!(
        store
            .list_tags(&repo("zlist/none"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn upload_sessions_advance_only_from_where_they_are(store: &dyn MetadataStore) {
    let id = UploadId::random();
    let session = UploadSession {
        id,
        repository: repo("uploads/app"),
        size: 0,
        hash_state: vec![1, 2, 3],
        created_at: 1_000,
        updated_at: 1_000,
    };
    let before = store.usage().await.unwrap();
    store.create_upload(&session).await.unwrap();
    assert_eq!(store.upload(id).await.unwrap(), Some(session.clone()));
    let usage = store.usage().await.unwrap();
    assert_eq!(usage.uploads_in_progress, before.uploads_in_progress + 1);
    assert!(!usage.pools.is_empty(), "{usage:?}");
    for pool in &usage.pools {
        assert!(
            pool.max >= 1 && pool.idle <= pool.open && pool.open <= pool.max,
            "{pool:?}"
        );
    }
    assert!(store.upload(UploadId::random()).await.unwrap().is_none());

    assert!(store.advance_upload(id, 0, 10, &[4, 5]).await.unwrap());
    assert!(
        !store.advance_upload(id, 0, 20, &[6]).await.unwrap(),
        "stale offset"
    );
    let advanced = store.upload(id).await.unwrap().unwrap();
    assert_eq!(
        (advanced.size, advanced.hash_state.as_slice()),
        (10, &[4u8, 5][..])
    );
    assert!(advanced.updated_at > 1_000);

    let old = UploadSession {
        id: UploadId::random(),
        ..session.clone()
    };
    store.create_upload(&old).await.unwrap();
    let stale = store.stale_uploads(2_000).await.unwrap();
    assert!(stale.contains(&old.id) && !stale.contains(&id), "{stale:?}");

    assert!(store.delete_upload(id).await.unwrap());
    assert!(!store.delete_upload(id).await.unwrap());
    assert!(!store.advance_upload(id, 10, 20, &[]).await.unwrap());
    assert!(store.delete_upload(old.id).await.unwrap());

    // The upload lock excludes a second writer until released.
    let guard = store.lock_upload(id).await.unwrap();
    let second =
        tokio::time::timeout(std::time::Duration::from_millis(50), store.lock_upload(id)).await;
    assert!(second.is_err(), "a second writer must wait");
    drop(guard);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), store.lock_upload(id))
        .await
        .expect("released");
}

/// The behaviour every [`crate::IdentityStore`] must have, on a fresh store.
pub async fn run_identity(store: &dyn crate::IdentityStore) {
    use crate::identity::{AccessToken, AuditEvent, TokenKind, TokenOwner, TokenScope};

    // Users.
    assert_eq!(store.count_users().await.unwrap(), 0);
    store
        .create_user(
            "alice",
            Some("$argon2id$hash"),
            Some("alice@example.com"),
            false,
        )
        .await
        .unwrap();
    store.create_user("bob", None, None, true).await.unwrap();
    assert!(matches!(
        store.create_user("alice", None, None, false).await,
        Err(MetaError::Conflict(_))
    ));
    let alice = store.user("alice").await.unwrap().unwrap();
    assert_eq!(
        (alice.email.as_deref(), alice.admin, alice.disabled),
        (Some("alice@example.com"), false, false)
    );
    assert_eq!(alice.password_hash.as_deref(), Some("$argon2id$hash"));
    assert!(store.user("nobody").await.unwrap().is_none());
    assert_eq!(store.count_users().await.unwrap(), 2);
    assert!(store.set_password("alice", "$argon2id$new").await.unwrap());
    assert!(!store.set_password("nobody", "x").await.unwrap());
    assert!(store.set_user_disabled("alice", true).await.unwrap());
    assert!(store.set_user_admin("alice", true).await.unwrap());
    let alice = store.user("alice").await.unwrap().unwrap();
    assert_eq!(
        (alice.password_hash.as_deref(), alice.disabled, alice.admin),
        (Some("$argon2id$new"), true, true)
    );
    let names: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, vec!["alice", "bob"]);

    // Teams.
    store.create_team("devs").await.unwrap();
    store.create_team("ops").await.unwrap();
    assert!(matches!(
        store.create_team("devs").await,
        Err(MetaError::Conflict(_))
    ));
    assert!(store.add_team_member("devs", "alice").await.unwrap());
    assert!(
        store.add_team_member("devs", "alice").await.unwrap(),
        "adding twice is fine"
    );
    assert!(store.add_team_member("devs", "bob").await.unwrap());
    assert!(store.add_team_member("ops", "alice").await.unwrap());
    assert!(!store.add_team_member("devs", "nobody").await.unwrap());
    assert!(!store.add_team_member("nope", "alice").await.unwrap());
    assert_eq!(
        store.user_teams("alice").await.unwrap(),
        vec!["devs", "ops"]
    );
    let teams = store.list_teams().await.unwrap();
    assert_eq!(teams[0].members, vec!["alice", "bob"]);
    assert_eq!(teams[1].members, vec!["alice"]);
    assert!(store.remove_team_member("devs", "bob").await.unwrap());
    assert!(!store.remove_team_member("devs", "bob").await.unwrap());
    assert!(store.delete_team("ops").await.unwrap());
    assert_eq!(store.user_teams("alice").await.unwrap(), vec!["devs"]);

    // Service accounts.
    store.create_service_account("ci", "builds").await.unwrap();
    assert!(matches!(
        store.create_service_account("ci", "").await,
        Err(MetaError::Conflict(_))
    ));
    assert_eq!(
        store
            .service_account("ci")
            .await
            .unwrap()
            .unwrap()
            .description,
        "builds"
    );
    assert!(
        store
            .set_service_account_disabled("ci", true)
            .await
            .unwrap()
    );
    assert!(store.service_account("ci").await.unwrap().unwrap().disabled);
    assert_eq!(store.list_service_accounts().await.unwrap().len(), 1);

    // Tokens.
    let token = |id: &str, owner: TokenOwner, kind: TokenKind| AccessToken {
        id: id.into(),
        kind,
        owner,
        name: format!("token {id}"),
        secret_hash: format!("hash-{id}"),
        scopes: vec![TokenScope {
            pattern: "team/**".into(),
            actions: "pull".into(),
        }],
        expires_at: Some(9_999_999_999_999),
        created_at: 1_000,
        last_used_at: None,
        revoked_at: None,
    };
    store
        .create_token(&token(
            "a1",
            TokenOwner::User("alice".into()),
            TokenKind::Access,
        ))
        .await
        .unwrap();
    store
        .create_token(&token(
            "r1",
            TokenOwner::User("alice".into()),
            TokenKind::Refresh,
        ))
        .await
        .unwrap();
    store
        .create_token(&token(
            "c1",
            TokenOwner::ServiceAccount("ci".into()),
            TokenKind::Access,
        ))
        .await
        .unwrap();
    let orphan = store
        .create_token(&token(
            "x1",
            TokenOwner::User("nobody".into()),
            TokenKind::Access,
        ))
        .await;
    assert!(matches!(orphan, Err(MetaError::Conflict(_))), "{orphan:?}");
    assert!(matches!(
        store
            .create_token(&token(
                "a1",
                TokenOwner::User("bob".into()),
                TokenKind::Access
            ))
            .await,
        Err(MetaError::Conflict(_))
    ));
    let a1 = store.token("a1").await.unwrap().unwrap();
    assert_eq!(
        a1,
        token("a1", TokenOwner::User("alice".into()), TokenKind::Access)
    );
    assert_eq!(
        store.token("c1").await.unwrap().unwrap().owner,
        TokenOwner::ServiceAccount("ci".into())
    );
    assert_eq!(store.list_tokens(None).await.unwrap().len(), 3);
    assert_eq!(
        store
            .list_tokens(Some(&TokenOwner::User("alice".into())))
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store
            .list_tokens(Some(&TokenOwner::ServiceAccount("ci".into())))
            .await
            .unwrap()
            .len(),
        1
    );
    store.touch_token("a1", 5_000).await.unwrap();
    assert!(store.revoke_token("a1", 6_000).await.unwrap());
    assert!(
        !store.revoke_token("a1", 7_000).await.unwrap(),
        "revoked once"
    );
    let a1 = store.token("a1").await.unwrap().unwrap();
    assert_eq!((a1.last_used_at, a1.revoked_at), (Some(5_000), Some(6_000)));
    // Deleting the owner deletes the tokens.
    assert!(store.delete_service_account("ci").await.unwrap());
    assert!(store.token("c1").await.unwrap().is_none());
    assert!(store.delete_user("alice").await.unwrap());
    assert!(!store.delete_user("alice").await.unwrap());
    assert!(store.token("r1").await.unwrap().is_none());
    assert!(store.list_teams().await.unwrap()[0].members.is_empty());

    // Policy rules.
    let first = store
        .add_rule("team:devs", "team/**", "pull,push")
        .await
        .unwrap();
    let second = store
        .add_rule("anonymous", "*/public-*", "pull")
        .await
        .unwrap();
    let rules = store.list_rules().await.unwrap();
    assert_eq!(
        rules.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![first, second]
    );
    assert_eq!(
        (
            rules[0].subject.as_str(),
            rules[0].pattern.as_str(),
            rules[0].actions.as_str()
        ),
        ("team:devs", "team/**", "pull,push")
    );
    assert!(store.remove_rule(first).await.unwrap());
    assert!(!store.remove_rule(first).await.unwrap());

    // The audit log.
    let event = |at: i64, outcome: &str| AuditEvent {
        at,
        actor: "user:bob".into(),
        action: "pull".into(),
        target: "team/app".into(),
        client: "10.0.0.1".into(),
        outcome: outcome.into(),
        detail: String::new(),
        count: 1,
    };
    store
        .record_audit(&[
            event(1_000, "allowed"),
            event(2_000, "denied"),
            event(3_000, "allowed"),
        ])
        .await
        .unwrap();
    let newest = store.list_audit(2, None).await.unwrap();
    assert_eq!(
        newest.iter().map(|(_, e)| e.at).collect::<Vec<_>>(),
        vec![3_000, 2_000]
    );
    let older = store.list_audit(10, Some(newest[1].0)).await.unwrap();
    assert_eq!(
        older.iter().map(|(_, e)| e.at).collect::<Vec<_>>(),
        vec![1_000]
    );
    assert_eq!(store.prune_audit(2_500).await.unwrap(), 2);
    assert_eq!(store.list_audit(10, None).await.unwrap().len(), 1);

    // The signing key: the first stored wins.
    let (key, certificate) = store
        .signing_key_or_insert("key one", "cert one")
        .await
        .unwrap();
    assert_eq!(
        (key.as_str(), certificate.as_str()),
        ("key one", "cert one")
    );
    let (key, _) = store
        .signing_key_or_insert("key two", "cert two")
        .await
        .unwrap();
    assert_eq!(key, "key one");

    // Sessions: belong to an existing user, end with the user, expire by pruning.
    let session = |id: &str, user: &str, expires_at: i64| crate::identity::Session {
        id: id.into(),
        user: user.into(),
        secret_hash: format!("secret of {id}"),
        csrf_hash: format!("csrf of {id}"),
        client: "10.0.0.1".into(),
        created_at: 1_000,
        expires_at,
        last_seen_at: None,
        user_agent: Some(format!("browser of {id}")),
        second_factor: id == "s2",
    };
    store.create_user("sam", None, None, false).await.unwrap();
    assert!(matches!(
        store.create_session(&session("s0", "nobody", 5_000)).await,
        Err(MetaError::Conflict(_))
    ));
    store
        .create_session(&session("s1", "sam", 5_000))
        .await
        .unwrap();
    store
        .create_session(&session("s2", "sam", 9_000))
        .await
        .unwrap();
    store
        .create_session(&session("s3", "sam", 9_000))
        .await
        .unwrap();
    assert_eq!(
        store.session("s1").await.unwrap(),
        Some(session("s1", "sam", 5_000))
    );
    assert_eq!(
        store.session("s2").await.unwrap(),
        Some(session("s2", "sam", 9_000)),
        "whether it began with a second factor is kept"
    );
    assert!(store.session("s0").await.unwrap().is_none());
    // A user's live sessions, with when each was last used.
    store.touch_session("s2", 4_000).await.unwrap();
    let live = store.user_sessions("sam", 6_000).await.unwrap();
    let ids: Vec<&str> = live.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["s2", "s3"], "expired ones are left out");
    assert_eq!(live[0].last_seen_at, Some(4_000));
    assert_eq!(live[0].user_agent.as_deref(), Some("browser of s2"));
    assert!(store.user_sessions("nobody", 0).await.unwrap().is_empty());
    assert_eq!(store.prune_sessions(6_000).await.unwrap(), 1);
    assert!(store.session("s1").await.unwrap().is_none());
    assert!(store.delete_session("s2").await.unwrap());
    assert!(!store.delete_session("s2").await.unwrap());
    store
        .create_session(&session("s4", "sam", 9_000))
        .await
        .unwrap();
    assert_eq!(store.delete_user_sessions("sam").await.unwrap(), 2);
    store
        .create_session(&session("s5", "sam", 9_000))
        .await
        .unwrap();
    assert!(store.delete_user("sam").await.unwrap());
    assert!(store.session("s5").await.unwrap().is_none());

    identity_changes_move_the_generation(store).await;
}

/// Every change that can alter access moves the change counter; uses of tokens, new tokens,
/// sessions and audit events do not.
async fn identity_changes_move_the_generation(store: &dyn crate::IdentityStore) {
    use crate::identity::{AccessToken, TokenKind, TokenOwner};

    let generation = || async { store.identity_generation().await.unwrap() };
    let token = AccessToken {
        id: "gen-token".into(),
        kind: TokenKind::Access,
        owner: TokenOwner::User("gen-user".into()),
        name: "t".into(),
        secret_hash: "h".into(),
        scopes: vec![],
        expires_at: None,
        created_at: 1,
        last_used_at: None,
        revoked_at: None,
    };
    let mut last = generation().await;
    let mut moved = |now: i64, what: &str, expected: bool| {
        assert_eq!(now != last, expected, "{what}: {last} -> {now}");
        last = now;
    };
    store
        .create_user("gen-user", None, None, false)
        .await
        .unwrap();
    moved(generation().await, "create user", true);
    store.set_user_admin("gen-user", true).await.unwrap();
    moved(generation().await, "promote", true);
    store.create_team("gen-team").await.unwrap();
    moved(generation().await, "create team", true);
    store.add_team_member("gen-team", "gen-user").await.unwrap();
    moved(generation().await, "add member", true);
    store
        .remove_team_member("gen-team", "gen-user")
        .await
        .unwrap();
    moved(generation().await, "remove member", true);
    store.create_service_account("gen-sa", "").await.unwrap();
    moved(generation().await, "create service account", true);
    store
        .set_service_account_disabled("gen-sa", true)
        .await
        .unwrap();
    moved(generation().await, "disable service account", true);
    let rule = store
        .add_rule("user:gen-user", "a/*", "pull")
        .await
        .unwrap();
    moved(generation().await, "add rule", true);
    store.remove_rule(rule).await.unwrap();
    moved(generation().await, "remove rule", true);
    store.create_token(&token).await.unwrap();
    moved(generation().await, "create token", false);
    store.touch_token("gen-token", 5).await.unwrap();
    moved(generation().await, "use token", false);
    store.revoke_token("gen-token", 6).await.unwrap();
    moved(generation().await, "revoke token", true);
    store.delete_team("gen-team").await.unwrap();
    moved(generation().await, "delete team", true);
    store.delete_service_account("gen-sa").await.unwrap();
    moved(generation().await, "delete service account", true);
    store.delete_user("gen-user").await.unwrap();
    moved(generation().await, "delete user", true);
}
