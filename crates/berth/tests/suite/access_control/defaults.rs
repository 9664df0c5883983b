//! Defaults: berth's own auth unless told otherwise.

use super::*;

/// Runs `berth serve` with only `env` configuring it (not through [`Berth`], which picks
/// `auth: none` and a loopback address), until it says it listens; returns its address
/// and everything it printed.
fn serve_until_listening(addr: &str, env: &[(&str, &str)]) -> (String, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let data = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args(["serve", "--addr", addr, "--data"])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("REGISTRY_") || key.starts_with("BERTH_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
        .env("REGISTRY_LOG_FORMATTER", "json")
        .envs(env.iter().copied());
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    });
    let mut listening = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Ok(json) = serde_json::from_str::<Value>(&line)
            && json["message"] == "listening"
        {
            listening = json["addr"].as_str().unwrap().to_string();
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    (listening, stderr.join().unwrap())
}

#[tokio::test]
async fn berths_own_auth_is_the_default_and_no_auth_is_announced_loudly() {
    // No auth setting at all: berth's own, with a first administrator and challenges.
    let (addr, printed) = serve_until_listening("127.0.0.1:0", &[]);
    assert!(!addr.is_empty(), "{printed}");
    assert!(printed.contains("one-time password"), "{printed}");
    assert!(!printed.contains("AUTHENTICATION IS OFF"), "{printed}");

    // auth: none on loopback: quiet; on every interface: loud, on the terminal.
    let (_, printed) = serve_until_listening("127.0.0.1:0", &[("REGISTRY_AUTH", "none")]);
    assert!(!printed.contains("AUTHENTICATION IS OFF"), "{printed}");
    assert!(!printed.contains("one-time password"), "{printed}");
    let (addr, printed) = serve_until_listening("0.0.0.0:0", &[("REGISTRY_AUTH", "none")]);
    assert!(
        printed.contains(&format!(
            "*** AUTHENTICATION IS OFF (auth: none) and berth listens on {addr}"
        )),
        "{printed}"
    );
}
