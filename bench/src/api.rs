//! The distribution API operations the workloads are made of, on top of `client::Conn`.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use sha2::{Digest as _, Sha256};

use crate::Result;
use crate::client::{Conn, Target, header, location_path};
use crate::data::{Blob, Image, OCI_MANIFEST};

async fn start_upload(conn: &mut Conn, repo: &str) -> Result<String> {
    let path = format!("/v2/{repo}/blobs/uploads/");
    let response = conn
        .send(Method::POST, &path, &[], Bytes::new())
        .await?
        .expect(StatusCode::ACCEPTED, &format!("POST {path}"))
        .await?;
    let location = response
        .header("location")
        .ok_or("upload started without a Location")?
        .to_string();
    response.drain(None).await?;
    Ok(location_path(&location))
}

fn with_query(path: &str, key: &str, value: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{key}={value}")
}

fn octet_stream() -> (HeaderName, HeaderValue) {
    header("content-type", "application/octet-stream")
}

/// POST, then the whole blob in one `PUT ?digest=` (what docker and skopeo do).
pub async fn push_monolithic(conn: &mut Conn, repo: &str, data: Bytes, digest: &str) -> Result<()> {
    let location = start_upload(conn, repo).await?;
    let put = with_query(&location, "digest", digest);
    conn.send(Method::PUT, &put, &[octet_stream()], data)
        .await?
        .expect(
            StatusCode::CREATED,
            &format!("PUT blob {digest} into {repo}"),
        )
        .await?
        .drain(None)
        .await?;
    Ok(())
}

/// POST, one `PATCH` per `chunk` bytes with `Content-Range`, then an empty `PUT ?digest=`.
pub async fn push_chunked(
    conn: &mut Conn,
    repo: &str,
    data: Bytes,
    digest: &str,
    chunk: usize,
) -> Result<()> {
    let mut location = start_upload(conn, repo).await?;
    let mut offset = 0;
    while offset < data.len() {
        let end = (offset + chunk).min(data.len());
        let range = header("content-range", &format!("{offset}-{}", end - 1));
        let response = conn
            .send(
                Method::PATCH,
                &location,
                &[octet_stream(), range],
                data.slice(offset..end),
            )
            .await?
            .expect(
                StatusCode::ACCEPTED,
                &format!("PATCH {offset}-{end} into {repo}"),
            )
            .await?;
        // registry:2 carries its upload state in the query, so follow every new Location.
        if let Some(next) = response.header("location") {
            location = location_path(next);
        }
        response.drain(None).await?;
        offset = end;
    }
    let put = with_query(&location, "digest", digest);
    conn.send(Method::PUT, &put, &[], Bytes::new())
        .await?
        .expect(
            StatusCode::CREATED,
            &format!("closing PUT of {digest} into {repo}"),
        )
        .await?
        .drain(None)
        .await?;
    Ok(())
}

/// GETs a blob streaming, returns its length; with `verify`, hashes it and compares.
pub async fn pull_blob(conn: &mut Conn, repo: &str, digest: &str, verify: bool) -> Result<u64> {
    let path = format!("/v2/{repo}/blobs/{digest}");
    let response = conn
        .send(Method::GET, &path, &[], Bytes::new())
        .await?
        .expect(StatusCode::OK, &format!("GET {path}"))
        .await?;
    let mut hasher = verify.then(Sha256::new);
    let n = response.drain(hasher.as_mut()).await?;
    if let Some(h) = hasher {
        let got = format!("sha256:{}", hex::encode(h.finalize()));
        if got != digest {
            return Err(format!("GET {path} returned content with digest {got}").into());
        }
    }
    Ok(n)
}

/// A plain GET of a URL path (nginx's file), counting (and optionally hashing) the body.
pub async fn get_counting(conn: &mut Conn, path: &str, expect_digest: Option<&str>) -> Result<u64> {
    let response = conn
        .send(Method::GET, path, &[], Bytes::new())
        .await?
        .expect(StatusCode::OK, &format!("GET {path}"))
        .await?;
    let mut hasher = expect_digest.map(|_| Sha256::new());
    let n = response.drain(hasher.as_mut()).await?;
    if let (Some(h), Some(want)) = (hasher, expect_digest) {
        let got = format!("sha256:{}", hex::encode(h.finalize()));
        if got != want {
            return Err(format!("GET {path} returned content with digest {got}").into());
        }
    }
    Ok(n)
}

