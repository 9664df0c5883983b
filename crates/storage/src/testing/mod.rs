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

/// How long a server may take to start or to answer its first request: generous, because
/// tests start servers while the machine also compiles and runs other tests (two cores
/// shared by several test binaries). `BERTH_TEST_PATIENCE_SECS` sets it.
pub fn patience() -> Duration {
    std::env::var("BERTH_TEST_PATIENCE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(120), Duration::from_secs)
}

/// How many times a server is started on fresh ports before a test gives up.
const ATTEMPTS: usize = 3;

/// Runs `start` (which picks fresh ports, starts a server and sets it up) until it succeeds,
/// at most [`ATTEMPTS`] times: a server can lose a port it was given to another test's
/// server started in between, or exit at start for another passing reason. Panics with
/// every attempt's error when none succeeds.
pub fn on_fresh_ports<T>(what: &str, mut start: impl FnMut() -> Result<T, String>) -> T {
    let mut errors = Vec::new();
    for attempt in 1..=ATTEMPTS {
        match start() {
            Ok(started) => return started,
            Err(e) => {
                eprintln!("{what} did not start (attempt {attempt} of {ATTEMPTS}): {e}");
                errors.push(e);
            }
        }
    }
    panic!(
        "{what} did not start in {ATTEMPTS} attempts:\n{}",
        errors.join("\n---\n")
    );
}

/// A server process that a test can stop (as an outage would) and start again on the same
/// ports and data. Killed when dropped.
pub struct ServerProcess {
    command: Box<dyn Fn() -> Command + Send + Sync>,
    log: PathBuf,
    child: Option<Child>,
    what: String,
}

impl ServerProcess {
    /// Starts `command()` with its output in `log`, and waits for `port` to open; an error
    /// (with the end of the log) when the process exits first or the port stays closed past
    /// [`patience`]. The process is killed on error.
    pub fn try_start(
        command: impl Fn() -> Command + Send + Sync + 'static,
        log: PathBuf,
        port: u16,
        what: &str,
    ) -> Result<ServerProcess, String> {
        let mut server = ServerProcess {
            command: Box::new(command),
            log,
            child: None,
            what: what.to_owned(),
        };
        server.try_start_again(port)?;
        Ok(server)
    }

    /// Starts the stopped server again on the same port and data; panics if it does not
    /// come up (see [`ServerProcess::try_start`]).
    pub fn start_again(&mut self, port: u16) {
        if let Err(e) = self.try_start_again(port) {
            panic!("{e}");
        }
    }

    fn try_start_again(&mut self, port: u16) -> Result<(), String> {
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
            .map_err(|e| format!("{} does not start: {e}", self.what))?;
        self.child = Some(child);
        let deadline = Instant::now() + patience();
        loop {
            // Exited: most often a port taken by another server since it was picked.
            self.ensure_running()?;
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                // Whatever answers may be another test's server on a port this one could
                // not bind: make sure this one is still up.
                std::thread::sleep(Duration::from_millis(100));
                return self.ensure_running();
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(format!(
                    "{} did not open port {port} within {:?}; its log ends with:\n{}",
                    self.what,
                    patience(),
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An error with the end of the log when the process has exited.
    pub fn ensure_running(&mut self) -> Result<(), String> {
        let exited = match &mut self.child {
            None => Some("stopped".to_owned()),
            Some(child) => match child.try_wait() {
                Ok(Some(status)) => Some(status.to_string()),
                Ok(None) => None,
                Err(e) => Some(e.to_string()),
            },
        };
        match exited {
            None => Ok(()),
            Some(status) => {
                self.child = None;
                Err(format!(
                    "{} exited ({status}); its log ends with:\n{}",
                    self.what,
                    self.log_tail()
                ))
            }
        }
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

    /// The last lines of the log, for errors.
    fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
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
