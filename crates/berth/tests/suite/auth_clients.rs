//! Identity and access with real clients: podman and skopeo log in to berth as users with
//! different rights, with passwords, access tokens and a service account's token; anonymous
//! pulls of public repositories; htpasswd mode as registry:2's drop-in; and berth as the token
//! server of Debian's `docker-registry` (distribution 2.8).
//!
//! Identities and rules are made with berth's CLI before the server starts (the server caches
//! them for a few seconds). Every client identity ("who") has its own podman storage and its own
//! auth file (`REGISTRY_AUTH_FILE`) inside the test's sandbox, so that logins do not mix.

use std::path::{Path, PathBuf};

use crate::support::accounts::*;
use crate::support::clients::*;
use crate::support::official_registry::OfficialRegistry;
use crate::support::{Berth, berth_cli, client, tool};
use serde_json::Value;

/// base64 of "USER:PASSWORD", the form of the `auth` field of a containers auth file (as
/// reqwest encodes it for Basic authentication).
fn basic_credentials(user: &str, password: &str) -> String {
    let request = client()
        .get("http://127.0.0.1/")
        .basic_auth(user, Some(password))
        .build()
        .unwrap();
    let header = request.headers()["authorization"].to_str().unwrap();
    header.strip_prefix("Basic ").unwrap().to_string()
}

/// `skopeo list-tags` as `who`, with extra arguments (credentials).
async fn skopeo_tags_as(
    sandbox: &Sandbox,
    who: &str,
    args: &[&str],
    repository: &str,
) -> Vec<String> {
    let list = [&["list-tags", "--tls-verify=false"][..], args].concat();
    let repository = format!("docker://{repository}");
    let listed = assert_ok(
        skopeo_as(sandbox, who, &[&list[..], &[&repository]].concat()).await,
        "skopeo list-tags",
    );
    let listed: Value = serde_json::from_str(&listed).unwrap();
    serde_json::from_value(listed["Tags"].clone()).unwrap_or_else(|e| panic!("{e}: {listed}"))
}

/// A one-layer OCI image layout made with umoci: `LAYOUT:v1`.
async fn umoci_image(sandbox: &Sandbox, content: &[u8]) -> String {
    let layout = sandbox.path("layout");
    run(sandbox.umoci().args(["init", "--layout"]).arg(&layout)).await;
    let image = format!("{}:v1", layout.display());
    run(sandbox.umoci().args(["new", "--image", &image])).await;
    umoci_layer(
        sandbox,
        &image,
        "bundle",
        &[("hello.txt", content.to_vec())],
    )
    .await;
    format!("oci:{image}")
}

/// The digest of an image, as skopeo (as `who`, with extra arguments) sees it.
async fn skopeo_digest(
    sandbox: &Sandbox,
    who: &str,
    args: &[&str],
    image: &str,
) -> Result<String, String> {
    let stdout = skopeo_as(
        sandbox,
        who,
        &[&["inspect", "--tls-verify=false"][..], args, &[image]].concat(),
    )
    .await?;
    let inspected: Value = serde_json::from_str(&stdout).unwrap();
    Ok(text(&inspected["Digest"]).to_string())
}

