//! `berth fsck`: checks that the metadata database and the blob store agree.
//!
//! - every recorded blob has stored bytes of the recorded size (with `--verify-content`, bytes
//!   that hash to its digest);
//! - every manifest's references are held by its repository;
//! - stored blobs that no record names are listed (garbage collection reclaims them).
//!
//! Nothing changes unless `--repair` is given, and then only what is safe, each step said:
//! a record whose bytes are gone and that no manifest references is removed; a blob whose
//! bytes do not match its digest is quarantined (not served until pushed again, the bytes
//! kept aside); a manifest's reference to a blob its repository lost is re-linked when the
//! store still holds bytes that hash to the digest.

use std::collections::HashSet;
use std::sync::Arc;

use berth_meta::inventory::{BlobInventory, InventoryBlob};
use berth_meta::{MetadataStore, NewBlob, Origin, ReferenceKind};
use berth_storage::verify::{ContentCheck, Pace, check_content};
use berth_storage::{BlobKey, BlobStore, StorageError, StoredBlob};
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::progress::{Progress, human_bytes};

/// Blobs read from the database at a time.
const PAGE: u32 = 500;
/// Blobs whose presence and size are checked at once (remote stores answer in parallel).
const CONCURRENT_STATS: usize = 8;
/// Orphans listed in the report (all are counted).
const LISTED_ORPHANS: usize = 1000;

pub struct Options {
    pub verify_content: bool,
    pub repair: bool,
    /// Bytes per second when verifying content.
    pub rate: Option<u64>,
    /// No progress lines (machine-readable output).
    pub quiet: bool,
}

/// One problem found, and what `--repair` did about it.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// `missing`, `wrong-size`, `corrupt`, `unreadable`, `quarantined` or `unheld-reference`.
    pub kind: &'static str,
    /// The blob's digest, or `repository@manifest` for a reference.
    pub subject: String,
    pub detail: String,
    pub repaired: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub blobs: u64,
    pub bytes: u64,
    /// Blobs whose content was re-hashed.
    pub verified: u64,
    pub problems: Vec<Problem>,
    /// Stored blobs that no record names (the first thousand).
    pub orphans: Vec<String>,
    pub orphan_count: u64,
    pub seconds: f64,
}

impl Report {
    /// Problems `--repair` did not (or could not) fix.
    pub fn remaining(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.repaired.is_none())
            .count()
    }

    pub fn print(&self) {
        for problem in &self.problems {
            println!(
                "{:<17} {}: {}{}",
                problem.kind,
                problem.subject,
                problem.detail,
                problem
                    .repaired
                    .as_ref()
                    .map(|r| format!(" [repaired: {r}]"))
                    .unwrap_or_default()
            );
        }
        for orphan in &self.orphans {
            println!("{:<17} {orphan}: stored, but no record names it", "orphan");
        }
        let more = self.orphan_count.saturating_sub(self.orphans.len() as u64);
        if more > 0 {
            println!("... and {more} more orphans");
        }
        println!(
            "checked {} blobs ({}), content verified for {}, in {:.1}s: {} problems ({} remaining), {} orphaned blobs",
            self.blobs,
            human_bytes(self.bytes),
            self.verified,
            self.seconds,
            self.problems.len(),
            self.remaining(),
            self.orphan_count
        );
    }
}

fn stored(blob: &InventoryBlob) -> StoredBlob {
    StoredBlob {
        digest: blob.digest.clone(),
        size: blob.size,
        cid: blob.cid.clone(),
    }
}

/// Marks a blob quarantined and moves its bytes aside, in that order: pulls stop first.
/// Counted in `berth_blobs_quarantined_total`.
pub async fn quarantine(
    inventory: &dyn BlobInventory,
    store: &dyn BlobStore,
    blob: &StoredBlob,
    reason: &str,
) -> Result<(), String> {
    inventory
        .quarantine(&blob.digest, reason)
        .await
        .map_err(|e| format!("recording the quarantine of {}: {e}", blob.digest))?;
    metrics::counter!("berth_blobs_quarantined_total").increment(1);
    store
        .quarantine_blob(blob)
        .await
        .map_err(|e| format!("moving the bytes of {} aside: {e}", blob.digest))
}

