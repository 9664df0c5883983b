//! Debian's `docker-registry` (distribution 2.8, the official registry) as a test peer.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::tool;

/// `docker-registry serve` on a free loopback port, its config and log in a directory.
pub struct OfficialRegistry {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    log: PathBuf,
}

impl OfficialRegistry {
    /// Storing on the filesystem under `dir/storage`, with `auth` (YAML lines under `auth:`)
    /// when given.
    pub fn start(dir: &Path, auth: Option<&str>) -> OfficialRegistry {
        let storage = format!(
            "  filesystem:\n    rootdirectory: {}\n",
            dir.join("storage").display()
        );
        OfficialRegistry::start_with(dir, &storage, auth)
    }

    /// With `storage` (YAML lines under `storage:`; deletes are always enabled) and `auth`;
    /// the config file and the log go in `dir`.
    pub fn start_with(dir: &Path, storage: &str, auth: Option<&str>) -> OfficialRegistry {
        OfficialRegistry::start_configured(dir, storage, auth, "")
    }

    /// [`OfficialRegistry::start_with`] plus `extra` top-level YAML (e.g. `notifications:`).
    pub fn start_configured(
        dir: &Path,
        storage: &str,
        auth: Option<&str>,
        extra: &str,
    ) -> OfficialRegistry {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let auth = auth
            .map(|lines| format!("auth:\n{lines}"))
            .unwrap_or_default();
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n{storage}  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}{extra}"
            ),
        )
        .unwrap();
        let log = dir.join("registry.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(tool("docker-registry"))
            .arg("serve")
            .arg(&config)
            // Its AWS SDK cannot apply a CA bundle to its own transport, and panics.
            .env_remove("AWS_CA_BUNDLE")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("docker-registry starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        OfficialRegistry {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// `127.0.0.1:PORT`, as registry clients take it.
    pub fn host(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OfficialRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