#[tokio::test]
async fn podman_users_with_different_rights() {
    let ids = Identities::new();
    ids.user("alice", "alice-password");
    ids.user("bob", "bob-password");
    ids.user("carol", "carol-password");
    ids.allow("user:alice", "team-a/**", "pull,push");
    ids.allow("user:bob", "team-a/**", "pull");
    ids.user("dave", "dave-password");
    ids.team("builders", &["dave"]);
    ids.allow("team:builders", "team-a/**", "pull,push");
    let berth = ids.start();
    let host = berth.host();
    let sandbox = Sandbox::new();

    // A wrong password is refused at login, and nothing is stored.
    let wrong = podman_login(&sandbox, "alice", &host, "alice", "not-alices-password").await;
    assert_refused(wrong, "podman login with a wrong password");
    let unknown = podman_login(&sandbox, "alice", &host, "nobody", "whatever-password").await;
    assert_refused(unknown, "podman login as an unknown user");
    let stored = std::fs::read_to_string(auth_file(&sandbox, "alice")).unwrap();
    assert!(
        !stored.contains(&host),
        "nothing stored after failed logins: {stored}"
    );

    assert_ok(
        podman_login(&sandbox, "alice", &host, "alice", "alice-password").await,
        "alice's podman login",
    );
    // What podman 4.3 keeps after logging in to berth: containers/image's login checks the
    // credentials with a GET /token (it never asks for an offline token, so berth's
    // refresh_token is not offered) and stores `auth`, base64 of "user:password", not an
    // identity token. (`docker login` would store the refresh token as `identitytoken`.)
    let stored: Value =
        serde_json::from_slice(&std::fs::read(auth_file(&sandbox, "alice")).unwrap()).unwrap();
    let entry = &stored["auths"][host.as_str()];
    if let Some(identity_token) = entry["identitytoken"].as_str() {
        assert!(
            !identity_token.contains("alice-password"),
            "the identity token is not the password: {stored}"
        );
    } else {
        assert_eq!(
            entry["auth"],
            basic_credentials("alice", "alice-password"),
            "podman stores user:password when it stores no identity token: {stored}"
        );
    }

    // alice pushes to team-a/ and pulls back.
    let local = podman_build(&sandbox, "alice", "app").await;
    let remote = format!("{host}/team-a/app:v1");
    let pushed = push_and_pull_back(&sandbox, "alice", &local, &remote, "alice's push").await;
    // ... but nowhere else.
    assert_refused(
        podman_push(&sandbox, "alice", &local, &format!("{host}/team-b/app:v1")).await,
        "alice's push outside team-a/",
    );

    // bob may pull, not push.
    assert_ok(
        podman_login(&sandbox, "bob", &host, "bob", "bob-password").await,
        "bob's podman login",
    );
    let pulled = assert_ok(podman_pull(&sandbox, "bob", &remote).await, "bob's pull");
    assert_eq!(pulled, pushed, "bob pulled what alice pushed");
    let bobs = podman_build(&sandbox, "bob", "app").await;
    assert_refused(
        podman_push(&sandbox, "bob", &bobs, &format!("{host}/team-a/app:v2")).await,
        "bob's push",
    );

    // carol may log in, but has no rights on team-a/.
    assert_ok(
        podman_login(&sandbox, "carol", &host, "carol", "carol-password").await,
        "carol's podman login",
    );
    assert_refused(
        podman_pull(&sandbox, "carol", &remote).await,
        "carol's pull",
    );
    // Nor has anyone who is not logged in.
    assert_refused(
        podman_pull(&sandbox, "nobody", &remote).await,
        "an anonymous pull",
    );

    // dave may push as a member of a team that may.
    let dave = (host.as_str(), "dave", "dave-password");
    login_build_push(&sandbox, "dave", dave, &format!("{host}/team-a/app:v3")).await;

    // Only alice's and dave's pushes happened.
    let tags = skopeo_tags_as(&sandbox, "alice", &[], &format!("{host}/team-a/app")).await;
    assert_eq!(tags, ["v1", "v3"]);
}

