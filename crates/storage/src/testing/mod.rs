//! Test support: private storage servers started by the tests (Garage for S3, Azurite for
//! Azure, fake-gcs-server for Google Cloud Storage, js-ipfs for IPFS's RPC API), each on free
//! loopback ports in a temporary directory, so that a test can stop and restart its server
//! without disturbing others. `./scripts/test` installs them under `~/.cache/berth-test`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::ByteStream;

pub mod azurite;
pub mod fake_gcs;
pub mod garage;
pub mod ipfs;

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where `./scripts/test` caches what it installs, or `BERTH_TEST_CACHE`.
pub fn cache_dir() -> PathBuf {
    match std::env::var("BERTH_TEST_CACHE") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/berth-test")
        }
    }
}

/// A program installed by `./scripts/test`: `variable` if set, else `relative` in the cache.
pub fn installed(variable: &str, relative: &str) -> PathBuf {
    if let Ok(path) = std::env::var(variable) {
        return PathBuf::from(path);
    }
    let path = cache_dir().join(relative);
    assert!(
        path.exists(),
        "{} is not installed: run the tests with ./scripts/test, which installs it (or set {variable})",
        path.display()
    );
    path
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, what: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not open port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server process that a test can stop (as an outage would) and start again on the same
/// ports and data. Killed when dropped.
pub struct ServerProcess {
    command: Box<dyn Fn() -> Command + Send + Sync>,
    log: PathBuf,
    child: Option<Child>,
}

impl ServerProcess {
    /// Starts `command()` with its output in `log`, and waits for `port` to open.
    pub fn start(
        command: impl Fn() -> Command + Send + Sync + 'static,
        log: PathBuf,
        port: u16,
        what: &str,
    ) -> ServerProcess {
        let mut server = ServerProcess {
            command: Box::new(command),
            log,
            child: None,
        };
        server.start_again(port, what);
        server
    }

    pub fn start_again(&mut self, port: u16, what: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = (self.command)()
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{what} starts: {e}"));
        self.child = Some(child);
        wait_for_port(port, what, Duration::from_secs(60));
    }

    /// Stops the server, as an outage would: SIGTERM, so that emulators which save their
    /// state lazily (Azurite) or hold a repository lock (js-ipfs) can restart on their data;
    /// SIGKILL if it has not exited within 15 seconds.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A blocking HTTP/1.1 request to a loopback port, for setting servers up before a test:
/// returns the status and the response body.
pub fn http_request(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the server answers");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP response, got {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A request body of one chunk.
pub fn body(data: &'static [u8]) -> ByteStream {
    Box::pin(futures_util::stream::iter([Ok(Bytes::from_static(data))]))
}

/// A plain HTTP GET, as a client following a redirect would make; returns the body of a 200.
pub async fn fetch(url: &str) -> Vec<u8> {
    let response = reqwest::get(url).await.expect("the URL answers");
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    assert_eq!(
        status,
        200,
        "GET {url}: {}",
        String::from_utf8_lossy(&bytes)
    );
    bytes.to_vec()
}

/// A loopback TCP proxy in front of a server that records the head (request line and
/// headers) of every HTTP/1.1 request passing through, to check what a client sends.
pub struct RecordingProxy {
    pub port: u16,
    heads: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl RecordingProxy {
    pub async fn start(target: u16) -> RecordingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = std::sync::Arc::<std::sync::Mutex<Vec<String>>>::default();
        let recorded = std::sync::Arc::clone(&heads);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let recorded = std::sync::Arc::clone(&recorded);
                tokio::spawn(async move {
                    let (client_read, mut client_write) = client.into_split();
                    let (mut server_read, server_write) = server.into_split();
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                    });
                    let _ = forward_requests(client_read, server_write, &recorded).await;
                });
            }
        });
        RecordingProxy { port, heads }
    }

    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// Copies requests from `from` to `to`, recording each head; bodies are passed by their
/// `Content-Length` (anything else is passed on unparsed).
async fn forward_requests(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    recorded: &std::sync::Mutex<Vec<String>>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            let read = from.read(&mut chunk).await?;
            if read == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..read]);
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        recorded.lock().unwrap().push(head);
        let mut request: Vec<u8> = buffer.drain(..end + 4).collect();
        while buffer.len() < length {
            let read = from.read(&mut chunk).await?;
            if read == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..read]);
        }
        request.extend(buffer.drain(..length));
        to.write_all(&request).await?;
    }
}
