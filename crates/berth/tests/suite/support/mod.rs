//! Test support: runs the real `berth` binary on a free loopback port with its own data
//! directory, and drives it over a real socket.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod accounts;
pub mod browser;
pub mod clients;
pub mod ldap;
pub mod official_registry;
pub mod oidc;
pub mod push;
pub mod receiver;

/// A running berth process.
pub struct Berth {
    child: Option<Child>,
    pub addr: SocketAddr,
    data: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
    env: Vec<(String, String)>,
    /// Extra arguments of `berth serve` (a config file), kept for restarts.
    args: Vec<String>,
    /// The open-file limit (soft, hard) berth starts with, when not the test's own.
    open_files: Option<(u64, u64)>,
    pub logs: Arc<Mutex<Vec<String>>>,
}

pub struct BerthBuilder {
    env: Vec<(String, String)>,
    data: Option<PathBuf>,
    args: Vec<String>,
    open_files: Option<(u64, u64)>,
}

impl BerthBuilder {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    /// Start with this open-file limit, soft and hard (as `ulimit -Sn`, `ulimit -Hn`).
    pub fn open_files(mut self, soft: u64, hard: u64) -> Self {
        self.open_files = Some((soft, hard));
        self
    }

    /// Use an existing data directory (to restart on the same data).
    pub fn data(mut self, dir: &Path) -> Self {
        self.data = Some(dir.to_path_buf());
        self
    }

    pub fn start(self) -> Berth {
        let (tempdir, data) = match self.data {
            Some(dir) => (None, dir),
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().to_path_buf();
                (Some(dir), path)
            }
        };
        let mut berth = Berth {
            child: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            data,
            _tempdir: tempdir,
            env: self.env,
            args: self.args,
            open_files: self.open_files,
            logs: Arc::new(Mutex::new(Vec::new())),
        };
        berth.spawn();
        berth
    }
}

impl Berth {
    /// A registry with deletion enabled, the usual test setup.
    pub fn start() -> Berth {
        Berth::builder()
            .env("REGISTRY_STORAGE_DELETE_ENABLED", "true")
            .start()
    }

    pub fn builder() -> BerthBuilder {
        BerthBuilder {
            env: Vec::new(),
            data: None,
            args: Vec::new(),
            open_files: None,
        }
    }

    fn spawn(&mut self) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
        command
            .arg("serve")
            .arg("--data")
            .arg(&self.data)
            .args(if self.args.iter().any(|a| a == "--addr") {
                &[][..]
            } else {
                &["--addr", "127.0.0.1:0"][..]
            })
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // The test runner's own environment must not configure the registry under test.
        for (key, _) in std::env::vars() {
            if key.starts_with("REGISTRY_") || key.starts_with("BERTH_") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        command.env("REGISTRY_LOG_FORMATTER", "json");
        // Most tests exercise the API without authentication; the access tests set a mode
        // (a later REGISTRY_AUTH in `env` wins).
        command.env("REGISTRY_AUTH", "none");
        for (key, value) in &self.env {
            command.env(key, value);
        }
        if let Some((soft, hard)) = self.open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe, as code between fork and exec must be.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: soft,
                        rlim_max: hard,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let started = Instant::now();
        let mut child = command.spawn().expect("berth starts");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (addr_tx, addr_rx) = mpsc::channel();
        let logs = Arc::clone(&self.logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
                    && json["message"] == "listening"
                {
                    let _ = addr_tx.send(json["addr"].as_str().unwrap_or_default().to_string());
                }
                logs.lock().unwrap().push(line);
            }
        });
        let logs = Arc::clone(&self.logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                logs.lock().unwrap().push(line);
            }
        });
        match addr_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => self.addr = addr.parse().expect("listening address"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "berth did not start listening:\n{}",
                    self.logs.lock().unwrap().join("\n")
                );
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "startup took {:?}",
            started.elapsed()
        );
        self.child = Some(child);
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `127.0.0.1:PORT`, as registry clients take it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        unsafe {
            libc::kill(self.pid() as i32, libc::SIGTERM);
        }
        self.wait_exit()
    }

    /// Waits for the process to exit by itself (after a signal sent elsewhere).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "berth did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts again on the same data (after [`Berth::kill9`] or [`Berth::terminate`]).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

/// Runs a management command (`berth user add ...`) on the database in `data`, as an
/// operator would, and returns its `--json` output. Panics with its stderr if it fails.
pub fn berth_cli(data: &Path, args: &[&str]) -> serde_json::Value {
    berth_cli_env(data, &[], args)
}

