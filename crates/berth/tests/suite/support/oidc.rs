//! A real OpenID provider for one test: the npm `oidc-provider` package (installed by
//! ./scripts/test under ~/.cache/berth-test, named by `BERTH_TEST_OIDC_PROVIDER`) run by
//! `oidc_provider.mjs` with Node. Its accounts are a JSON file the test may rewrite (a group
//! change at the provider).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::free_port;

const SCRIPT: &str = include_str!("oidc_provider.mjs");
pub const CLIENT_SECRET: &str = "berth-client-secret-for-tests";

pub struct OidcProvider {
    child: Child,
    pub port: u16,
    accounts: PathBuf,
    _dir: tempfile::TempDir,
}

impl OidcProvider {
    /// A provider whose client `berth` may come back to `redirect_uri`, with `accounts`
    /// (`{"<login>": {claims}}`).
    pub fn start(redirect_uri: &str, accounts: &Value) -> OidcProvider {
        let module = std::env::var("BERTH_TEST_OIDC_PROVIDER").expect(
            "BERTH_TEST_OIDC_PROVIDER: node_modules/oidc-provider (./scripts/test installs it)",
        );
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("provider.mjs");
        std::fs::write(&script, SCRIPT).unwrap();
        let file = dir.path().join("accounts.json");
        std::fs::write(&file, accounts.to_string()).unwrap();
        let port = free_port();
        let child = Command::new("node")
            .arg(&script)
            .env("OIDC_PROVIDER_MODULE", module)
            .env("PORT", port.to_string())
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env("REDIRECT_URI", redirect_uri)
            .env("ACCOUNTS_FILE", &file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node starts");
        let provider = OidcProvider {
            child,
            port,
            accounts: file,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "oidc-provider did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        provider
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Replaces the accounts (read at each sign-in).
    pub fn set_accounts(&self, accounts: &Value) {
        std::fs::write(&self.accounts, accounts.to_string()).unwrap();
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