#[tokio::test]
async fn skopeo_with_passwords_and_access_tokens() {
    let ids = Identities::new();
    ids.user("alice", "alice-password");
    ids.allow("user:alice", "team-a/**", "pull,push");
    let full = ids.token("user:alice", "laptop", None);
    let read_only = ids.token("user:alice", "deploy", Some("team-a/**:pull"));
    ids.admin("root", "root-password");
    let berth = ids.start();
    let host = berth.host();
    let sandbox = Sandbox::new();
    let image = umoci_image(&sandbox, b"hello from skopeo\n").await;

    // With the password.
    let creds = "alice:alice-password";
    let remote = format!("docker://{host}/team-a/skopeo:v1");
    let repository = format!("{host}/team-a/skopeo");
    let list_tags =
        async || skopeo_tags_as(&sandbox, "none", &["--creds", creds], &repository).await;
    assert_ok(
        skopeo_copy(&sandbox, "none", &["--dest-creds", creds], &image, &remote).await,
        "skopeo copy --dest-creds",
    );
    let digest = assert_ok(
        skopeo_digest(&sandbox, "none", &["--creds", creds], &remote).await,
        "skopeo inspect --creds",
    );
    let copied = sandbox.path("copied");
    let copied_ref = format!("oci:{}:v1", copied.display());
    assert_ok(
        skopeo_copy(
            &sandbox,
            "none",
            &["--src-creds", creds],
            &remote,
            &copied_ref,
        )
        .await,
        "skopeo copy --src-creds",
    );
    assert_eq!(
        text(&layout_descriptor(&copied, "v1")["digest"]),
        digest,
        "the copy back is the image pushed"
    );
    // A wrong password, no credentials: refused both ways.
    let wrong = "alice:wrong-password";
    assert_refused(
        skopeo_copy(
            &sandbox,
            "none",
            &["--src-creds", wrong],
            &remote,
            &copied_ref,
        )
        .await,
        "skopeo copy --src-creds with a wrong password",
    );
    assert_refused(
        skopeo_copy(&sandbox, "none", &["--dest-creds", wrong], &image, &remote).await,
        "skopeo copy --dest-creds with a wrong password",
    );
    assert_refused(
        skopeo_copy(&sandbox, "none", &[], &remote, &copied_ref).await,
        "skopeo copy without credentials",
    );

    // An access token in place of the password.
    let with_token = format!("alice:{full}");
    let remote2 = format!("docker://{host}/team-a/skopeo:v2");
    assert_ok(
        skopeo_copy(
            &sandbox,
            "none",
            &["--dest-creds", &with_token],
            &image,
            &remote2,
        )
        .await,
        "skopeo copy --dest-creds with an access token",
    );
    assert_eq!(
        assert_ok(
            skopeo_digest(&sandbox, "none", &["--creds", &with_token], &remote2).await,
            "skopeo inspect with an access token"
        ),
        digest
    );
    // A token under another user's name is refused.
    assert_refused(
        skopeo_copy(
            &sandbox,
            "none",
            &["--src-creds", &format!("bob:{full}")],
            &remote,
            &copied_ref,
        )
        .await,
        "alice's token under another name",
    );

    // A pull-only token pulls, and cannot push even where its owner may.
    let with_read_only = format!("alice:{read_only}");
    assert_ok(
        skopeo_copy(
            &sandbox,
            "none",
            &["--src-creds", &with_read_only],
            &remote,
            &copied_ref,
        )
        .await,
        "skopeo copy --src-creds with a pull-only token",
    );
    assert_refused(
        skopeo_copy(
            &sandbox,
            "none",
            &["--dest-creds", &with_read_only],
            &image,
            &format!("docker://{host}/team-a/skopeo:v3"),
        )
        .await,
        "skopeo copy --dest-creds with a pull-only token",
    );
    let tags = list_tags().await;
    assert_eq!(tags, ["v1", "v2"]);

    // alice may not delete; an administrator may.
    let delete = ["delete", "--tls-verify=false", "--creds"];
    assert_refused(
        skopeo_as(
            &sandbox,
            "none",
            &[&delete[..], &[creds, &remote2]].concat(),
        )
        .await,
        "alice's skopeo delete",
    );
    let root = "root:root-password";
    assert_ok(
        skopeo_as(&sandbox, "none", &[&delete[..], &[root, &remote2]].concat()).await,
        "an administrator's skopeo delete",
    );
    let tags = list_tags().await;
    assert!(tags.is_empty(), "v1 and v2 were one manifest: {tags:?}");
}

#[tokio::test]
async fn a_service_accounts_token_with_podman_login() {
    let ids = Identities::new();
    berth_cli(ids.path(), &["service-account", "add", "ci"]);
    ids.allow("service-account:ci", "ci/**", "pull,push");
    let token = ids.token("service-account:ci", "pipeline", Some("ci/app-*:pull,push"));
    let berth = ids.start();
    let host = berth.host();
    let sandbox = Sandbox::new();

    // The token is the password of the account's name, and of no other.
    assert_refused(
        podman_login(&sandbox, "ci", &host, "someone-else", &token).await,
        "podman login with the token under another name",
    );
    assert_ok(
        podman_login(&sandbox, "ci", &host, "ci", &token).await,
        "podman login with the service account's token",
    );

    let local = podman_build(&sandbox, "ci", "app").await;
    let remote = format!("{host}/ci/app-web:v1");
    push_and_pull_back(
        &sandbox,
        "ci",
        &local,
        &remote,
        "push within the token's scope",
    )
    .await;
    // The account may push to ci/other, but its token may not.
    assert_refused(
        podman_push(&sandbox, "ci", &local, &format!("{host}/ci/other:v1")).await,
        "push outside the token's scope, inside the account's rules",
    );
    assert_refused(
        podman_push(&sandbox, "ci", &local, &format!("{host}/team-a/app:v1")).await,
        "push outside the token's scope and the account's rules",
    );
}

