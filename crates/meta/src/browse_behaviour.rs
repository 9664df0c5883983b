//! The behaviour every engine's [`BrowseStore`] must show: the dashboard's summaries, tag
//! pages, details, search (the same entries found on SQLite and PostgreSQL), pull
//! statistics, activity and storage usage. Run by each engine's tests beside `behaviour`.

use std::sync::{Arc, OnceLock};

use berth_oci::{Algorithm, Descriptor, Digest, RepositoryName, Tag};

use crate::browse::{ManifestDetails, PullRecord, SearchQuery, TagSort};
use crate::events::Origin;
use crate::{ManifestSource, MetadataStore, NewManifest, day_of, now_millis};

/// One origin for the suite's writes.
fn origin() -> &'static Arc<Origin> {
    static ORIGIN: OnceLock<Arc<Origin>> = OnceLock::new();
    ORIGIN.get_or_init(|| Arc::new(Origin::system("browse-behaviour-suite")))
}

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

/// Pushes a one-blob manifest (distinct per `seed`) under `tag`; returns its digest.
async fn push(store: &dyn MetadataStore, repository: &str, tag: &str, seed: &str) -> Digest {
    let repository = repo(repository);
    let blob = format!("blob of {seed}");
    let blob_digest = Digest::of(Algorithm::Sha256, blob.as_bytes());
    store
        .link_blob(&repository, &blob_digest, blob.len() as u64, origin())
        .await
        .unwrap();
    let content = format!("{{\"seed\":\"{seed}\"}}");
    let digest = Digest::of(Algorithm::Sha256, content.as_bytes());
    let tag = Tag::parse(tag).unwrap();
    store
        .put_manifest(NewManifest {
            repository: &repository,
            digest: &digest,
            media_type: berth_oci::manifest::OCI_IMAGE_MANIFEST,
            content: content.as_bytes(),
            blobs: &[Descriptor {
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                digest: blob_digest,
                size: blob.len() as u64,
                urls: None,
                annotations: None,
                artifact_type: None,
                platform: None,
            }],
            children: &[],
            subject: None,
            artifact_type: None,
            annotations: None,
            tag: Some(&tag),
            origin: origin(),
            source: ManifestSource::Push,
        })
        .await
        .unwrap();
    digest
}

fn details(kind: &str, platforms: &[&str], size: u64, words: &str) -> ManifestDetails {
    ManifestDetails {
        kind: kind.into(),
        platforms: platforms.iter().map(|p| p.to_string()).collect(),
        total_size: size,
        description: Some(format!("{kind} described")),
        words: words.into(),
    }
}

fn query(words: &[&str]) -> SearchQuery {
    SearchQuery {
        words: words.iter().map(|w| w.to_string()).collect(),
        limit: 100,
        ..SearchQuery::default()
    }
}

/// Repository and tag of each entry found, in the order found.
async fn found(store: &dyn MetadataStore, query: &SearchQuery) -> Vec<(String, String)> {
    store
        .search(query)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.repository, row.tag))
        .collect()
}

pub async fn run_browse(store: &dyn MetadataStore) {
    search_finds_names_tags_and_words(store).await;
    search_reads_a_bounded_window_spread_over_repositories(store).await;
    the_window_is_exact_where_matches_lie_beyond_any_bounded_walk(store).await;
    tags_pages_sort_and_count(store).await;
    pulls_are_counted(store).await;
    storage_usage_counts_each_blob_once(store).await;
}

