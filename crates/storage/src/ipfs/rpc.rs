//! A client of the Kubo RPC API (`/api/v0`), the commands berth uses, each with a timeout.
//!
//! Every command is a POST. Errors come back as `{"Message": ..., "Type": "error"}` with a
//! 4xx or 5xx status; berth tells "not there" (a missing MFS path, an unpinned CID) from the
//! node failing, which is reported as unavailable. Content lookups also pass the node its
//! own `timeout`, because a node asked for content it does not have searches the network
//! for it indefinitely.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::IpfsCredentials;
use crate::{ByteStream, StorageError};

/// How berth adds content: CIDv1 with raw leaves, base32, the default chunker. The same
/// bytes added with the same parameters always get the same CID. With progress reports the
/// node answers while a large body is still arriving, so the read timeout measures stalls,
/// not the length of the upload.
const ADD_PARAMETERS: [(&str, &str); 4] = [
    ("cid-version", "1"),
    ("raw-leaves", "true"),
    ("cid-base", "base32"),
    ("progress", "true"),
];

pub(crate) struct Rpc {
    http: reqwest::Client,
    api: url::Url,
    credentials: Option<IpfsCredentials>,
    timeout: Duration,
}

/// What `add` reports.
#[derive(Deserialize)]
struct Added {
    #[serde(rename = "Hash")]
    hash: String,
}

#[derive(Deserialize)]
struct NodeError {
    #[serde(rename = "Message")]
    message: String,
}

/// An entry of `files/ls`.
#[derive(Deserialize)]
pub(crate) struct Entry {
    #[serde(rename = "Name")]
    pub name: String,
}

#[derive(Deserialize)]
struct Listing {
    #[serde(rename = "Entries")]
    entries: Option<Vec<Entry>>,
}

#[derive(Deserialize)]
struct Stat {
    #[serde(rename = "Size")]
    size: u64,
}

#[derive(Deserialize)]
struct Pins {
    #[serde(rename = "Keys", default)]
    keys: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Whether a node's error message says that what was asked for is not there.
fn says_not_found(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "does not exist",
        "not pinned",
        "no link named",
        "not found",
        "no such file",
    ]
    .iter()
    .any(|phrase| message.contains(phrase))
}

fn unavailable(e: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable(format!("IPFS: {e}"))
}

/// A request failure: the node unreachable or too slow is "unavailable".
fn request_error(e: reqwest::Error) -> StorageError {
    unavailable(e)
}