#[tokio::test]
async fn anonymous_pull_of_a_public_repository() {
    let ids = Identities::new();
    ids.user("alice", "alice-password");
    ids.allow("user:alice", "team-a/**", "pull,push");
    ids.allow("anonymous", "*/public-*", "pull");
    let berth = ids.start();
    let host = berth.host();
    let sandbox = Sandbox::new();
    let image = umoci_image(&sandbox, b"hello, world\n").await;
    let creds = ["--dest-creds", "alice:alice-password"];
    let public = format!("docker://{host}/team-a/public-site:v1");
    let private = format!("docker://{host}/team-a/private:v1");
    for remote in [&public, &private] {
        assert_ok(
            skopeo_copy(&sandbox, "alice", &creds, &image, remote).await,
            "alice's push",
        );
    }

    // Without credentials: the public repository pulls, with skopeo and podman.
    let pulled = sandbox.path("pulled");
    let pulled_ref = format!("oci:{}:v1", pulled.display());
    assert_ok(
        skopeo_copy(&sandbox, "anonymous", &[], &public, &pulled_ref).await,
        "anonymous skopeo copy of the public repository",
    );
    let digest = text(&layout_descriptor(&pulled, "v1")["digest"]).to_string();
    let expected = assert_ok(
        skopeo_digest(&sandbox, "anonymous", &[], &public).await,
        "anonymous skopeo inspect",
    );
    assert_eq!(digest, expected);
    let podman_digest = assert_ok(
        podman_pull(
            &sandbox,
            "anonymous",
            &format!("{host}/team-a/public-site:v1"),
        )
        .await,
        "anonymous podman pull",
    );
    assert_eq!(podman_digest, digest);

    // ... and nothing else.
    assert_refused(
        skopeo_copy(&sandbox, "anonymous", &[], &private, &pulled_ref).await,
        "anonymous pull of a private repository",
    );
    for target in [
        format!("docker://{host}/team-a/public-site:v2"),
        format!("docker://{host}/other/public-x:v1"),
    ] {
        assert_refused(
            skopeo_copy(&sandbox, "anonymous", &[], &image, &target).await,
            &format!("anonymous push to {target}"),
        );
    }
    let tags = skopeo_tags_as(
        &sandbox,
        "anonymous",
        &[],
        &format!("{host}/team-a/public-site"),
    )
    .await;
    assert_eq!(tags, ["v1"]);
}

/// `htpasswd -Bbc FILE USER PASSWORD` (Debian's apache2-utils): a bcrypt entry.
fn htpasswd_file(dir: &Path, user: &str, password: &str) -> PathBuf {
    let file = dir.join("htpasswd");
    let output = std::process::Command::new(tool("htpasswd"))
        .arg("-Bbc")
        .arg(&file)
        .args([user, password])
        .output()
        .expect("htpasswd runs");
    assert!(output.status.success(), "htpasswd: {output:?}");
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .starts_with(&format!("{user}:$2y$")),
        "a bcrypt entry"
    );
    file
}