async fn search_finds_names_tags_and_words(store: &dyn MetadataStore) {
    let web = push(store, "find/team/web-server", "2024.1", "web").await;
    push(store, "find/team/web-server", "latest", "web").await;
    let db = push(store, "find/other/database", "v15", "db").await;
    let r = repo("find/team/web-server");
    store
        .put_manifest_details(
            &r,
            &web,
            &details("image", &["linux/amd64"], 100, "quuxcorp nginx"),
        )
        .await
        .unwrap();
    store
        .put_manifest_details(&r, &web, &details("image", &["linux/arm64"], 1, "ignored"))
        .await
        .expect("details are written once; a second write changes nothing");
    store
        .put_manifest_details(
            &repo("find/other/database"),
            &db,
            &details("image", &["linux/arm64"], 50, "postgres"),
        )
        .await
        .unwrap();

    // By a word of the name: the repository and its tags.
    let by_name = found(store, &query(&["web"])).await;
    assert!(
        by_name.iter().all(|(r, _)| r == "find/team/web-server"),
        "{by_name:?}"
    );
    assert!(by_name.contains(&("find/team/web-server".into(), "".into())));
    // By prefix, by tag, by label words (of both tags on the manifest).
    assert!(!found(store, &query(&["serv"])).await.is_empty());
    assert_eq!(
        found(store, &query(&["2024"])).await,
        [("find/team/web-server".to_string(), "2024.1".to_string())]
    );
    let by_label = found(store, &query(&["quuxcorp"])).await;
    assert_eq!(by_label.len(), 2, "{by_label:?}");
    assert!(found(store, &query(&["ignored"])).await.is_empty());
    // Every word must match.
    assert!(
        found(store, &query(&["quuxcorp", "postgres"]))
            .await
            .is_empty()
    );
    assert_eq!(found(store, &query(&["postgres", "v15"])).await.len(), 1);

    // Filters: namespace, platform, with and without words.
    let in_team = SearchQuery {
        namespace: Some("find/team".into()),
        ..query(&["find"])
    };
    assert!(
        found(store, &in_team)
            .await
            .iter()
            .all(|(r, _)| r.starts_with("find/team/"))
    );
    let arm = SearchQuery {
        platform: Some("linux/arm64".into()),
        ..query(&[])
    };
    assert_eq!(
        found(store, &arm).await,
        [("find/other/database".to_string(), "v15".to_string())]
    );

    // Moving a tag re-indexes it; deleting it removes it.
    push(store, "find/team/web-server", "2024.1", "moved").await;
    assert!(found(store, &query(&["2024", "quuxcorp"])).await.is_empty());
    assert!(
        store
            .delete_tag(&r, &Tag::parse("2024.1").unwrap(), None, origin())
            .await
            .unwrap()
            .is_some()
    );
    assert!(found(store, &query(&["2024"])).await.is_empty());
    assert!(
        !store
            .manifests_without_details(10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A search reads a bounded number of matching entries, and those are spread over
/// repositories: every repository's name first, then every repository's first tag, and so on,
/// so a repository with many matching tags does not crowd out the others.
async fn search_reads_a_bounded_window_spread_over_repositories(store: &dyn MetadataStore) {
    let labelled = details("image", &["linux/amd64"], 1, "zorblax");
    let many = repo("spread/many");
    for i in 0..12 {
        let digest = push(
            store,
            "spread/many",
            &format!("t{i:02}"),
            &format!("many-{i}"),
        )
        .await;
        store
            .put_manifest_details(&many, &digest, &labelled)
            .await
            .unwrap();
    }
    // Created after all the tags of the first one.
    for i in 0..5 {
        let name = format!("spread/one-{i}");
        let digest = push(store, &name, "v1", &format!("one-{i}")).await;
        store
            .put_manifest_details(&repo(&name), &digest, &labelled)
            .await
            .unwrap();
    }
    let window = SearchQuery {
        limit: 8,
        ..query(&["zorblax"])
    };
    let rows = found(store, &window).await;
    assert_eq!(rows.len(), 8, "{rows:?}");
    let mut repositories: Vec<&str> = rows.iter().map(|(r, _)| r.as_str()).collect();
    repositories.sort();
    repositories.dedup();
    assert_eq!(
        repositories.len(),
        6,
        "each repository's first tag first: {rows:?}"
    );
    assert_eq!(
        rows.iter().filter(|(r, _)| r == "spread/many").count(),
        3,
        "{rows:?}"
    );
    // Names come before any tag.
    let names = found(
        store,
        &SearchQuery {
            limit: 6,
            ..query(&["spread"])
        },
    )
    .await;
    assert_eq!(names.len(), 6);
    assert!(names.iter().all(|(_, tag)| tag.is_empty()), "{names:?}");
    // Everything when the window is large enough; a tag deleted and pushed again is found.
    assert_eq!(found(store, &query(&["zorblax"])).await.len(), 17);
    store
        .delete_tag(&many, &Tag::parse("t00").unwrap(), None, origin())
        .await
        .unwrap();
    let digest = push(store, "spread/many", "t00", "many-0-again").await;
    store
        .put_manifest_details(&many, &digest, &labelled)
        .await
        .unwrap();
    assert_eq!(found(store, &query(&["zorblax"])).await.len(), 17);
    assert_eq!(found(store, &query(&["zorblax", "t00"])).await.len(), 1);
}

/// The window is the first matching entries in the index's order, whatever reads it: here
/// most of them are tags far down one repository (after 200 tags that do not match), beyond
/// what a bounded walk of the index's order reads (PostgreSQL walks 2x then 20x the window),
/// and one is the first tag of another repository.
async fn the_window_is_exact_where_matches_lie_beyond_any_bounded_walk(store: &dyn MetadataStore) {
    let labelled = details("image", &["linux/amd64"], 1, "glimmerdeep");
    for i in 0..200 {
        push(store, "abyssal/many", &format!("p{i:03}"), "abyssal-plain").await;
    }
    for i in 0..12 {
        let digest = push(store, "abyssal/many", &format!("q{i:02}"), "abyssal-deep").await;
        if i == 0 {
            store
                .put_manifest_details(&repo("abyssal/many"), &digest, &labelled)
                .await
                .unwrap();
        }
    }
    let digest = push(store, "abyssal/early", "e1", "abyssal-early").await;
    store
        .put_manifest_details(&repo("abyssal/early"), &digest, &labelled)
        .await
        .unwrap();
    let sorted = |mut rows: Vec<(String, String)>| {
        rows.sort();
        rows
    };
    let entry = |r: &str, t: &str| (r.to_string(), t.to_string());

    // The first tag of abyssal/early (ordinal 1), then abyssal/many's from the 201st tag.
    let mut expected = vec![entry("abyssal/early", "e1")];
    expected.extend((0..7).map(|i| entry("abyssal/many", &format!("q{i:02}"))));
    let window = SearchQuery {
        limit: 8,
        ..query(&["glimmerdeep"])
    };
    assert_eq!(sorted(found(store, &window).await), expected);
    let one = SearchQuery {
        limit: 1,
        ..query(&["glimmerdeep"])
    };
    assert_eq!(found(store, &one).await, [entry("abyssal/early", "e1")]);
    assert_eq!(found(store, &query(&["glimmerdeep"])).await.len(), 13);
    // Names first (both), then the first tag in the order: abyssal/many's first.
    let names = SearchQuery {
        limit: 3,
        ..query(&["abyssal"])
    };
    assert_eq!(
        sorted(found(store, &names).await),
        [
            entry("abyssal/early", ""),
            entry("abyssal/many", ""),
            entry("abyssal/many", "p000")
        ]
    );
}

async fn tags_pages_sort_and_count(store: &dyn MetadataStore) {
    let r = repo("pages/app");
    for (i, tag) in ["b", "a", "c"].into_iter().enumerate() {
        // Pushed a few milliseconds apart, for the order by push time.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        let digest = push(store, "pages/app", tag, &format!("pages-{tag}")).await;
        store
            .put_manifest_details(&r, &digest, &details("image", &[], 10 * (i as u64 + 1), ""))
            .await
            .unwrap();
    }
    let by_name = store.tag_page(&r, TagSort::Name, 0, 2).await.unwrap();
    assert_eq!(by_name.total, 3);
    let names: Vec<&str> = by_name.rows.iter().map(|t| t.tag.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let next = store.tag_page(&r, TagSort::Name, 2, 2).await.unwrap();
    assert_eq!(next.rows.len(), 1);
    let by_push = store.tag_page(&r, TagSort::Pushed, 0, 3).await.unwrap();
    let names: Vec<&str> = by_push.rows.iter().map(|t| t.tag.as_str()).collect();
    assert_eq!(names, ["c", "a", "b"], "newest first");
    let deeper = store.tag_page(&r, TagSort::Pushed, 1, 1).await.unwrap();
    assert_eq!(deeper.rows[0].tag, "a");
    assert!(
        store
            .tag_page(&r, TagSort::Pushed, 3, 10)
            .await
            .unwrap()
            .rows
            .is_empty()
    );
    let by_size = store.tag_page(&r, TagSort::Size, 0, 3).await.unwrap();
    let sizes: Vec<u64> = by_size.rows.iter().map(|t| t.size).collect();
    assert_eq!(sizes, [30, 20, 10]);
    let summaries = store
        .repository_summaries(&["pages/app".into(), "pages/none".into()])
        .await
        .unwrap();
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].tags, 3);
    assert!(summaries[0].last_pushed_at.is_some());
    assert_eq!(summaries[0].description.as_deref(), Some("image described"));
}

async fn pulls_are_counted(store: &dyn MetadataStore) {
    let r = repo("pulls/app");
    let digest = push(store, "pulls/app", "v1", "pulled").await;
    let now = now_millis();
    let pull = |count, tag: Option<&str>, at| PullRecord {
        repository: r.clone(),
        digest: digest.clone(),
        tag: tag.map(|t| Tag::parse(t).unwrap()),
        count,
        at,
    };
    store
        .record_pulls(&[pull(2, Some("v1"), now - 10), pull(1, None, now)])
        .await
        .unwrap();
    store
        .record_pulls(&[pull(3, Some("v1"), now - 5)])
        .await
        .unwrap();
    // Pulls of what no longer exists are dropped without failing the batch.
    store
        .record_pulls(&[PullRecord {
            repository: repo("pulls/gone"),
            ..pull(1, Some("v9"), now)
        }])
        .await
        .unwrap();
    let record = store.manifest_record(&r, &digest).await.unwrap().unwrap();
    assert_eq!(record.pulls, 6);
    assert_eq!(record.last_pulled_at, Some(now));
    let row = &store.tag_page(&r, TagSort::Name, 0, 10).await.unwrap().rows[0];
    assert_eq!((row.pulls, row.last_pulled_at), (5, Some(now - 5)));
    let today = store.activity(&r, day_of(now)).await.unwrap();
    assert_eq!(today.len(), 1);
    assert_eq!((today[0].pulls, today[0].pushes), (6, 1));
}

async fn storage_usage_counts_each_blob_once(store: &dyn MetadataStore) {
    let shared = Digest::of(Algorithm::Sha256, b"shared layer");
    for name in ["usage/a", "usage/b"] {
        store
            .link_blob(&repo(name), &shared, 1000, origin())
            .await
            .unwrap();
    }
    let usage = store.storage_usage(1000).await.unwrap();
    let namespace = usage.namespaces.iter().find(|u| u.name == "usage").unwrap();
    assert_eq!((namespace.blobs, namespace.bytes), (1, 1000));
    let a = usage
        .repositories
        .iter()
        .find(|u| u.name == "usage/a")
        .unwrap();
    assert_eq!(a.bytes, 1000);
    assert!(usage.total.bytes >= 1000);
}