impl Rpc {
    pub(crate) fn new(
        api: &url::Url,
        credentials: Option<IpfsCredentials>,
        timeout: Duration,
    ) -> Result<Rpc, StorageError> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .read_timeout(timeout)
            .build()
            .map_err(unavailable)?;
        let mut api = api.clone();
        api.path_segments_mut()
            .map_err(|()| unavailable("the API URL cannot be a base"))?
            .pop_if_empty()
            .extend(["api", "v0"]);
        Ok(Rpc {
            http,
            api,
            credentials,
            timeout,
        })
    }

    fn url(&self, command: &str, args: &[(&str, &str)]) -> url::Url {
        let mut url = self.api.clone();
        url.path_segments_mut()
            .expect("checked in new")
            .extend(command.split('/'));
        if !args.is_empty() {
            url.query_pairs_mut().extend_pairs(args);
        }
        url
    }

    /// The node's own timeout for a content lookup, as its option takes it.
    fn node_timeout(&self) -> String {
        format!("{}ms", self.timeout.as_millis())
    }

    fn post(&self, url: url::Url) -> reqwest::RequestBuilder {
        let request = self.http.post(url);
        match &self.credentials {
            Some(IpfsCredentials::Basic { user, password }) => {
                request.basic_auth(user, Some(password))
            }
            Some(IpfsCredentials::Bearer(token)) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request and checks its status; the response's body is still to be read.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, StorageError> {
        let response = request.send().await.map_err(request_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<NodeError>(&text)
            .map(|e| e.message)
            .unwrap_or(text);
        if says_not_found(&message) {
            return Err(StorageError::NotFound);
        }
        Err(unavailable(format!("{status}: {}", message.trim())))
    }

    /// A command with a small response, within the timeout.
    async fn call(&self, command: &str, args: &[(&str, &str)]) -> Result<Bytes, StorageError> {
        let request = self.post(self.url(command, args)).timeout(self.timeout);
        self.send(request)
            .await?
            .bytes()
            .await
            .map_err(request_error)
    }

    async fn call_json<T: DeserializeOwned>(
        &self,
        command: &str,
        args: &[(&str, &str)],
    ) -> Result<T, StorageError> {
        let bytes = self.call(command, args).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| unavailable(format!("unexpected answer to {command}: {e}")))
    }

    /// Adds a stream as one file; returns its CID and how many bytes it had. A failure of
    /// `data` itself (the client's request body) is [`StorageError::Body`].
    pub(crate) async fn add(
        &self,
        data: ByteStream,
        pin: bool,
    ) -> Result<(String, u64), StorageError> {
        let counted = Arc::new(AtomicU64::new(0));
        let body_error: Arc<Mutex<Option<io::Error>>> = Arc::default();
        let stream = {
            let counted = Arc::clone(&counted);
            let body_error = Arc::clone(&body_error);
            data.map(move |chunk| match chunk {
                Ok(bytes) => {
                    counted.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    Ok(bytes)
                }
                Err(e) => {
                    let message = e.to_string();
                    *body_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    Err(io::Error::other(message))
                }
            })
        };
        let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(stream))
            .file_name("blob")
            .mime_str("application/octet-stream")
            .expect("a valid media type");
        let form = reqwest::multipart::Form::new().part("file", part);
        let mut args = ADD_PARAMETERS.to_vec();
        args.push(("pin", if pin { "true" } else { "false" }));
        let request = self.post(self.url("add", &args)).multipart(form);
        let response = match self.send(request).await {
            Ok(response) => response.bytes().await.map_err(request_error),
            Err(e) => Err(e),
        };
        // With progress reports the node answers before the body has ended, so a failing
        // body can also show as a broken answer.
        if let Some(e) = body_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(StorageError::Body(e));
        }
        let response = response?;
        // One JSON object per line: progress reports, then the file with its CID.
        let added: Added = response
            .rsplit(|b| *b == b'\n')
            .find_map(|line| serde_json::from_slice(line).ok())
            .ok_or_else(|| {
                unavailable(format!(
                    "unexpected answer to add: {}",
                    String::from_utf8_lossy(&response)
                ))
            })?;
        Ok((added.hash, counted.load(Ordering::Relaxed)))
    }

    /// Streams `length` bytes of `cid` from `offset`; a stream that ends early is an error,
    /// never a short blob.
    pub(crate) async fn cat(
        &self,
        cid: &str,
        offset: u64,
        length: u64,
    ) -> Result<ByteStream, StorageError> {
        let (offset_arg, length_arg, timeout) =
            (offset.to_string(), length.to_string(), self.node_timeout());
        let url = self.url(
            "cat",
            &[
                ("arg", cid),
                ("offset", &offset_arg),
                ("length", &length_arg),
                ("timeout", &timeout),
            ],
        );
        let response = self.send(self.post(url)).await?;
        Ok(Box::pin(exactly(
            response.bytes_stream().map_err(io::Error::other),
            length,
            cid.to_string(),
        )))
    }

    /// The size of the file `cid`, looked up within the timeout.
    pub(crate) async fn stat(&self, path: &str) -> Result<u64, StorageError> {
        let timeout = self.node_timeout();
        let stat: Stat = self
            .call_json(
                "files/stat",
                &[("arg", path), ("timeout", &timeout), ("cid-base", "base32")],
            )
            .await?;
        Ok(stat.size)
    }

    pub(crate) async fn pin_add(&self, cid: &str) -> Result<(), StorageError> {
        let timeout = self.node_timeout();
        self.call("pin/add", &[("arg", cid), ("timeout", &timeout)])
            .await
            .map(drop)
    }

    /// Unpins `cid`; one that is not pinned is fine.
    pub(crate) async fn pin_rm(&self, cid: &str) -> Result<(), StorageError> {
        match self.call("pin/rm", &[("arg", cid)]).await {
            Ok(_) | Err(StorageError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every recursively pinned CID, in base32.
    pub(crate) async fn pins(&self) -> Result<Vec<String>, StorageError> {
        let pins: Pins = self
            .call_json("pin/ls", &[("type", "recursive"), ("cid-base", "base32")])
            .await?;
        Ok(pins.keys.into_keys().collect())
    }

    pub(crate) async fn mkdir(&self, path: &str) -> Result<(), StorageError> {
        self.call("files/mkdir", &[("arg", path), ("parents", "true")])
            .await
            .map(drop)
    }

    /// Links `cid` into MFS at `path` (which keeps it from the node's garbage collection),
    /// making the directories above it as needed.
    pub(crate) async fn copy_in(&self, cid: &str, path: &str) -> Result<(), StorageError> {
        let source = format!("/ipfs/{cid}");
        let timeout = self.node_timeout();
        match self
            .call(
                "files/cp",
                &[
                    ("arg", &source),
                    ("arg", path),
                    ("parents", "true"),
                    ("timeout", &timeout),
                ],
            )
            .await
        {
            Err(StorageError::Unavailable(e)) if e.contains("already has entry") => Ok(()),
            other => other.map(drop),
        }
    }

    /// Writes a small MFS file, replacing what it held.
    pub(crate) async fn write(&self, path: &str, bytes: Bytes) -> Result<(), StorageError> {
        let part = reqwest::multipart::Part::bytes(bytes.to_vec())
            .file_name("data")
            .mime_str("application/octet-stream")
            .expect("a valid media type");
        let url = self.url(
            "files/write",
            &[
                ("arg", path),
                ("create", "true"),
                ("parents", "true"),
                ("truncate", "true"),
            ],
        );
        let request = self
            .post(url)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .timeout(self.timeout);
        self.send(request).await.map(drop)
    }

    /// Reads a small MFS file.
    pub(crate) async fn read(&self, path: &str) -> Result<Bytes, StorageError> {
        self.call("files/read", &[("arg", path)]).await
    }

    pub(crate) async fn list(&self, path: &str) -> Result<Vec<Entry>, StorageError> {
        let listing: Listing = self.call_json("files/ls", &[("arg", path)]).await?;
        Ok(listing.entries.unwrap_or_default())
    }

    /// Removes an MFS path and what is under it; one that is not there is fine.
    pub(crate) async fn remove(&self, path: &str) -> Result<(), StorageError> {
        match self
            .call("files/rm", &[("arg", path), ("recursive", "true")])
            .await
        {
            Ok(_) | Err(StorageError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Passes `stream` through, failing if it ends before `length` bytes or goes past them.
fn exactly(
    stream: impl Stream<Item = io::Result<Bytes>> + Send + 'static,
    length: u64,
    what: String,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let check = futures_util::stream::once(async { Ok(Bytes::new()) });
    let seen = Arc::new(AtomicU64::new(0));
    let counting = {
        let seen = Arc::clone(&seen);
        stream.map_ok(move |bytes| {
            seen.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            bytes
        })
    };
    counting
        .chain(check.and_then(move |empty: Bytes| {
            let got = seen.load(Ordering::Relaxed);
            let what = what.clone();
            async move {
                if got == length {
                    Ok(empty)
                } else {
                    Err(io::Error::other(format!(
                        "IPFS sent {got} bytes of {what} where {length} were expected"
                    )))
                }
            }
        }))
        .try_filter(|bytes| std::future::ready(!bytes.is_empty()))
}
