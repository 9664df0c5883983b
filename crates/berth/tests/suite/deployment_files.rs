//! The Dockerfile and the compose files (docker-compose.yml with MinIO, docker-compose.ipfs.yml
//! with Kubo). No Docker engine runs on the machines these tests run on, so the images are
//! not built here; what can be checked without one is: the compose files against the Compose
//! specification's schema, the configuration the files give berth
//! (through berth's own validation), the image's health check command, and the Dockerfile's
//! shape (non-root, health check, the registry:2 data path).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::Berth;

fn repository_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name)
}

fn python() -> PathBuf {
    std::env::var("BERTH_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let venv = repository_file(".venv/bin/python");
            assert!(
                venv.is_file(),
                "no test Python: run the tests with ./scripts/test"
            );
            venv
        })
}

/// `berth config check` on an empty file with `env`: what the service would run with.
fn check_environment(env: &[(String, String)]) -> String {
    let empty = tempfile::NamedTempFile::new().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["config", "check"])
        .arg(empty.path())
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    text
}

const COMPOSE_FILES: [&str; 2] = ["docker-compose.yml", "docker-compose.ipfs.yml"];

#[test]
fn compose_files_follow_the_compose_specification() {
    let output = Command::new(python())
        .args([
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
        ])
        .args(COMPOSE_FILES.map(repository_file))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A compose file, and the configuration it gives berth as `berth config check` explains it.
fn compose_configuration(file: &str) -> (serde_yaml_ng::Value, String) {
    let compose: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(repository_file(file)).unwrap()).unwrap();
    let environment = compose["services"]["berth"]["environment"]
        .as_mapping()
        .expect("berth's environment");
    let env: Vec<(String, String)> = environment
        .iter()
        .map(|(k, v)| {
            let value = match v {
                serde_yaml_ng::Value::String(s) => s.clone(),
                other => serde_yaml_ng::to_string(other).unwrap().trim().to_string(),
            };
            (k.as_str().unwrap().to_string(), value)
        })
        .collect();
    let explained = check_environment(&env);
    assert!(
        explained.contains("postgres://berth:***@postgres:5432/berth"),
        "{explained}"
    );
    assert!(
        !explained.contains("change-me"),
        "no password is shown: {explained}"
    );
    (compose, explained)
}

#[test]
fn compose_gives_berth_a_valid_production_configuration() {
    let (compose, explained) = compose_configuration("docker-compose.yml");
    assert!(explained.contains("http://minio:9000"), "{explained}");
    for service in ["postgres", "minio", "bucket"] {
        assert!(
            compose["services"][service].is_mapping(),
            "{service} service"
        );
    }
}

#[test]
fn ipfs_compose_gives_berth_postgresql_and_a_kubo_node() {
    let (compose, explained) = compose_configuration("docker-compose.ipfs.yml");
    assert!(explained.contains("http://kubo:5001"), "{explained}");
    let kubo = &compose["services"]["kubo"];
    assert!(
        kubo["image"].as_str().unwrap().starts_with("ipfs/kubo:"),
        "Kubo's official image"
    );
    let published: Vec<&str> = kubo["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        !published.iter().any(|p| p.contains("5001")),
        "the RPC API is never published: {published:?}"
    );
}

#[test]
fn dockerfile_runs_unprivileged_with_a_health_check_and_valid_settings() {
    let dockerfile = std::fs::read_to_string(repository_file("Dockerfile")).unwrap();
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("FROM ")).count(),
        2,
        "a build stage and a runtime stage"
    );
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    assert!(user != "root" && user != "0", "runs as {user}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("HEALTHCHECK") && l.contains("\"berth\", \"health\""))
    );
    assert!(lines.contains(&"EXPOSE 5000"));
    assert!(lines.contains(&"VOLUME /var/lib/registry"));

    // The ENV settings pass berth's validation.
    let start = dockerfile.find("ENV ").expect("ENV settings");
    let env: Vec<(String, String)> = dockerfile[start + 4..]
        .lines()
        .map_while(|l| {
            let l = l.trim().trim_end_matches('\\').trim();
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    assert!(env.len() >= 3, "{env:?}");
    let explained = check_environment(&env);
    assert!(explained.contains("/var/lib/registry"), "{explained}");
}

#[tokio::test]
async fn the_health_command_asks_the_running_server() {
    let health = |addr: &str, env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
        command.args(["health", "--addr", addr]);
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let berth = Berth::start();
    assert!(health(&berth.host(), &[]).status.success());

    let nothing = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let down = health(&nothing.to_string(), &[]);
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("unhealthy"));

    // Over TLS, with a self-signed certificate.
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let tls_env = [
        ("REGISTRY_HTTP_TLS_CERTIFICATE", cert.to_str().unwrap()),
        ("REGISTRY_HTTP_TLS_KEY", key.to_str().unwrap()),
    ];
    let secure = Berth::builder()
        .env(tls_env[0].0, tls_env[0].1)
        .env(tls_env[1].0, tls_env[1].1)
        .start();
    assert!(health(&secure.host(), &tls_env).status.success());
}
