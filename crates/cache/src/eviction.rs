//! A remote's size cap (`remotes.<name>.maxsize`): when what is cached under its prefix
//! exceeds the cap, whole images go, least recently pulled first.
//!
//! An image is a manifest that no other cached manifest owns (a tagged image, an index),
//! with what it owns: an index's platform manifests, a manifest's referrers. Its bytes are
//! its manifests' and the blobs they reference that its repository holds; a blob referenced
//! by several cached images counts once, and is freed only by the eviction of its last
//! image. Eviction removes the manifests and their tags (in one transaction per image, which
//! keeps the image if it was pulled since the plan); the blobs become unreferenced and
//! garbage collection deletes their bytes, unless another repository still references them.

use std::collections::{BTreeMap, HashMap, HashSet};

use berth_meta::CachedContent;
use berth_oci::{Digest, RepositoryName};

/// An image chosen for eviction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Victim {
    pub repository: RepositoryName,
    /// The image's own manifest.
    pub digest: Digest,
    /// Every manifest id that goes with it.
    pub ids: Vec<i64>,
    /// When it was last pulled (or cached), Unix milliseconds: a pull after this keeps it.
    pub last_used: i64,
    /// The bytes its eviction frees in the cache's count.
    pub bytes: u64,
}

/// What a remote holds and what must go to bring it under its cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Bytes cached now: manifests plus distinct blobs.
    pub cached_bytes: u64,
    /// Images cached now.
    pub images: usize,
    pub victims: Vec<Victim>,
}

impl Plan {
    /// The cached bytes once every victim is gone.
    pub fn bytes_after(&self) -> u64 {
        self.cached_bytes - self.victims.iter().map(|v| v.bytes).sum::<u64>()
    }
}

/// Chooses the least recently pulled images until the rest fit in `cap` bytes, skipping
/// repositories that `busy` says are being pulled right now.
pub fn plan(content: &CachedContent, cap: u64, busy: impl Fn(&RepositoryName) -> bool) -> Plan {
    let manifests: HashMap<i64, &berth_meta::CachedManifest> =
        content.manifests.iter().map(|m| (m.id, m)).collect();
    let mut owned: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut owners: HashMap<i64, HashSet<i64>> = HashMap::new();
    for &(owner, child) in &content.edges {
        if owner != child && manifests.contains_key(&owner) && manifests.contains_key(&child) {
            owned.entry(owner).or_default().push(child);
            owners.entry(child).or_default().insert(owner);
        }
    }
    // Each manifest's blobs, and how many manifests reference each blob.
    let mut blobs_of: HashMap<i64, Vec<&Digest>> = HashMap::new();
    let mut blob_size: HashMap<&Digest, u64> = HashMap::new();
    let mut references: HashMap<&Digest, usize> = HashMap::new();
    for (id, digest, size) in &content.blobs {
        if manifests.contains_key(id) {
            blobs_of.entry(*id).or_default().push(digest);
            blob_size.insert(digest, *size);
            *references.entry(digest).or_default() += 1;
        }
    }
    let mut cached_bytes: u64 = blob_size.values().sum();
    cached_bytes += content.manifests.iter().map(|m| m.size).sum::<u64>();

    let mut roots: Vec<(i64, i64)> = content
        .manifests
        .iter()
        .filter(|m| !owners.contains_key(&m.id))
        .map(|m| (last_used(m.id, &manifests, &owned), m.id))
        .collect();
    roots.sort_unstable();
    let mut result = Plan {
        cached_bytes,
        images: roots.len(),
        victims: Vec::new(),
    };
    let mut removed: HashSet<i64> = HashSet::new();
    let mut remaining = cached_bytes;
    for (last_used, root) in roots {
        if remaining <= cap {
            break;
        }
        let manifest = manifests[&root];
        if busy(&manifest.repository) {
            continue;
        }
        // The root and what it owns, except what a manifest that stays also owns.
        let mut ids = vec![root];
        let mut next = 0;
        while next < ids.len() {
            let id = ids[next];
            next += 1;
            for &child in owned.get(&id).map(Vec::as_slice).unwrap_or_default() {
                let all_going = owners[&child]
                    .iter()
                    .all(|o| removed.contains(o) || ids.contains(o));
                if all_going && !ids.contains(&child) {
                    ids.push(child);
                }
            }
        }
        let mut bytes = 0;
        for id in &ids {
            removed.insert(*id);
            bytes += manifests[id].size;
            for digest in blobs_of.get(id).map(Vec::as_slice).unwrap_or_default() {
                let count = references.get_mut(digest).expect("counted above");
                *count -= 1;
                if *count == 0 {
                    bytes += blob_size[digest];
                }
            }
        }
        remaining -= bytes;
        result.victims.push(Victim {
            repository: manifest.repository.clone(),
            digest: manifest.digest.clone(),
            ids,
            last_used,
            bytes,
        });
    }
    result
}