#[tokio::test]
async fn htpasswd_mode_as_a_registry_v2_drop_in() {
    let auth = tempfile::tempdir().unwrap();
    let file = htpasswd_file(auth.path(), "carol", "carol-password");
    // Exactly the environment of the registry:2 compose file (../shared/seeds/002).
    let berth = Berth::builder()
        .env("REGISTRY_AUTH", "htpasswd")
        .env("REGISTRY_AUTH_HTPASSWD_REALM", "Registry")
        .env("REGISTRY_AUTH_HTPASSWD_PATH", file.to_str().unwrap())
        .env("REGISTRY_STORAGE_DELETE_ENABLED", "true")
        .start();
    let host = berth.host();

    for path in ["/v2/", "/v2/team-a/app/tags/list"] {
        let response = client().get(berth.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 401, "anonymous GET {path}");
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Basic realm="Registry""#,
            "challenge of GET {path}"
        );
    }

    let sandbox = Sandbox::new();
    assert_refused(
        podman_login(&sandbox, "carol", &host, "carol", "wrong-password").await,
        "podman login with a wrong password",
    );
    let remote = format!("{host}/team-a/app:v1");
    let carol = (host.as_str(), "carol", "carol-password");
    let pushed = login_build_push(&sandbox, "carol", carol, &remote).await;
    assert_ok(
        podman_login(&sandbox, "carol-again", &host, "carol", "carol-password").await,
        "podman login in a fresh client",
    );
    let pulled = assert_ok(
        podman_pull(&sandbox, "carol-again", &remote).await,
        "pull in a fresh client",
    );
    assert_eq!(pulled, pushed);
    assert_refused(
        podman_pull(&sandbox, "anonymous", &remote).await,
        "anonymous pull",
    );

    // The same file imported into berth's identity store: carol logs in with her password.
    let ids = Identities::new();
    berth_cli(ids.path(), &["htpasswd", "import", file.to_str().unwrap()]);
    ids.allow("user:carol", "team-a/**", "pull,push");
    let berth = ids.start();
    let host = berth.host();
    assert_refused(
        podman_login(&sandbox, "carol-berth", &host, "carol", "wrong-password").await,
        "podman login to berth mode with a wrong password",
    );
    // (The login is the imported password's check.)
    let carol = (host.as_str(), "carol", "carol-password");
    login_build_push(
        &sandbox,
        "carol-berth",
        carol,
        &format!("{host}/team-a/app:v1"),
    )
    .await;
}

#[tokio::test]
async fn berth_is_the_token_server_of_the_official_registry() {
    let ids = Identities::new();
    ids.user("alice", "alice-password");
    ids.user("bob", "bob-password");
    ids.user("mallory", "mallory-password");
    ids.allow("user:alice", "team-a/**", "pull,push");
    ids.allow("user:bob", "team-a/**", "pull");
    let berth = ids.start();

    let response = client()
        .get(berth.url("/auth/certificate.pem"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET /auth/certificate.pem");
    let certificate = response.text().await.unwrap();
    assert!(
        certificate.contains("-----BEGIN CERTIFICATE-----"),
        "{certificate}"
    );
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("berth.pem");
    std::fs::write(&bundle, &certificate).unwrap();
    // berth's defaults: auth.berth.service and auth.berth.issuer are both "berth".
    let registry = OfficialRegistry::start(
        dir.path(),
        Some(&format!(
            "  token:\n    realm: {}\n    service: berth\n    issuer: berth\n    rootcertbundle: {}\n",
            berth.url("/token"),
            bundle.display()
        )),
    );
    let host = registry.host().to_string();

    // The official registry sends clients to berth.
    let response = client()
        .get(format!("http://{host}/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"{}\"", berth.url("/token"))),
        "{challenge}"
    );

    let sandbox = Sandbox::new();
    let image = umoci_image(&sandbox, b"pushed through berth's tokens\n").await;
    let remote = format!("docker://{host}/team-a/app:v1");
    let alice = ["--dest-creds", "alice:alice-password"];
    let pushed = skopeo_copy(&sandbox, "none", &alice, &image, &remote).await;
    assert_ok(
        pushed.map_err(|e| format!("{e}\n--- docker-registry's log:\n{}", registry.log_text())),
        "alice's push to the official registry",
    );
    let digest = assert_ok(
        skopeo_digest(
            &sandbox,
            "none",
            &["--creds", "alice:alice-password"],
            &remote,
        )
        .await,
        "alice's inspect",
    );
    let pulled = sandbox.path("pulled");
    let pulled_ref = format!("oci:{}:v1", pulled.display());
    assert_ok(
        skopeo_copy(
            &sandbox,
            "none",
            &["--src-creds", "bob:bob-password"],
            &remote,
            &pulled_ref,
        )
        .await,
        "bob's pull from the official registry",
    );
    assert_eq!(text(&layout_descriptor(&pulled, "v1")["digest"]), digest);

    // podman, logged in to the official registry with berth's password, pushes too.
    assert_ok(
        podman_login(&sandbox, "alice", &host, "alice", "alice-password").await,
        "alice's podman login to the official registry",
    );
    let local = podman_build(&sandbox, "alice", "app").await;
    assert_ok(
        podman_push(
            &sandbox,
            "alice",
            &local,
            &format!("{host}/team-a/podman:v1"),
        )
        .await,
        "alice's podman push to the official registry",
    );

    // Who berth's policy does not allow is refused by the official registry.
    assert_refused(
        skopeo_copy(
            &sandbox,
            "none",
            &["--dest-creds", "bob:bob-password"],
            &image,
            &format!("docker://{host}/team-a/app:v2"),
        )
        .await,
        "bob's push to the official registry",
    );
    assert_refused(
        skopeo_copy(
            &sandbox,
            "none",
            &["--src-creds", "mallory:mallory-password"],
            &remote,
            &pulled_ref,
        )
        .await,
        "mallory's pull from the official registry",
    );
    assert_refused(
        skopeo_copy(
            &sandbox,
            "none",
            &alice,
            &image,
            &format!("docker://{host}/team-b/app:v1"),
        )
        .await,
        "alice's push outside team-a/ to the official registry",
    );
    assert_refused(
        skopeo_copy(&sandbox, "none", &[], &remote, &pulled_ref).await,
        "an anonymous pull from the official registry",
    );
    let tags = skopeo_tags_as(
        &sandbox,
        "none",
        &["--creds", "alice:alice-password"],
        &format!("{host}/team-a/app"),
    )
    .await;
    assert_eq!(tags, ["v1"]);
}

/// Anonymous requests to every kind of endpoint, as `(method, path)`.
const ANONYMOUS_REQUESTS: &[(&str, &str)] = &[
    ("GET", "/v2/"),
    ("GET", "/v2/team-a/app/tags/list"),
    ("GET", "/v2/team-a/app/manifests/v1"),
    ("HEAD", "/v2/team-a/app/manifests/v1"),
    (
        "GET",
        "/v2/team-a/app/blobs/sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
    ("POST", "/v2/team-a/app/blobs/uploads/"),
    ("PUT", "/v2/team-a/app/manifests/v1"),
    ("DELETE", "/v2/team-a/app/manifests/v1"),
];

/// Status and `WWW-Authenticate` of an anonymous request.
async fn anonymous_answer(base: &str, method: &str, path: &str) -> (u16, Option<String>) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let response = client()
        .request(method, format!("{base}{path}"))
        .send()
        .await
        .unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap().to_string());
    (response.status().as_u16(), challenge)
}

