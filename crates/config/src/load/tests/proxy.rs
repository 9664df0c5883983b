//! registry:2's `proxy` and berth's `remotes`.

use super::*;

#[test]
fn registry_v2_proxy_from_the_file_and_the_environment() {
    let loaded = ok(
        "proxy:\n  remoteurl: https://registry-1.docker.io\n  username: bob\n  password: hunter2\n  ttl: 168h\n",
        &[],
    );
    let proxy = &loaded.config.proxy;
    assert_eq!(
        proxy.remoteurl.as_ref().unwrap().as_str(),
        "https://registry-1.docker.io/"
    );
    assert_eq!(proxy.username.as_deref(), Some("bob"));
    assert_eq!(proxy.password.as_deref(), Some("hunter2"));
    assert_eq!(proxy.ttl, Some(Duration::from_secs(168 * 3600)));
    assert!(
        !format!("{:?}", loaded.config).contains("hunter2"),
        "the password is never shown"
    );

    let loaded = ok(
        "",
        &[
            ("REGISTRY_PROXY_REMOTEURL", "http://127.0.0.1:5001"),
            ("REGISTRY_PROXY_USERNAME", "bob"),
            ("REGISTRY_PROXY_PASSWORD", "hunter2"),
        ],
    );
    assert_eq!(
        loaded.config.proxy.remoteurl.as_ref().unwrap().as_str(),
        "http://127.0.0.1:5001/"
    );
    assert_eq!(setting(&loaded, "proxy.password"), "(set)");
}

#[test]
fn remotes_load_with_defaults() {
    let loaded = ok(
        "remotes:\n  hub:\n    prefix: hub\n    urls: [https://mirror.example.com, https://registry-1.docker.io]\n    username: bob\n    password: hunter2\n    immutabletags: ['v*.*.*']\n  quay:\n    prefix: mirrors/quay\n    urls: [https://quay.io]\n    revalidateafter: 1m\n    servestale: false\n    cafile: /etc/berth/quay-ca.pem\n    insecure: true\n",
        &[],
    );
    let hub = &loaded.config.remotes["hub"];
    assert_eq!(hub.prefix.as_deref(), Some("hub"));
    assert_eq!(hub.urls.len(), 2);
    assert_eq!(hub.revalidateafter, Duration::from_secs(600));
    assert_eq!(hub.negativettl, Duration::from_secs(300));
    assert!(hub.servestale);
    assert_eq!(hub.immutabletags[0].as_str(), "v*.*.*");
    assert_eq!(hub.cafile, None);
    assert!(!hub.insecure);
    let quay = &loaded.config.remotes["quay"];
    assert_eq!(quay.revalidateafter, Duration::from_secs(60));
    assert!(!quay.servestale);
    assert_eq!(quay.cafile, Some(PathBuf::from("/etc/berth/quay-ca.pem")));
    assert!(quay.insecure);
}

#[test]
fn bad_remotes_are_refused_with_the_key_path() {
    only_problem(
        "remotes:\n  hub:\n    urls: [https://registry-1.docker.io]\n",
        &[],
        "remotes.hub.prefix",
        "required",
        Source::File,
    );
    only_problem(
        "remotes:\n  hub:\n    prefix: hub\n",
        &[],
        "remotes.hub.urls",
        "at least one",
        Source::File,
    );
    only_problem(
        "remotes:\n  hub:\n    prefix: Hub!\n    urls: [https://registry-1.docker.io]\n",
        &[],
        "remotes.hub.prefix",
        "not a repository name prefix",
        Source::File,
    );
    only_problem(
        "remotes:\n  hub:\n    prefix: hub\n    urls: [https://registry-1.docker.io]\n    username: bob\n",
        &[],
        "remotes.hub.password",
        "set both or neither",
        Source::File,
    );
    let error = err(
        "remotes:\n  a:\n    prefix: mirrors\n    urls: [https://a.example.com]\n  b:\n    prefix: mirrors/b\n    urls: [https://b.example.com]\n",
        &[],
    );
    assert!(
        error
            .problems
            .iter()
            .any(|p| p.path.starts_with("remotes.") && p.message.contains("overlaps")),
        "{error}"
    );
    let error = err(
        "proxy:\n  remoteurl: https://registry-1.docker.io\nremotes:\n  a:\n    prefix: hub\n    urls: [https://a.example.com]\n",
        &[],
    );
    assert!(
        error
            .problems
            .iter()
            .any(|p| p.path == "remotes.a.prefix" && p.message.contains("proxy.remoteurl")),
        "{error}"
    );
}
