//! Accounts and the clients that use them: a data directory whose users, teams, rules and
//! tokens are made with berth's CLI before the server starts, and podman and skopeo as one
//! client identity ("who") each, with its own storage and auth file inside the test's sandbox.

use std::path::{Path, PathBuf};
use std::process::Output;

use tokio::process::Command;

use super::clients::*;
use super::{Berth, berth_cli, berth_cli_output};

/// A data directory whose identities and rules are set up with the CLI before berth starts.
pub struct Identities {
    dir: tempfile::TempDir,
}

impl Identities {
    pub fn new() -> Identities {
        Identities {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn user(&self, name: &str, password: &str) {
        self.add_user(name, password, &[]);
    }

    pub fn admin(&self, name: &str, password: &str) {
        self.add_user(name, password, &["--admin"]);
    }

    /// `berth user add NAME --password-stdin EXTRA...`.
    pub fn add_user(&self, name: &str, password: &str, extra: &[&str]) {
        let args = [&["user", "add", name, "--password-stdin"][..], extra].concat();
        let output = berth_cli_output(self.path(), &args, Some(&format!("{password}\n")));
        assert!(
            output.status.success(),
            "berth {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A team of `members`.
    pub fn team(&self, name: &str, members: &[&str]) {
        berth_cli(self.path(), &["team", "add", name]);
        for member in members {
            berth_cli(self.path(), &["team", "add-member", name, member]);
        }
    }

    pub fn allow(&self, subject: &str, pattern: &str, actions: &str) {
        berth_cli(self.path(), &["policy", "add", subject, pattern, actions]);
    }

    /// A new access token of `owner` (`user:NAME` or `service-account:NAME`), limited to
    /// `scope` (`PATTERN:ACTIONS`) if given: its secret.
    pub fn token(&self, owner: &str, name: &str, scope: Option<&str>) -> String {
        let mut args = vec!["token", "create", owner, "--name", name];
        if let Some(scope) = scope {
            args.extend(["--scope", scope]);
        }
        let created = berth_cli(self.path(), &args);
        text(&created["secret"]).to_string()
    }

    /// berth in its own auth mode on this data directory.
    pub fn start(&self) -> Berth {
        Berth::builder()
            .env("REGISTRY_AUTH", "berth")
            .env("REGISTRY_STORAGE_DELETE_ENABLED", "true")
            .data(self.path())
            .start()
    }
}

/// The auth file of client identity `who`, empty until `who` logs in (podman and skopeo
/// refuse a `REGISTRY_AUTH_FILE` that does not exist).
pub fn auth_file(sandbox: &Sandbox, who: &str) -> PathBuf {
    let path = sandbox.path(&format!("auth-{who}.json"));
    if !path.exists() {
        std::fs::write(&path, b"{\"auths\": {}}\n").unwrap();
    }
    path
}

/// podman as `who`: its own storage and auth file.
pub fn podman(sandbox: &Sandbox, who: &str) -> Command {
    podman_on(sandbox, who, who)
}

/// podman as `who` on storage `store`.
pub fn podman_on(sandbox: &Sandbox, who: &str, store: &str) -> Command {
    let mut command = sandbox.podman(store);
    command.env("REGISTRY_AUTH_FILE", auth_file(sandbox, who));
    command
}

/// skopeo as `who`: its own auth file (empty until `who` logs in).
pub fn skopeo(sandbox: &Sandbox, who: &str) -> Command {
    let mut command = sandbox.skopeo();
    command.env("REGISTRY_AUTH_FILE", auth_file(sandbox, who));
    command
}

/// `podman login` to `host` as `user` with `secret` on standard input.
pub async fn podman_login(
    sandbox: &Sandbox,
    who: &str,
    host: &str,
    user: &str,
    secret: &str,
) -> Result<String, String> {
    let output = run_output(
        podman(sandbox, who)
            .args([
                "login",
                "--tls-verify=false",
                "-u",
                user,
                "--password-stdin",
            ])
            .arg(host),
        format!("{secret}\n").as_bytes(),
    )
    .await;
    outcome(output)
}

/// Builds a one-file image `localhost/NAME:latest` in `who`'s storage.
pub async fn podman_build(sandbox: &Sandbox, who: &str, name: &str) -> String {
    let context = format!("context-{who}-{name}");
    sandbox.write(
        &format!("{context}/hello.txt"),
        format!("hello from {who}'s {name}\n").as_bytes(),
    );
    let containerfile = sandbox.write(
        &format!("{context}/Containerfile"),
        b"FROM scratch\nCOPY hello.txt /hello.txt\n",
    );
    let local = format!("localhost/{name}:latest");
    run(podman(sandbox, who)
        .args(["build", "--format", "oci", "-t", &local, "-f"])
        .arg(&containerfile)
        .arg(sandbox.path(&context)))
    .await;
    local
}

/// `who` logs in to `host` as `user` with `secret`, builds an image of its own and pushes it
/// to `remote`: the pushed digest.
pub async fn login_build_push(
    sandbox: &Sandbox,
    who: &str,
    (host, user, secret): (&str, &str, &str),
    remote: &str,
) -> String {
    assert_ok(
        podman_login(sandbox, who, host, user, secret).await,
        &format!("{who}'s podman login as {user}"),
    );
    let local = podman_build(sandbox, who, "app").await;
    assert_ok(
        podman_push(sandbox, who, &local, remote).await,
        &format!("{who}'s push to {remote}"),
    )
}

/// `podman push LOCAL docker://REMOTE` as `who`; on success, the digest podman pushed.
pub async fn podman_push(
    sandbox: &Sandbox,
    who: &str,
    local: &str,
    remote: &str,
) -> Result<String, String> {
    let digestfile = sandbox.path(&format!("digest-{who}"));
    let _ = std::fs::remove_file(&digestfile);
    let output = run_output(
        podman(sandbox, who)
            .args(["push", "--tls-verify=false", "--digestfile"])
            .arg(&digestfile)
            .arg(local)
            .arg(format!("docker://{remote}")),
        b"",
    )
    .await;
    outcome(output).map(|_| {
        std::fs::read_to_string(&digestfile)
            .unwrap()
            .trim()
            .to_string()
    })
}

/// `podman pull REMOTE` as `who` into a fresh storage (in `who`'s own, an image podman built
/// keeps the digest of its local, uncompressed manifest); on success, the pulled manifest's
/// digest.
pub async fn podman_pull(sandbox: &Sandbox, who: &str, remote: &str) -> Result<String, String> {
    let store = format!("{who}-pulled");
    let output = run_output(
        podman_on(sandbox, who, &store).args(["pull", "--tls-verify=false", remote]),
        b"",
    )
    .await;
    outcome(output)?;
    let inspected = run_json(podman_on(sandbox, who, &store).args(["inspect", remote])).await;
    Ok(text(&inspected[0]["Digest"]).to_string())
}

/// `skopeo ARGS...` as `who`: its stdout if it succeeded, else its output.
pub async fn skopeo_as(sandbox: &Sandbox, who: &str, args: &[&str]) -> Result<String, String> {
    outcome(run_output(skopeo(sandbox, who).args(args), b"").await)
}

/// `skopeo copy` with extra arguments (credentials) between two image references.
pub async fn skopeo_copy(
    sandbox: &Sandbox,
    who: &str,
    args: &[&str],
    from: &str,
    to: &str,
) -> Result<String, String> {
    let tls = ["copy", "--src-tls-verify=false", "--dest-tls-verify=false"];
    skopeo_as(sandbox, who, &[&tls[..], args, &[from, to]].concat()).await
}

/// A command's stdout if it succeeded, else its stdout and stderr.
pub fn outcome(output: Output) -> Result<String, String> {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{stdout}{stderr}"))
    }
}

/// Asserts a client's failure says that access was refused (and not, say, that the registry
/// could not be reached): podman and skopeo say "denied" or "unauthorized" for a refused
/// push or pull, podman "invalid username/password" for a refused login. A push where the user
/// may not even pull fails at the first `HEAD` of a blob, which berth answers `403 DENIED`
/// (the caller is known and not allowed) with no body, as `HEAD` has none: the clients can
/// only say "403 (Forbidden)". (registry:2 behind a token server answers 401 there, since
/// it cannot tell a short token from a refused caller.)
pub fn assert_refused(result: Result<String, String>, what: &str) {
    match result {
        Ok(stdout) => panic!("{what}: succeeded, expected a refusal\n{stdout}"),
        Err(message) => {
            let lower = message.to_lowercase();
            assert!(
                [
                    "denied",
                    "unauthorized",
                    "invalid username/password",
                    "403 (forbidden)"
                ]
                .iter()
                .any(|refusal| lower.contains(refusal)),
                "{what}: failed, but not with denied/unauthorized:\n{message}"
            );
        }
    }
}

/// `who` pushes `local` to `remote` and pulls it back, which must give the pushed digest;
/// returns that digest.
pub async fn push_and_pull_back(
    sandbox: &Sandbox,
    who: &str,
    local: &str,
    remote: &str,
    what: &str,
) -> String {
    let pushed = assert_ok(podman_push(sandbox, who, local, remote).await, what);
    let pulled = assert_ok(
        podman_pull(sandbox, who, remote).await,
        &format!("pulling back after {what}"),
    );
    assert_eq!(pulled, pushed, "{what}: the pulled digest");
    pushed
}

pub fn assert_ok(result: Result<String, String>, what: &str) -> String {
    result.unwrap_or_else(|message| panic!("{what} failed:\n{message}"))
}
