//! A private Azurite (Microsoft's Azure Storage emulator, npm `azurite`) per test, with one
//! container. The program comes from `BERTH_TEST_AZURITE` or the cache the test command
//! installs it into (`~/.cache/berth-test/azurite/node_modules/.bin/azurite-blob`).

use std::process::Command;

use super::{ServerProcess, free_port, installed, on_fresh_ports};
use crate::object::AzureSettings;

/// The emulator's well-known account and key (published in Azurite's documentation).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const API_VERSION: &str = "2021-08-06";

pub struct Azurite {
    // Dropped (killed) before its directory is removed.
    server: ServerProcess,
    _dir: tempfile::TempDir,
    pub port: u16,
    pub container: String,
}

impl Azurite {
    pub fn start() -> Azurite {
        Azurite::start_in(&std::env::temp_dir())
    }

    /// Starts one with its data in a new directory under `parent`.
    pub fn start_in(parent: &std::path::Path) -> Azurite {
        let dir = tempfile::Builder::new()
            .prefix("berth-azurite")
            .tempdir_in(parent)
            .expect("temp dir");
        let program = installed(
            "BERTH_TEST_AZURITE",
            "azurite/node_modules/.bin/azurite-blob",
        );
        let location = dir.path().join("data");
        let log = dir.path().join("azurite.log");
        let (server, port) = on_fresh_ports("azurite", || {
            let port = free_port();
            let (program, location) = (program.clone(), location.clone());
            let command = move || {
                let mut command = Command::new(&program);
                command
                    .args(["--silent", "--disableTelemetry", "--skipApiVersionCheck"])
                    .arg("--location")
                    .arg(&location)
                    .args(["--blobHost", "127.0.0.1", "--blobPort"])
                    .arg(port.to_string());
                command
            };
            ServerProcess::try_start(command, log.clone(), port, "azurite").map(|s| (s, port))
        });
        let azurite = Azurite {
            server,
            _dir: dir,
            port,
            container: "berth".into(),
        };
        azurite.create_container();
        azurite
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// `PUT ?restype=container`, signed with the account's shared key (object_store creates
    /// blobs, not containers).
    fn create_container(&self) {
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let string_to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{API_VERSION}\n/{ACCOUNT}/{ACCOUNT}/{}\nrestype:container",
            self.container
        );
        let key = data_encoding::BASE64
            .decode(ACCOUNT_KEY.as_bytes())
            .unwrap();
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
        let signature = data_encoding::BASE64
            .encode(ring::hmac::sign(&key, string_to_sign.as_bytes()).as_ref());
        let (status, response) = super::http_request(
            self.port,
            "PUT",
            &format!("/{ACCOUNT}/{}?restype=container", self.container),
            &[
                ("x-ms-date", &date),
                ("x-ms-version", API_VERSION),
                ("authorization", &format!("SharedKey {ACCOUNT}:{signature}")),
            ],
            b"",
        );
        assert_eq!(status, 201, "creating the container: {response}");
    }

    /// Kills the emulator, as an outage would.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    pub fn start_again(&mut self) {
        self.server.start_again(self.port);
    }

    /// Settings for a store under `root` in the container.
    pub fn settings(&self, root: &str) -> AzureSettings {
        AzureSettings {
            account_name: ACCOUNT.into(),
            account_key: Some(ACCOUNT_KEY.into()),
            container: self.container.clone(),
            endpoint: self.endpoint(),
            root: root.into(),
            part_size: crate::object::MIN_BLOCK_SIZE,
            redirect: None,
        }
    }

    /// The environment that points a berth process at this emulator, under `root`.
    pub fn berth_env(&self, root: &str) -> Vec<(String, String)> {
        [
            ("REGISTRY_STORAGE_AZURE_ACCOUNTNAME", ACCOUNT.to_string()),
            ("REGISTRY_STORAGE_AZURE_ACCOUNTKEY", ACCOUNT_KEY.to_string()),
            ("REGISTRY_STORAGE_AZURE_CONTAINER", self.container.clone()),
            ("REGISTRY_STORAGE_AZURE_SERVICEURL", self.endpoint()),
            ("REGISTRY_STORAGE_AZURE_ROOTDIRECTORY", root.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}
