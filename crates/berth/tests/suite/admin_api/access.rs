//! Who may use the admin API at all: administrators with unnarrowed credentials, only in berth auth mode; the first start's administrator.

use super::*;

#[tokio::test]
async fn only_administrators_with_unnarrowed_credentials_manage() {
    let api = Api::start();
    let data = api.berth.data_dir().to_path_buf();
    berth_cli(&data, &["user", "add", "dave", "--no-password"]);
    let output = berth_cli_output(
        &data,
        &["user", "add", "erin", "--password-stdin"],
        Some("erin password"),
    );
    assert!(output.status.success());
    let admin_token = berth_cli(&data, &["token", "create", "root", "--name", "automation"]);
    let admin_token = admin_token["secret"].as_str().unwrap().to_string();
    let narrow = berth_cli(
        &data,
        &[
            "token",
            "create",
            "root",
            "--name",
            "narrow",
            "--scope",
            "x/**:pull",
        ],
    );
    let narrow = narrow["secret"].as_str().unwrap().to_string();
    let dave_token = berth_cli(&data, &["token", "create", "dave", "--name", "cli"]);
    let dave_token = dave_token["secret"].as_str().unwrap().to_string();

    let users = "/api/v1/users";
    let cases: Vec<(Credentials, u16, &str)> = vec![
        (Credentials::None, 401, "UNAUTHORIZED"),
        (
            Credentials::Basic("root", "wrong password"),
            401,
            "UNAUTHORIZED",
        ),
        (Credentials::Raw("Basic !!!not base64"), 401, "UNAUTHORIZED"),
        (Credentials::Raw("Negotiate abc"), 401, "UNAUTHORIZED"),
        (Credentials::Bearer("not-a-token"), 401, "UNAUTHORIZED"),
        (
            Credentials::Bearer(
                "berth_0123456789abcdef_0000000000000000000000000000000000000000000000000000000000000000",
            ),
            401,
            "UNAUTHORIZED",
        ),
        (Credentials::Basic("erin", "erin password"), 403, "DENIED"),
        (Credentials::Bearer(&dave_token), 403, "DENIED"),
        (Credentials::Bearer(&narrow), 403, "DENIED"),
        (Credentials::Basic("root", &narrow), 403, "DENIED"),
    ];
    for (credentials, status, code) in cases {
        let (actual, body) = api.call(Method::GET, users, &[], None, credentials).await;
        assert_eq!(
            (actual, body["errors"][0]["code"].as_str().unwrap()),
            (status, code),
            "{body}"
        );
    }
    let response = client().get(api.berth.url(users)).send().await.unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"berth admin API\""
    );

    // Administrators: by password, by access token as Basic password or as bearer.
    for credentials in [
        ROOT,
        Credentials::Basic("root", &admin_token),
        Credentials::Bearer(&admin_token),
    ] {
        let (status, body) = api.call(Method::GET, users, &[], None, credentials).await;
        assert_eq!(status, 200, "{body}");
    }
    // Anyone authenticated may ask who they are.
    let (status, me) = api
        .call(
            Method::GET,
            "/api/v1/me",
            &[],
            None,
            Credentials::Bearer(&narrow),
        )
        .await;
    assert_eq!((status, me["limited"].clone()), (200, json!(true)));

    // A body over the limit is refused unread.
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/htpasswd/import",
            &[],
            Some(json!({"content": "x".repeat(2 << 20)})),
            ROOT,
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["code"].clone()),
        (413, json!("INVALID"))
    );
}

#[tokio::test]
async fn without_berth_auth_there_is_no_admin_api() {
    let berth = Berth::start(); // auth: none
    let response = client()
        .get(berth.url("/api/v1/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNSUPPORTED");
}

#[tokio::test]
async fn the_first_start_creates_an_administrator_once() {
    let mut berth = Berth::builder().env("REGISTRY_AUTH", "berth").start();
    // Printed to the terminal (stderr), with the login line, and not in the JSON log.
    let password = {
        // stderr and stdout are read by separate threads: the line may arrive just after
        // "listening".
        let deadline = Instant::now() + Duration::from_secs(10);
        let logs = loop {
            let logs = berth.log_text();
            if logs.contains("podman login") || Instant::now() > deadline {
                break logs;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let line = logs
            .lines()
            .find(|l| l.contains("podman login"))
            .unwrap_or_else(|| panic!("no login line in:\n{logs}"));
        assert!(
            line.contains(&format!("{} -u admin -p ", berth.host())),
            "{line}"
        );
        let password = line.rsplit(' ').next().unwrap().to_string();
        assert!(
            !logs
                .lines()
                .any(|l| l.starts_with('{') && l.contains(&password)),
            "the password reached the structured log"
        );
        password
    };
    let http = client();
    let base = http.get(berth.url("/v2/")).send().await.unwrap();
    assert_eq!(base.status(), 401);
    let logged_in = http
        .get(berth.url("/v2/"))
        .basic_auth("admin", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(logged_in.status(), 200);

    // Once only: a restart prints nothing new, and the password still works.
    berth.restart();
    assert_eq!(
        berth.log_text().matches("one-time password").count(),
        1,
        "{}",
        berth.log_text()
    );
    let users = berth.cli(&["user", "list"]);
    assert_eq!(users.as_array().unwrap().len(), 1);
    assert_eq!(users[0]["admin"], true);

    // The operator changes it as the message says.
    let output = berth_cli_output(
        berth.data_dir(),
        &["user", "passwd", "admin", "--password-stdin"],
        Some("a new admin password\n"),
    );
    assert!(output.status.success(), "{output:?}");
    let response = http
        .get(berth.url("/api/v1/me"))
        .basic_auth("admin", Some("a new admin password"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