/// [`berth_cli`] with configuration in the environment (`BERTH_DATABASE_URL`, ...).
pub fn berth_cli_env(data: &Path, env: &[(&str, &str)], args: &[&str]) -> serde_json::Value {
    succeeded_with_json(args, berth_cli_output_env(data, env, args, None))
}

/// The JSON a successful management command printed; panics with its output otherwise.
fn succeeded_with_json(args: &[&str], output: std::process::Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "berth {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "berth {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Runs a management command with `--json`, optionally feeding `stdin`, whatever its outcome.
pub fn berth_cli_output(data: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    berth_cli_output_env(data, &[], args, stdin)
}

/// [`berth_cli_output`] with configuration in the environment.
pub fn berth_cli_output_env(
    data: &Path,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    use std::io::Write;
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command.args(args).arg("--data").arg(data).arg("--json");
    for (key, _) in std::env::vars() {
        if key.starts_with("REGISTRY_") || key.starts_with("BERTH_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("berth runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

impl Berth {
    /// [`berth_cli`] on this server's data directory and configuration (the server keeps
    /// running: the command writes to the same database, and the server sees it within
    /// seconds).
    pub fn cli(&self, args: &[&str]) -> serde_json::Value {
        succeeded_with_json(args, self.cli_output(args))
    }

    /// A management command on this server's data and configuration, whatever its outcome.
    pub fn cli_output(&self, args: &[&str]) -> std::process::Output {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        berth_cli_output_env(&self.data, &env, args, None)
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Asserts an OCI error response: status, `{"errors":[{"code":...}]}` body, JSON content type.
pub async fn assert_oci_error(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    let actual = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "status (body: {text})");
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "error content type"
    );
    let body: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON error body, got {text}"));
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("errors array in {body}"));
    assert_eq!(errors[0]["code"], code, "error code in {body}");
    assert!(errors[0]["message"].is_string(), "message in {body}");
    assert!(errors[0].get("detail").is_some(), "detail in {body}");
    body
}

/// Every object key in the node's bucket under `prefix`.
pub async fn bucket_keys(
    garage: &berth_storage::testing::garage::Garage,
    prefix: &str,
) -> Vec<String> {
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&garage.bucket)
        .with_region("garage")
        .with_endpoint(garage.endpoint())
        .with_allow_http(true)
        .with_access_key_id(&garage.access_key)
        .with_secret_access_key(&garage.secret_key)
        .build()
        .unwrap();
    use futures_util::TryStreamExt;
    use object_store::ObjectStore;
    let prefix = object_store::path::Path::from(prefix);
    s3.list(Some(&prefix))
        .map_ok(|o| o.location.to_string())
        .try_collect()
        .await
        .unwrap()
}

/// The keys of the multipart uploads under way in Garage's bucket under `prefix`: S3's
/// ListMultipartUploads, signed as object_store signs its own requests (its store API has no
/// such listing).
pub async fn multipart_uploads(
    garage: &berth_storage::testing::garage::Garage,
    prefix: &str,
) -> Vec<String> {
    use object_store::aws::{AwsAuthorizer, AwsCredential};
    let credential = AwsCredential {
        key_id: garage.access_key.clone(),
        secret_key: garage.secret_key.clone(),
        token: None,
    };
    let url = format!(
        "{}/{}?uploads=&prefix={}",
        garage.endpoint(),
        garage.bucket,
        prefix.replace('/', "%2F")
    );
    let mut request = http::Request::get(&url)
        .body(object_store::client::HttpRequestBody::empty())
        .unwrap();
    AwsAuthorizer::new(&credential, "s3", "garage")
        .try_authorize(&mut request, None)
        .unwrap();
    let response = reqwest::Client::new()
        .get(&url)
        .headers(request.headers().clone())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert!(status.is_success(), "ListMultipartUploads: {status} {body}");
    // <Upload><Key>...</Key><UploadId>...</UploadId>...</Upload>, keys without markup.
    body.split("<Upload>")
        .skip(1)
        .filter_map(|upload| {
            let key = upload.split_once("<Key>")?.1.split_once("</Key>")?.0;
            Some(key.to_string())
        })
        .collect()
}

/// The sha256 digest string of `data`.
pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Locates a command-line tool, failing with instructions when it is missing: the README's
/// test command installs every one of them.
pub fn tool(name: &str) -> PathBuf {
    if let Ok(path) = std::env::var(format!("BERTH_TEST_{}", name.to_uppercase())) {
        return PathBuf::from(path);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let candidate = Path::new(dir).join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("{name} is not installed; run the test suite with ./scripts/test, which installs it");
}