/// HEAD a blob and check the registry knows its size.
pub async fn check_blob(conn: &mut Conn, repo: &str, blob: &Blob) -> Result<()> {
    let path = format!("/v2/{repo}/blobs/{}", blob.digest);
    let response = conn
        .send(Method::HEAD, &path, &[], Bytes::new())
        .await?
        .expect(StatusCode::OK, &format!("HEAD {path}"))
        .await?;
    let len = response.header("content-length").map(str::to_string);
    response.drain(None).await?;
    if len.as_deref() != Some(&blob.len().to_string()) {
        return Err(format!("HEAD {path}: Content-Length {len:?}, pushed {}", blob.len()).into());
    }
    Ok(())
}

pub async fn put_manifest(
    conn: &mut Conn,
    repo: &str,
    reference: &str,
    manifest: Bytes,
) -> Result<()> {
    let path = format!("/v2/{repo}/manifests/{reference}");
    conn.send(
        Method::PUT,
        &path,
        &[header("content-type", OCI_MANIFEST)],
        manifest,
    )
    .await?
    .expect(StatusCode::CREATED, &format!("PUT {path}"))
    .await?
    .drain(None)
    .await?;
    Ok(())
}

/// GETs a manifest and checks its bytes hash to `digest`.
pub async fn check_manifest(
    conn: &mut Conn,
    repo: &str,
    reference: &str,
    digest: &str,
) -> Result<()> {
    let path = format!("/v2/{repo}/manifests/{reference}");
    let body = conn
        .send(
            Method::GET,
            &path,
            &[header("accept", OCI_MANIFEST)],
            Bytes::new(),
        )
        .await?
        .expect(StatusCode::OK, &format!("GET {path}"))
        .await?
        .bytes()
        .await?;
    let got = crate::data::sha256_digest(&body);
    if got != digest {
        return Err(format!("GET {path}: manifest digest {got}, pushed {digest}").into());
    }
    Ok(())
}

pub async fn push_image(conn: &mut Conn, repo: &str, tag: &str, image: &Image) -> Result<()> {
    for blob in image.layers.iter().chain([&image.config]) {
        push_monolithic(conn, repo, blob.data.clone(), &blob.digest).await?;
    }
    put_manifest(conn, repo, tag, image.manifest.clone()).await
}

/// `GET path` (with `headers`), which must answer 200: the body.
pub async fn get_bytes(
    conn: &mut Conn,
    path: &str,
    headers: &[(HeaderName, HeaderValue)],
) -> Result<Bytes> {
    conn.send(Method::GET, path, headers, Bytes::new())
        .await?
        .expect(StatusCode::OK, &format!("GET {path}"))
        .await?
        .bytes()
        .await
}

pub async fn get_json(
    conn: &mut Conn,
    path: &str,
    headers: &[(HeaderName, HeaderValue)],
) -> Result<serde_json::Value> {
    let body = get_bytes(conn, path, headers).await?;
    Ok(serde_json::from_slice(&body).map_err(|e| format!("GET {path}: {e}"))?)
}

/// One request per index in `range`, spread over `conns` connections; every response must
/// have status `expect`. For populating catalogs and tag lists.
pub async fn for_each<F>(
    target: Target,
    conns: usize,
    range: Range<usize>,
    expect: StatusCode,
    make: F,
) -> Result<()>
where
    F: Fn(usize) -> (Method, String, Vec<(HeaderName, HeaderValue)>, Bytes) + Send + Sync + 'static,
{
    let next = Arc::new(AtomicUsize::new(range.start));
    let make = Arc::new(make);
    let mut tasks = Vec::new();
    for _ in 0..conns.min(range.len()).max(1) {
        let (next, make, end) = (next.clone(), make.clone(), range.end);
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(&target).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    return Ok::<_, crate::Error>(());
                }
                let (method, path, headers, body) = make(i);
                let what = format!("{method} {path}");
                conn.send(method, &path, &headers, body)
                    .await?
                    .expect(expect, &what)
                    .await?
                    .drain(None)
                    .await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}
