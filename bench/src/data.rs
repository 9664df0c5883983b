//! The bytes the workloads push and pull: one pseudo-random buffer generated per run, blobs cut
//! from it at distinct offsets (so every blob has its own digest and no push finds its blob
//! already stored), small images, and OCI image layouts for skopeo.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// Offsets of successive blobs differ by this much; the buffer holds this many spare bytes per
/// blob id past the largest blob.
const ID_STEP: usize = 4096;
const MAX_IDS: usize = 4096;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A blob and its digest, computed before any timing starts.
#[derive(Clone)]
pub struct Blob {
    pub data: Bytes,
    pub digest: String,
}

impl Blob {
    pub fn new(data: Bytes) -> Blob {
        let digest = sha256_digest(&data);
        Blob { data, digest }
    }

    pub fn len(&self) -> u64 {
        self.data.len() as u64
    }
}

pub struct Source {
    buf: Bytes,
    next_id: AtomicUsize,
}

impl Source {
    /// A buffer big enough for blobs of up to `largest` bytes. Generation is xorshift: nothing
    /// in the path compresses, so all that matters is that blobs differ.
    pub fn new(largest: usize) -> Source {
        let len = largest + ID_STEP * MAX_IDS;
        let mut buf = vec![0u8; len];
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let part = len.div_ceil(threads).next_multiple_of(8);
        std::thread::scope(|scope| {
            for (i, chunk) in buf.chunks_mut(part).enumerate() {
                scope.spawn(move || fill_random(chunk, 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1)));
            }
        });
        Source {
            buf: Bytes::from(buf),
            next_id: AtomicUsize::new(0),
        }
    }

    /// The raw bytes of a fresh blob of `size` bytes, distinct from every earlier one.
    pub fn fresh_bytes(&self, size: usize) -> Bytes {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        assert!(id < MAX_IDS, "out of distinct blob offsets");
        let start = id * ID_STEP;
        assert!(
            start + size <= self.buf.len(),
            "blob larger than the buffer"
        );
        self.buf.slice(start..start + size)
    }

    /// `n` fresh blobs of `size` bytes, hashed on all cores.
    pub fn fresh_blobs(&self, n: usize, size: usize) -> Vec<Blob> {
        let datas: Vec<Bytes> = (0..n).map(|_| self.fresh_bytes(size)).collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per = datas.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = datas
                .chunks(per)
                .map(|group| {
                    scope.spawn(move || group.iter().cloned().map(Blob::new).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("hashing thread"))
                .collect()
        })
    }

    pub fn fresh_blob(&self, size: usize) -> Blob {
        Blob::new(self.fresh_bytes(size))
    }
}

fn fill_random(out: &mut [u8], seed: u64) {
    let mut x = seed;
    let mut words = out.chunks_exact_mut(8);
    for w in &mut words {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        w.copy_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    for b in words.into_remainder() {
        x ^= x << 13;
        *b = x as u8;
    }
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A small image: a config, `layers` and the manifest's exact bytes.
pub struct Image {
    pub config: Blob,
    pub layers: Vec<Blob>,
    pub manifest: Bytes,
    pub manifest_digest: String,
}

impl Image {
    /// Layers are gzip streams (stored blocks) of fresh random bytes: real gzip, so skopeo sees
    /// compressed layers and copies them verbatim instead of recompressing; not tars, because a
    /// copy never unpacks them.
    pub fn generate(source: &Source, layers: usize, layer_size: usize) -> Image {
        let raw = source.fresh_blobs(layers, layer_size);
        let layers: Vec<Blob> = raw
            .iter()
            .map(|b| Blob::new(Bytes::from(gzip_stored(&b.data))))
            .collect();
        let diff_ids: Vec<&str> = raw.iter().map(|b| b.digest.as_str()).collect();
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config = Blob::new(Bytes::from(config.to_string()));
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.len()},
            "layers": layers.iter().map(|l| json!({
                "mediaType": OCI_LAYER_GZIP, "digest": l.digest, "size": l.len(),
            })).collect::<Vec<_>>(),
        });
        let manifest = Bytes::from(manifest.to_string());
        Image {
            manifest_digest: sha256_digest(&manifest),
            config,
            layers,
            manifest,
        }
    }

    /// Writes the image as an OCI image layout with one tagged manifest.
    pub fn write_layout(&self, dir: &Path, tag: &str) -> std::io::Result<()> {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs)?;
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": OCI_MANIFEST,
                "digest": self.manifest_digest,
                "size": self.manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }],
        });
        std::fs::write(dir.join("index.json"), index.to_string())?;
        let all = self
            .layers
            .iter()
            .chain([&self.config])
            .map(|b| (&b.digest, &b.data))
            .chain([(&self.manifest_digest, &self.manifest)]);
        for (digest, data) in all {
            std::fs::write(blobs.join(hex_of(digest)), data)?;
        }
        Ok(())
    }
}

pub fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// A gzip member holding `data` in stored (uncompressed) deflate blocks.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    const MAX_BLOCK: usize = 65_535;
    let mut out = Vec::with_capacity(data.len() + data.len() / MAX_BLOCK * 5 + 32);
    // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=unknown
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    let mut blocks = data.chunks(MAX_BLOCK).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let table: [u32; 256] = std::array::from_fn(|i| {
        (0..8).fold(i as u32, |c, _| {
            if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            }
        })
    });
    !data.iter().fold(!0u32, |c, &b| {
        table[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn gzip_stored_is_valid_gzip() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        let gz = gzip_stored(&data);
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                // Written from a thread: gzip's output would fill the pipe while we write.
                let mut stdin = child.stdin.take().unwrap();
                let writer = std::thread::spawn(move || {
                    use std::io::Write;
                    stdin.write_all(&gz)
                });
                let out = child.wait_with_output();
                writer.join().unwrap()?;
                out
            });
        // gzip is part of every Debian install; skip quietly where it is not.
        if let Ok(out) = out {
            assert!(out.status.success());
            assert_eq!(out.stdout, data);
        }
    }

    #[test]
    fn fresh_blobs_differ() {
        let source = Source::new(1024);
        let a = source.fresh_blob(1024);
        let b = source.fresh_blob(1024);
        assert_ne!(a.digest, b.digest);
        assert_eq!(a.len(), 1024);
    }
}
