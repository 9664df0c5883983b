//! Starting and stopping the servers under test (berth, the official registry) and the
//! sendfile ceiling (nginx), each on its own loopback port with its own data directory, and
//! reading their memory use.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::client::{Conn, Target};
use crate::token_auth::{self, TokenSource};
use crate::{Result, api};

/// How the registries are set up for authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// No authentication on either registry.
    Open,
    /// The Docker token protocol: berth with its own auth, the official registry trusting
    /// berth's tokens (`auth.token`); the harness presents bearer tokens on every request.
    Token,
}

pub struct Server {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Where the token profile gets this server's bearer tokens.
    pub tokens: Option<Arc<TokenSource>>,
    log: PathBuf,
    // In a mutex so that a shared `&Server` can still ask whether the process is alive.
    child: Mutex<Child>,
}

/// A free loopback port: bind port 0, read it, let it go. Racy in principle, harmless here.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A command for a server or berth's CLI: our own REGISTRY_*/BERTH_* variables must not leak
/// into their configuration (what they should see is set on the command afterwards).
fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars() {
        if key.starts_with("REGISTRY_") || key.starts_with("BERTH_") {
            command.env_remove(key);
        }
    }
    command
}

fn spawn(
    name: &'static str,
    mut command: Command,
    work: &Path,
    data_dir: PathBuf,
    addr: SocketAddr,
) -> Result<Server> {
    let log = work.join(format!("{name}.log"));
    let out = File::create(&log)?;
    let child = command
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .map_err(|e| format!("starting {name} ({command:?}): {e}"))?;
    Ok(Server {
        name,
        addr,
        data_dir,
        tokens: None,
        log,
        child: Mutex::new(child),
    })
}

/// berth from `binary`, under its own name (data directory `<name>-data`, log `<name>.log`),
/// with `config` if given: the berth under test, and the baseline of an A/B run (`--baseline`).
pub async fn start_berth_named(
    name: &'static str,
    binary: &Path,
    config: Option<&Path>,
    work: &Path,
    profile: Profile,
) -> Result<Server> {
    start_berth_with(name, binary, config, work, profile, &[]).await
}

/// berth under `name` with more configuration in environment variables (another blob store).
pub async fn start_berth_with(
    name: &'static str,
    binary: &Path,
    config: Option<&Path>,
    work: &Path,
    profile: Profile,
    env: &[(String, String)],
) -> Result<Server> {
    let data = work.join(format!("{name}-data"));
    std::fs::create_dir_all(&data)?;
    if profile == Profile::Token {
        add_bench_user(binary, &data, env)?;
    }
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let mut command = clean_command(binary);
    command.arg("serve");
    if let Some(config) = config {
        command.arg(config);
    }
    command
        .arg("--data")
        .arg(&data)
        .arg("--addr")
        .arg(addr.to_string())
        .env("REGISTRY_LOG_LEVEL", "warn")
        .env("REGISTRY_LOG_ACCESSLOG_DISABLED", "true")
        .env("REGISTRY_STORAGE_DELETE_ENABLED", "true")
        .envs(env.iter().map(|(k, v)| (k, v)));
    match profile {
        // As the official registry: no authentication.
        Profile::Open => command.env("REGISTRY_AUTH", "none"),
        // Tokens last the whole run, as a client's would for the length of its work.
        Profile::Token => command
            .env("REGISTRY_AUTH", "berth")
            .env("BERTH_AUTH_BERTH_TOKENEXPIRY", "1h"),
    };
    let mut server = spawn(name, command, work, data, addr)?;
    if profile == Profile::Token {
        server.wait_ready(Some(StatusCode::UNAUTHORIZED)).await?;
        server.tokens = Some(Arc::new(TokenSource::new(addr)));
    } else {
        server.wait_ready(Some(StatusCode::OK)).await?;
    }
    Ok(server)
}