/// The latest pull (or caching) of a manifest and everything it owns.
fn last_used(
    root: i64,
    manifests: &HashMap<i64, &berth_meta::CachedManifest>,
    owned: &HashMap<i64, Vec<i64>>,
) -> i64 {
    let mut latest = i64::MIN;
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let m = manifests[&id];
        latest = latest.max(m.last_pulled_at.unwrap_or(m.created_at));
        stack.extend(owned.get(&id).into_iter().flatten());
    }
    latest
}

/// The images per repository, for reports: `repository -> evicted digests`.
pub fn by_repository(victims: &[Victim]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for v in victims {
        out.entry(v.repository.to_string())
            .or_default()
            .push(v.digest.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_meta::CachedManifest;

    fn digest(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    fn manifest(id: i64, repo: &str, pulled: i64) -> CachedManifest {
        CachedManifest {
            id,
            repository: RepositoryName::parse(repo).unwrap(),
            digest: digest(id as u8),
            size: 10,
            created_at: 0,
            last_pulled_at: Some(pulled),
        }
    }

    /// Three images of 1010 bytes each (a manifest and a 1000-byte layer), pulled at 1, 3, 2.
    fn three() -> CachedContent {
        CachedContent {
            manifests: vec![
                manifest(1, "hub/a", 1),
                manifest(2, "hub/b", 3),
                manifest(3, "hub/c", 2),
            ],
            edges: vec![],
            blobs: vec![
                (1, digest(101), 1000),
                (2, digest(102), 1000),
                (3, digest(103), 1000),
            ],
        }
    }

    #[test]
    fn under_the_cap_nothing_goes() {
        let plan = plan(&three(), 3030, |_| false);
        assert_eq!(plan.cached_bytes, 3030);
        assert_eq!(plan.images, 3);
        assert!(plan.victims.is_empty());
    }

    #[test]
    fn the_least_recently_pulled_go_first_until_the_rest_fit() {
        let plan = plan(&three(), 2020, |_| false);
        let gone: Vec<_> = plan.victims.iter().map(|v| v.repository.as_str()).collect();
        assert_eq!(gone, ["hub/a"]);
        assert_eq!(plan.bytes_after(), 2020);
        let plan = super::plan(&three(), 1500, |_| false);
        let gone: Vec<_> = plan.victims.iter().map(|v| v.repository.as_str()).collect();
        assert_eq!(gone, ["hub/a", "hub/c"]);
    }

    #[test]
    fn a_repository_being_pulled_is_skipped() {
        let plan = plan(&three(), 2020, |r| r.as_str() == "hub/a");
        let gone: Vec<_> = plan.victims.iter().map(|v| v.repository.as_str()).collect();
        assert_eq!(gone, ["hub/c"]);
    }

    #[test]
    fn a_shared_blob_counts_once_and_is_freed_with_its_last_image() {
        let mut content = three();
        // b's layer is a's too.
        content.blobs.push((1, digest(102), 1000));
        assert_eq!(plan(&content, u64::MAX, |_| false).cached_bytes, 3030);
        let plan = plan(&content, 2500, |_| false);
        // a goes first but frees only its own layer and manifest.
        assert_eq!(plan.victims[0].bytes, 1010);
        assert_eq!(plan.victims.len(), 1);
    }

    #[test]
    fn an_index_goes_with_its_platform_manifests_and_counts_their_pulls() {
        let mut content = three();
        // Index 4 in hub/a owns manifest 1; pulled at 5 through its child.
        content.manifests.push(manifest(4, "hub/a", 0));
        content.manifests[0].last_pulled_at = Some(5);
        content.edges.push((4, 1));
        let plan = plan(&content, 2000, |_| false);
        let gone: Vec<_> = plan.victims.iter().map(|v| v.ids.clone()).collect();
        // c (2) then b (3) are older than the index's image (5).
        assert_eq!(gone, [vec![3], vec![2]]);
        let plan = super::plan(&content, 0, |_| false);
        assert_eq!(plan.victims.last().unwrap().ids, [4, 1]);
        assert_eq!(plan.bytes_after(), 0);
    }
}
