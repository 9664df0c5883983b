//! A private single-node Garage (a real S3-compatible store) per test. The binary comes from
//! `BERTH_TEST_GARAGE` or the cache the test command installs it into
//! (`~/.cache/berth-test/garage/bin/garage`).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{ServerProcess, free_port, installed};
use crate::object::{MIN_PART_SIZE, S3Settings};

pub struct Garage {
    // Dropped (killed) before its directory is removed.
    server: Option<ServerProcess>,
    dir: tempfile::TempDir,
    binary: PathBuf,
    pub s3_port: u16,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
}

impl Garage {
    pub fn start() -> Garage {
        Garage::start_in(&std::env::temp_dir())
    }

    /// Starts one with its data in a new directory under `parent`.
    pub fn start_in(parent: &std::path::Path) -> Garage {
        let dir = tempfile::Builder::new()
            .prefix("berth-garage")
            .tempdir_in(parent)
            .expect("temp dir");
        let (s3_port, rpc_port, admin_port) = (free_port(), free_port(), free_port());
        let secret: String = (0..32)
            .map(|i| format!("{:02x}", (i * 37 + s3_port as usize) % 256))
            .collect();
        let config = format!(
            r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
"#,
            dir = dir.path().display()
        );
        std::fs::write(dir.path().join("garage.toml"), config).unwrap();
        let mut garage = Garage {
            server: None,
            dir,
            binary: installed("BERTH_TEST_GARAGE", "garage/bin/garage"),
            s3_port,
            bucket: "berth".into(),
            access_key: String::new(),
            secret_key: String::new(),
        };
        garage.start_again();
        let node = garage.cli(&["node", "id", "-q"]);
        let node = node.trim().split('@').next().unwrap().to_string();
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        garage.cli(&["bucket", "create", "berth"]);
        let key = garage.cli(&["key", "create", "berth-test"]);
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
                .unwrap_or_else(|| panic!("no {name} in `garage key create` output:\n{key}"))
        };
        garage.access_key = field("Key ID:");
        garage.secret_key = field("Secret key:");
        garage.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            "berth",
            "--key",
            "berth-test",
        ]);
        garage
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("garage.toml")
    }

    /// Runs a `garage` command against this node, retrying while the node is still starting.
    fn cli(&self, args: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let output = Command::new(&self.binary)
                .arg("-c")
                .arg(self.config())
                .args(args)
                .stdin(Stdio::null())
                .output()
                .expect("garage runs");
            if output.status.success() {
                return String::from_utf8_lossy(&output.stdout).into_owned();
            }
            assert!(
                Instant::now() < deadline,
                "garage {args:?} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts the (stopped) server again on the same ports and data.
    pub fn start_again(&mut self) {
        if let Some(server) = &mut self.server {
            server.start_again(self.s3_port, "garage");
        } else {
            let (binary, config) = (self.binary.clone(), self.config());
            self.server = Some(ServerProcess::start(
                move || {
                    let mut command = Command::new(&binary);
                    command
                        .arg("-c")
                        .arg(&config)
                        .arg("server")
                        .env("RUST_LOG", "warn");
                    command
                },
                self.dir.path().join("server.log"),
                self.s3_port,
                "garage",
            ));
        }
        self.cli(&["status"]);
    }

    /// Kills the server, as an outage would.
    pub fn stop(&mut self) {
        if let Some(server) = &mut self.server {
            server.stop();
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Settings for a store under `root` in this node's bucket.
    pub fn settings(&self, root: &str) -> S3Settings {
        S3Settings {
            bucket: self.bucket.clone(),
            region: "garage".into(),
            endpoint: Some(self.endpoint()),
            access_key: Some(self.access_key.clone()),
            secret_key: Some(self.secret_key.clone()),
            session_token: None,
            root: root.into(),
            path_style: true,
            part_size: MIN_PART_SIZE,
            encryption: None,
            redirect: None,
        }
    }

    /// The environment that points a berth process at this node, under `root`.
    pub fn berth_env(&self, root: &str) -> Vec<(String, String)> {
        [
            ("REGISTRY_STORAGE_S3_BUCKET", self.bucket.clone()),
            ("REGISTRY_STORAGE_S3_REGION", "garage".into()),
            ("REGISTRY_STORAGE_S3_REGIONENDPOINT", self.endpoint()),
            ("REGISTRY_STORAGE_S3_ACCESSKEY", self.access_key.clone()),
            ("REGISTRY_STORAGE_S3_SECRETKEY", self.secret_key.clone()),
            ("REGISTRY_STORAGE_S3_FORCEPATHSTYLE", "true".into()),
            ("REGISTRY_STORAGE_S3_ROOTDIRECTORY", root.into()),
            ("REGISTRY_STORAGE_S3_CHUNKSIZE", MIN_PART_SIZE.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}