/// Creates the harness's administrator in a berth data directory, with berth's own CLI and
/// the server's `env` (its database).
fn add_bench_user(binary: &Path, data: &Path, env: &[(String, String)]) -> Result<()> {
    let mut child = clean_command(binary)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args([
            "user",
            "add",
            token_auth::USER,
            "--admin",
            "--password-stdin",
            "--data",
        ])
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {} user add: {e}", binary.display()))?;
    std::io::Write::write_all(
        child.stdin.as_mut().expect("piped"),
        token_auth::PASSWORD.as_bytes(),
    )?;
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!(
            "berth user add {}: {}",
            token_auth::USER,
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(())
}

/// Debian's docker-registry (distribution 2.8) with the settings berth gets: filesystem
/// storage, deletes enabled, warn level, no access log. The in-memory blob descriptor cache is
/// on, as in the official image's stock config.yml.
///
/// With a `token_server` (the token profile), it trusts that berth's tokens: `auth.token` with
/// berth's `/token` as realm, its service and issuer, and its certificate as root bundle.
pub async fn start_official(work: &Path, token_server: Option<&Server>) -> Result<Server> {
    let auth = match token_server {
        None => String::new(),
        Some(berth) => {
            let bundle = work.join("berth-token-certificate.pem");
            std::fs::write(&bundle, berth.token_certificate().await?)?;
            format!(
                "auth:\n  token:\n    realm: http://{}/token\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                berth.addr,
                token_auth::SERVICE,
                token_auth::SERVICE,
                bundle.display()
            )
        }
    };
    let mut server = docker_registry("official", work, &auth)?;
    match token_server {
        None => server.wait_ready(Some(StatusCode::OK)).await?,
        Some(berth) => {
            server.wait_ready(Some(StatusCode::UNAUTHORIZED)).await?;
            server.tokens = Some(Arc::new(TokenSource::new(berth.addr)));
        }
    }
    Ok(server)
}

/// Another docker-registry with the official one's settings, under `name` (data directory
/// `<name>-data`), with `extra` configuration (`proxy:` for a pull-through cache): the
/// upstream and the official cache of workload 10.
pub async fn start_docker_registry(name: &'static str, work: &Path, extra: &str) -> Result<Server> {
    let server = docker_registry(name, work, extra)?;
    server.wait_ready(Some(StatusCode::OK)).await?;
    Ok(server)
}

fn docker_registry(name: &'static str, work: &Path, extra: &str) -> Result<Server> {
    let data = work.join(format!("{name}-data"));
    std::fs::create_dir_all(&data)?;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let config = work.join(format!("{name}-config.yml"));
    std::fs::write(
        &config,
        format!(
            "version: 0.1\n\
             log:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             \x20 cache:\n    blobdescriptor: inmemory\n\
             http:\n  addr: {addr}\n{extra}",
            data.display()
        ),
    )?;
    let mut command = clean_command("docker-registry");
    command.arg("serve").arg(&config);
    spawn(name, command, work, data, addr)
}

/// nginx with sendfile serving `root`: the loopback ceiling for a file download.
pub async fn start_nginx(work: &Path, root: &Path) -> Result<Server> {
    let site = format!("root {};", root.display());
    run_nginx("nginx", work, root, &site).await
}

/// nginx with one server block of `site`, its files under `work/<name>`.
async fn run_nginx(name: &'static str, work: &Path, data: &Path, site: &str) -> Result<Server> {
    let prefix = work.join(name);
    std::fs::create_dir_all(&prefix)?;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    // As root, nginx's workers would drop to `nobody`, who cannot read our private work dir.
    let user = if is_root() { "user root;\n" } else { "" };
    let p = prefix.display();
    let conf = format!(
        "{user}daemon off;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  default_type application/octet-stream;\n\
         \x20 client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n  fastcgi_temp_path {p}/fastcgi;\n\
         \x20 uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n\
         \x20 server {{\n    listen {addr};\n    {site}\n  }}\n}}\n"
    );
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let mut command = clean_command("nginx");
    command.arg("-c").arg(&conf_path).arg("-p").arg(&prefix);
    let server = spawn(name, command, work, data.to_path_buf(), addr)?;
    server.wait_ready(None).await?;
    Ok(server)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

impl Server {
    /// Where requests go, with this server's bearer tokens in the token profile.
    pub fn target(&self) -> Target {
        Target {
            addr: self.addr,
            tokens: self.tokens.clone(),
        }
    }

    /// `user:password` for skopeo in the token profile (it does the token dance itself).
    pub fn skopeo_credentials(&self) -> Option<String> {
        self.tokens
            .as_ref()
            .map(|_| format!("{}:{}", token_auth::USER, token_auth::PASSWORD))
    }

    /// The PEM certificate berth signs tokens with.
    async fn token_certificate(&self) -> Result<Vec<u8>> {
        let mut conn = Conn::connect(&Target::plain(self.addr)).await?;
        Ok(api::get_bytes(&mut conn, "/auth/certificate.pem", &[])
            .await?
            .to_vec())
    }

    pub fn pid(&self) -> u32 {
        self.child().id()
    }

    fn child(&self) -> std::sync::MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn exited(&self) -> Option<std::process::ExitStatus> {
        self.child().try_wait().ok().flatten()
    }

    /// Polls `GET /v2/` until it answers `want` (any answer when `None`), the process exits, or
    /// 30 s pass.
    async fn wait_ready(&self, want: Option<StatusCode>) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.exited() {
                return Err(
                    format!("{} exited with {status}: {}", self.name, self.log_tail()).into(),
                );
            }
            if let Ok(mut conn) = Conn::connect(&Target::plain(self.addr)).await
                && let Ok(response) = conn.send(Method::GET, "/v2/", &[], Bytes::new()).await
            {
                let status = response.status;
                let _ = response.drain(None).await;
                if want.is_none_or(|w| w == status) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(
                    format!("{} not ready after 30 s: {}", self.name, self.log_tail()).into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fails if the process has exited (a crash during a workload must not go unnoticed).
    pub fn check_alive(&self) -> Result<()> {
        match self.exited() {
            Some(status) => {
                Err(format!("{} exited with {status}: {}", self.name, self.log_tail()).into())
            }
            None => Ok(()),
        }
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Lines the server logged (at warn level and up, so each deserves a look).
    pub fn log_lines(&self) -> usize {
        std::fs::read_to_string(&self.log).map_or(0, |l| l.lines().count())
    }

    /// User plus system CPU time of all the process's threads so far (clock-tick resolution).
    /// NaN once the process is gone.
    pub fn cpu_seconds(&self) -> f64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())) else {
            return f64::NAN;
        };
        // Fields after the command name, which is in parentheses and may contain spaces:
        // utime and stime are the 14th and 15th fields of the line.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        (ticks(11) + ticks(12)) / hz
    }

    pub fn rss_bytes(&self) -> Result<u64> {
        proc_status_kib(self.pid(), "VmRSS:").map(|k| k * 1024)
    }

    /// Removes a blob's file behind the server's back, to keep the disk from filling with
    /// gigabytes of pushed test blobs. Only for blobs the run never reads again: both
    /// registries keep blobs at `docker/registry/v2/blobs/sha256/<xx>/<hex>/data`.
    pub fn discard_blob(&self, digest: &str) {
        if let Some(dir) = self.blob_path(digest).parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Where both registries keep a blob's bytes.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = crate::data::hex_of(digest);
        self.data_dir
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2.min(hex.len())])
            .join(hex)
            .join("data")
    }

    /// SIGTERM, then SIGKILL after 10 s.
    fn terminate(&self) {
        if self.exited().is_some() {
            return;
        }
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        unsafe {
            libc::kill(self.pid() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut child = self.child();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
    }
}

fn proc_status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status").into())
}

/// Peak RSS of a process over a stretch of time: VmRSS sampled every 2 ms by a thread, and the
/// kernel's own high-water mark (VmHWM, reset by writing 5 to clear_refs) where that works;
/// the larger of the two.
pub struct PeakWatch {
    pid: u32,
    hwm_reset: bool,
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl PeakWatch {
    pub fn start(pid: u32) -> PeakWatch {
        let hwm_reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(kib) = proc_status_kib(pid, "VmRSS:") {
                        peak.fetch_max(kib * 1024, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        PeakWatch {
            pid,
            hwm_reset,
            stop,
            peak,
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let sampled = self.peak.load(Ordering::Relaxed);
        let hwm = if self.hwm_reset {
            proc_status_kib(self.pid, "VmHWM:").map_or(0, |k| k * 1024)
        } else {
            0
        };
        sampled.max(hwm)
    }
}