/// What checking one blob found: `None` when it is fine.
async fn check_blob(
    store: &dyn BlobStore,
    blob: &InventoryBlob,
    pace: Option<&mut Pace>,
) -> Result<Option<(&'static str, ContentCheck)>, StorageError> {
    let found = match pace {
        Some(pace) => check_content(store, &stored(blob), pace).await?,
        None => match store.stat_blob(&stored(blob)).await? {
            None => ContentCheck::Missing,
            Some(size) if size != blob.size => ContentCheck::WrongSize { stored: size },
            Some(_) => ContentCheck::Intact,
        },
    };
    let kind = match found {
        ContentCheck::Intact => return Ok(None),
        ContentCheck::Missing => "missing",
        ContentCheck::WrongSize { .. } => "wrong-size",
        ContentCheck::WrongContent { .. } => "corrupt",
    };
    Ok(Some((kind, found)))
}

pub async fn run(
    meta: &Arc<dyn MetadataStore>,
    inventory: &Arc<dyn BlobInventory>,
    store: &Arc<dyn BlobStore>,
    options: &Options,
) -> Result<Report, String> {
    let mut report = Report::default();
    let counts = inventory
        .blob_counts()
        .await
        .map_err(|e| format!("reading the database: {e}"))?;
    let mut progress = Progress::new("fsck", counts.blobs, counts.bytes, options.quiet);
    let mut pace = Pace::new(options.rate);
    let mut known: HashSet<BlobKey> = HashSet::new();
    // Blobs found broken, with what was found, for the repair pass.
    let mut broken: Vec<(InventoryBlob, ContentCheck)> = Vec::new();
    let mut after = None;
    loop {
        let page = inventory
            .blobs_after(after.as_ref(), PAGE)
            .await
            .map_err(|e| format!("reading the database: {e}"))?;
        let Some(last) = page.last() else { break };
        after = Some(last.digest.clone());
        let mut checks = Vec::with_capacity(page.len());
        if options.verify_content {
            for blob in &page {
                if blob.quarantine.is_some() {
                    checks.push(Ok(None));
                } else {
                    checks.push(check_blob(store.as_ref(), blob, Some(&mut pace)).await);
                }
            }
        } else {
            checks = futures_util::stream::iter(&page)
                .map(|blob| async move {
                    if blob.quarantine.is_some() {
                        return Ok(None);
                    }
                    check_blob(store.as_ref(), blob, None).await
                })
                .buffered(CONCURRENT_STATS)
                .collect()
                .await;
        }
        for (blob, check) in page.into_iter().zip(checks) {
            report.blobs += 1;
            report.bytes += blob.size;
            progress.advance(blob.size);
            known.insert(BlobKey::Digest(blob.digest.clone()));
            if let Some(cid) = &blob.cid {
                known.insert(BlobKey::Cid(cid.clone()));
            }
            if let Some(reason) = &blob.quarantine {
                report.problems.push(Problem {
                    kind: "quarantined",
                    subject: blob.digest.to_string(),
                    detail: format!("not served until pushed again: {reason}"),
                    repaired: None,
                });
                continue;
            }
            match check {
                Ok(None) => {
                    if options.verify_content {
                        report.verified += 1;
                    }
                }
                Ok(Some((kind, found))) => {
                    if options.verify_content && kind != "missing" {
                        report.verified += 1;
                    }
                    report.problems.push(Problem {
                        kind,
                        subject: blob.digest.to_string(),
                        detail: found.describe(blob.size),
                        repaired: None,
                    });
                    broken.push((blob, found));
                }
                Err(StorageError::Unavailable(e)) => {
                    return Err(format!("blob storage is unavailable: {e}"));
                }
                Err(e) => report.problems.push(Problem {
                    kind: "unreadable",
                    subject: blob.digest.to_string(),
                    detail: e.to_string(),
                    repaired: None,
                }),
            }
        }
    }

    let unheld = inventory
        .unheld_references(10_000)
        .await
        .map_err(|e| format!("reading the database: {e}"))?;
    for reference in &unheld {
        report.problems.push(Problem {
            kind: "unheld-reference",
            subject: format!("{}@{}", reference.repository, reference.manifest),
            detail: format!(
                "references {} {}, which the repository does not hold",
                reference.kind.as_str(),
                reference.digest
            ),
            repaired: None,
        });
    }

    let mut listed = store.list_blobs();
    while let Some(found) = listed.try_next().await.map_err(|e| match e {
        StorageError::Unavailable(e) => format!("blob storage is unavailable: {e}"),
        other => format!("listing blob storage: {other}"),
    })? {
        if known.contains(&found.key) {
            continue;
        }
        report.orphan_count += 1;
        if report.orphans.len() < LISTED_ORPHANS {
            report.orphans.push(match found.key {
                BlobKey::Digest(digest) => digest.to_string(),
                BlobKey::Cid(cid) => format!("ipfs pin {cid}"),
            });
        }
    }

    if options.repair {
        repair(
            meta,
            inventory,
            store,
            &mut report,
            &broken,
            &unheld,
            &mut pace,
        )
        .await?;
    }
    report.seconds = progress.elapsed().as_secs_f64();
    Ok(report)
}

