//! `storage.gcs`, `storage.azure`, `storage.ipfs`, `storage.scrub` and S3's encryption.

use super::*;

#[test]
fn registry_v2_gcs_and_azure_sections_configure_those_stores() {
    let gcs = ok(
        "storage:\n  gcs:\n    bucket: registry\n    keyfile: /etc/gcs.json\n    rootdirectory: /prefix/\n",
        &[("REGISTRY_STORAGE_GCS_CHUNKSIZE", "10485760")],
    )
    .config
    .storage
    .gcs
    .unwrap();
    assert_eq!(gcs.bucket, "registry");
    assert_eq!(gcs.keyfile.unwrap().to_str(), Some("/etc/gcs.json"));
    assert_eq!(gcs.rootdirectory, "prefix");
    assert_eq!(gcs.chunksize, 10 * 1024 * 1024);

    let azure = ok(
        "storage:\n  azure:\n    accountname: acct\n    accountkey: c2VjcmV0\n    container: c\n",
        &[],
    )
    .config
    .storage
    .azure
    .unwrap();
    assert_eq!(azure.service_url(), "https://acct.blob.core.windows.net");
    assert!(
        !format!("{azure:?}").contains("c2VjcmV0"),
        "the key is never shown"
    );
    let emulated = ok(
        "",
        &[
            ("REGISTRY_STORAGE_AZURE_ACCOUNTNAME", "devstoreaccount1"),
            ("REGISTRY_STORAGE_AZURE_CONTAINER", "c"),
            (
                "REGISTRY_STORAGE_AZURE_SERVICEURL",
                "http://127.0.0.1:10000/devstoreaccount1/",
            ),
        ],
    );
    assert_eq!(
        emulated.config.storage.azure.unwrap().service_url(),
        "http://127.0.0.1:10000/devstoreaccount1"
    );
}

#[test]
fn ipfs_takes_credentials_from_the_url_or_a_token() {
    let loaded = ok(
        "storage:\n  ipfs:\n    api: http://berth:p%40ss@kubo:5001\n    gateway: https://gw.example.com\n    timeout: 30s\n",
        &[],
    );
    let ipfs = loaded.config.storage.ipfs.clone().unwrap();
    assert_eq!(ipfs.api_url().as_str(), "http://kubo:5001/");
    assert_eq!(
        ipfs.basic_credentials(),
        Some(("berth".into(), "p@ss".into()))
    );
    assert_eq!(ipfs.timeout, Duration::from_secs(30));
    assert!(ipfs.pin);
    assert_eq!(ipfs.rootdirectory, "/berth");
    assert!(!format!("{ipfs:?}").contains("p%40ss"), "{ipfs:?}");
    let explained = crate::explain(&loaded);
    assert!(!explained.contains("p%40ss"), "{explained}");
    assert!(explained.contains("storage.ipfs.api"), "{explained}");
    let token = ok(
        "",
        &[
            ("BERTH_STORAGE_IPFS_API", "https://kubo.example.com"),
            ("BERTH_STORAGE_IPFS_BEARERTOKEN", "s3cret"),
        ],
    );
    assert_eq!(
        token.config.storage.ipfs.unwrap().bearertoken.as_deref(),
        Some("s3cret")
    );
}

#[test]
fn store_settings_are_validated() {
    let cases: &[(&str, &str)] = &[
        ("storage:\n  gcs: {}\n", "storage.gcs.bucket"),
        (
            "storage:\n  gcs:\n    bucket: b\n    chunksize: 1000\n",
            "storage.gcs.chunksize",
        ),
        (
            "storage:\n  gcs:\n    bucket: b\n    endpoint: ftp://x\n",
            "storage.gcs.endpoint",
        ),
        (
            "storage:\n  azure:\n    container: c\n",
            "storage.azure.accountname",
        ),
        (
            "storage:\n  azure:\n    accountname: a\n    container: c\n    chunksize: 1\n",
            "storage.azure.chunksize",
        ),
        ("storage:\n  ipfs: {}\n", "storage.ipfs.api"),
        (
            "storage:\n  ipfs:\n    api: kubo:5001\n",
            "storage.ipfs.api",
        ),
        (
            "storage:\n  ipfs:\n    api: http://k:5001\n    rootdirectory: berth\n",
            "storage.ipfs.rootdirectory",
        ),
        (
            "storage:\n  ipfs:\n    api: http://k:5001\n    gateway: https://u:p@gw\n",
            "storage.ipfs.gateway",
        ),
        (
            "storage:\n  s3:\n    bucket: b\n    keyid: k\n",
            "storage.s3.keyid",
        ),
        (
            "storage:\n  s3:\n    bucket: b\n  ipfs:\n    api: http://k:5001\n",
            "storage.ipfs",
        ),
        ("storage:\n  scrub:\n    rate: 0\n", "storage.scrub.rate"),
        ("storage:\n  scrub:\n    rate: fast\n", "storage.scrub.rate"),
    ];
    for (yaml, path) in cases {
        let error = err(yaml, &[]);
        problem(&error, path);
    }
    let scrub = ok(
        "storage:\n  scrub:\n    rate: 50MiB\n    enabled: false\n",
        &[],
    )
    .config
    .storage
    .scrub;
    assert_eq!(scrub.rate, 50 * 1024 * 1024);
    assert!(!scrub.enabled);
    let s3 = ok(
        "storage:\n  s3:\n    bucket: b\n    encrypt: true\n    keyid: k\n",
        &[],
    )
    .config
    .storage
    .s3
    .unwrap();
    assert!(s3.encrypt);
    assert_eq!(s3.keyid.as_deref(), Some("k"));
}
