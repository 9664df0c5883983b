//! A private single-node Garage (a real S3-compatible store) per test. The binary comes from
//! `BERTH_TEST_GARAGE` or the cache the test command installs it into
//! (`~/.cache/berth-test/garage/bin/garage`).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{ServerProcess, free_port, installed, on_fresh_ports, patience};
use crate::object::{MIN_PART_SIZE, S3Settings};

pub struct Garage {
    // Dropped (killed) before its directory is removed.
    server: ServerProcess,
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

    /// Starts one with its data in a new directory under `parent`: on fresh ports, again
    /// on other ports (and a fresh directory) when the node exits or does not answer (see
    /// [`on_fresh_ports`]).
    pub fn start_in(parent: &std::path::Path) -> Garage {
        let binary = installed("BERTH_TEST_GARAGE", "garage/bin/garage");
        on_fresh_ports("garage", || Garage::try_start_in(parent, &binary))
    }

    fn try_start_in(parent: &std::path::Path, binary: &std::path::Path) -> Result<Garage, String> {
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
        let (command_binary, config) = (binary.to_path_buf(), dir.path().join("garage.toml"));
        let command = move || {
            let mut command = Command::new(&command_binary);
            command
                .arg("-c")
                .arg(&config)
                .arg("server")
                .env("RUST_LOG", "warn");
            command
        };
        let server =
            ServerProcess::try_start(command, dir.path().join("server.log"), s3_port, "garage")?;
        let mut garage = Garage {
            server,
            dir,
            binary: binary.to_path_buf(),
            s3_port,
            bucket: "berth".into(),
            access_key: String::new(),
            secret_key: String::new(),
        };
        garage.try_cli(&["status"])?;
        let node = garage.try_cli(&["node", "id", "-q"])?;
        let node = node.trim().split('@').next().unwrap().to_string();
        garage.try_cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node])?;
        garage.try_cli(&["layout", "apply", "--version", "1"])?;
        garage.try_cli(&["bucket", "create", "berth"])?;
        let key = garage.try_cli(&["key", "create", "berth-test"])?;
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
                .ok_or_else(|| format!("no {name} in `garage key create` output:\n{key}"))
        };
        garage.access_key = field("Key ID:")?;
        garage.secret_key = field("Secret key:")?;
        garage.try_cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            "berth",
            "--key",
            "berth-test",
        ])?;
        Ok(garage)
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("garage.toml")
    }

    /// Runs a `garage` command against this node, retrying while the node is still starting
    /// (its RPC port opens after its S3 port), for up to [`patience`]; an error at once if
    /// the node has exited.
    fn try_cli(&mut self, args: &[&str]) -> Result<String, String> {
        let deadline = Instant::now() + patience();
        loop {
            let output = Command::new(&self.binary)
                .arg("-c")
                .arg(self.config())
                .args(args)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("garage does not run: {e}"))?;
            if output.status.success() {
                return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
            }
            self.server.ensure_running()?;
            if Instant::now() >= deadline {
                return Err(format!(
                    "garage {args:?} failed for {:?}: {}{}",
                    patience(),
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts the (stopped) server again on the same ports and data, and waits until it
    /// answers.
    pub fn start_again(&mut self) {
        self.server.start_again(self.s3_port);
        if let Err(e) = self.try_cli(&["status"]) {
            panic!("{e}");
        }
    }

    /// Kills the server, as an outage would.
    pub fn stop(&mut self) {
        self.server.stop();
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