/// registry:2 and berth in htpasswd mode, both with the compose file's settings.
fn htpasswd_pair(dir: &Path) -> (Berth, OfficialRegistry) {
    let file = htpasswd_file(dir, "carol", "carol-password");
    let berth = Berth::builder()
        .env("REGISTRY_AUTH", "htpasswd")
        .env("REGISTRY_AUTH_HTPASSWD_REALM", "Registry")
        .env("REGISTRY_AUTH_HTPASSWD_PATH", file.to_str().unwrap())
        .env("REGISTRY_STORAGE_DELETE_ENABLED", "true")
        .start();
    let registry = OfficialRegistry::start(
        dir,
        Some(&format!(
            "  htpasswd:\n    realm: Registry\n    path: {}\n",
            file.display()
        )),
    );
    (berth, registry)
}

#[tokio::test]
async fn htpasswd_mode_answers_anonymous_requests_like_registry_v2() {
    let dir = tempfile::tempdir().unwrap();
    let (berth, registry) = htpasswd_pair(dir.path());
    for &(method, path) in ANONYMOUS_REQUESTS {
        let official = anonymous_answer(&registry.base.clone(), method, path).await;
        assert_eq!(
            official,
            (401, Some(r#"Basic realm="Registry""#.to_string())),
            "registry:2's answer to {method} {path}"
        );
        let ours = anonymous_answer(&berth.base_url(), method, path).await;
        assert_eq!(ours, official, "berth's answer to {method} {path}");
    }
}

#[tokio::test]
async fn htpasswd_mode_refuses_an_anonymous_catalog_like_registry_v2() {
    let dir = tempfile::tempdir().unwrap();
    let (berth, registry) = htpasswd_pair(dir.path());
    let official = anonymous_answer(&registry.base.clone(), "GET", "/v2/_catalog").await;
    assert_eq!(
        official,
        (401, Some(r#"Basic realm="Registry""#.to_string()))
    );
    let ours = anonymous_answer(&berth.base_url(), "GET", "/v2/_catalog").await;
    assert_eq!(
        ours, official,
        "berth's answer to an anonymous GET /v2/_catalog"
    );
}