async fn repair(
    meta: &Arc<dyn MetadataStore>,
    inventory: &Arc<dyn BlobInventory>,
    store: &Arc<dyn BlobStore>,
    report: &mut Report,
    broken: &[(InventoryBlob, ContentCheck)],
    unheld: &[berth_meta::inventory::UnheldReference],
    pace: &mut Pace,
) -> Result<(), String> {
    for (blob, found) in broken {
        let subject = blob.digest.to_string();
        let repaired = match found {
            ContentCheck::Missing => {
                match inventory
                    .forget_unreferenced_blob(&blob.digest)
                    .await
                    .map_err(|e| format!("updating the database: {e}"))?
                {
                    true => Some(
                        "removed its record: its bytes are gone and no manifest references it"
                            .to_string(),
                    ),
                    // Referenced: only a push of the blob (or a restore) can bring it back.
                    false => None,
                }
            }
            ContentCheck::WrongSize { .. } | ContentCheck::WrongContent { .. } => {
                quarantine(
                    inventory.as_ref(),
                    store.as_ref(),
                    &stored(blob),
                    &found.describe(blob.size),
                )
                .await?;
                Some("quarantined: not served until pushed again; its bytes are under berth/quarantine/".to_string())
            }
            ContentCheck::Intact => None,
        };
        if let Some(problem) = report
            .problems
            .iter_mut()
            .find(|p| p.subject == subject && p.repaired.is_none())
        {
            problem.repaired = repaired;
        }
    }

    for reference in unheld {
        if reference.kind != ReferenceKind::Blob {
            continue;
        }
        let record = inventory
            .inventory_blob(&reference.digest)
            .await
            .map_err(|e| format!("reading the database: {e}"))?;
        if record.as_ref().is_some_and(|r| r.quarantine.is_some()) {
            continue;
        }
        let cid = record.as_ref().and_then(|r| r.cid.clone());
        let probe = StoredBlob {
            digest: reference.digest.clone(),
            size: 0,
            cid: cid.clone(),
        };
        let size = match store.stat_blob(&probe).await {
            Ok(Some(size)) => size,
            Ok(None) | Err(StorageError::NotFound) => continue,
            Err(e) => return Err(format!("blob storage: {e}")),
        };
        let blob = StoredBlob { size, ..probe };
        // Re-linked only when the bytes are the digest's.
        if check_content(store.as_ref(), &blob, pace)
            .await
            .map_err(|e| e.to_string())?
            != ContentCheck::Intact
        {
            continue;
        }
        meta.record_blob(
            &reference.repository,
            NewBlob {
                digest: &blob.digest,
                size,
                cid: cid.as_deref(),
            },
            &Arc::new(Origin::system("fsck")),
        )
        .await
        .map_err(|e| format!("updating the database: {e}"))?;
        let subject = format!("{}@{}", reference.repository, reference.manifest);
        let detail_end = reference.digest.to_string();
        if let Some(problem) = report.problems.iter_mut().find(|p| {
            p.kind == "unheld-reference" && p.subject == subject && p.detail.contains(&detail_end)
        }) {
            problem.repaired = Some(format!(
                "re-linked {} into {}: the store holds its bytes, verified",
                reference.digest, reference.repository
            ));
        }
    }
    Ok(())
}
