//! A private IPFS node speaking Kubo's RPC API per test: js-ipfs (npm `ipfs@0.66.1`, which
//! serves the same `/api/v0` offline; Kubo itself cannot be installed where berth is
//! developed). The program comes from `BERTH_TEST_JSIPFS` or the cache the test command
//! installs it into (`~/.cache/berth-test/ipfs/node_modules/.bin/jsipfs`).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{ServerProcess, free_port, installed, on_fresh_ports};
use crate::ipfs::IpfsSettings;

pub struct IpfsNode {
    // Dropped (killed) before its repository is removed.
    server: ServerProcess,
    _dir: tempfile::TempDir,
    pub api_port: u16,
    pub gateway_port: u16,
}

fn jsipfs(program: &PathBuf, repo: &PathBuf) -> Command {
    let mut command = Command::new(program);
    command.env("IPFS_PATH", repo);
    command
}

impl IpfsNode {
    pub fn start() -> IpfsNode {
        IpfsNode::start_in(&std::env::temp_dir())
    }

    /// Starts one with its data in a new directory under `parent`.
    pub fn start_in(parent: &std::path::Path) -> IpfsNode {
        let dir = tempfile::Builder::new()
            .prefix("berth-ipfs")
            .tempdir_in(parent)
            .expect("temp dir");
        let program = installed("BERTH_TEST_JSIPFS", "ipfs/node_modules/.bin/jsipfs");
        let repo = dir.path().join("repo");
        let init = jsipfs(&program, &repo)
            .args(["init", "--profile=test", "--empty-repo"])
            .output()
            .expect("jsipfs runs");
        assert!(
            init.status.success(),
            "jsipfs init: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        // Loopback only, no swarm (without that the daemon hangs offline), as the recipe in
        // REAL-CLIENTS.md says; edited in the file rather than with four slow `config` runs.
        let log = dir.path().join("daemon.log");
        let (server, api_port, gateway_port) = on_fresh_ports("js-ipfs", || {
            let (api_port, gateway_port) = (free_port(), free_port());
            let config_path = repo.join("config");
            let mut config: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
            let addresses = &mut config["Addresses"];
            addresses["API"] = format!("/ip4/127.0.0.1/tcp/{api_port}").into();
            addresses["Gateway"] = format!("/ip4/127.0.0.1/tcp/{gateway_port}").into();
            addresses["RPC"] = "/ip4/127.0.0.1/tcp/0".into();
            addresses["Swarm"] = serde_json::json!([]);
            std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
            let (program, repo) = (program.clone(), repo.clone());
            let command = move || {
                let mut command = jsipfs(&program, &repo);
                command.args(["daemon", "--offline", "--enable-preload=false"]);
                command
            };
            ServerProcess::try_start(command, log.clone(), api_port, "js-ipfs")
                .map(|s| (s, api_port, gateway_port))
        });
        IpfsNode {
            server,
            _dir: dir,
            api_port,
            gateway_port,
        }
    }

    pub fn api(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    pub fn gateway(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway_port)
    }

    /// Kills the node, as an outage would.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    pub fn start_again(&mut self) {
        self.server.start_again(self.api_port);
    }

    /// Settings for a store staging uploads under the MFS directory `root`.
    pub fn settings(&self, root: &str) -> IpfsSettings {
        IpfsSettings {
            api: self.api().parse().unwrap(),
            credentials: None,
            pin: true,
            gateway: None,
            timeout: Duration::from_secs(10),
            root: root.into(),
        }
    }

    /// The environment that points a berth process at this node.
    pub fn berth_env(&self, root: &str) -> Vec<(String, String)> {
        [
            ("BERTH_STORAGE_IPFS_API", self.api()),
            ("BERTH_STORAGE_IPFS_ROOTDIRECTORY", root.to_string()),
            ("BERTH_STORAGE_IPFS_TIMEOUT", "60s".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}
