//! `berth-dashboard-bench`: how long the dashboard's pages take to render on a large registry
//! (100k repositories, 10k tags in one of them), on SQLite and on PostgreSQL.
//!
//! It builds berth's real registry, access service and page router in this process over a
//! real metadata database and filesystem blob store (populated through the same `Registry`
//! calls a push makes, so manifest details and the search index are what pushes produce),
//! signs in an administrator, and sends each page request straight to the router: the time
//! measured is the server's, from request to the last byte of the rendered page, without a
//! network in between. It reports p50 and p90 per page and the page's size.
//!
//! ```text
//! cargo run --release -p berth-bench --bin berth-dashboard-bench -- --engine both
//! ```
//!
//! Populating takes minutes (15 on PostgreSQL on a loaded machine); for an A/B of two builds
//! over the same data, keep it: `--data-dir DIR` (and on PostgreSQL `--database-url` of a
//! server you started) populates once and later runs reuse it; `--only search` measures the
//! pages whose name contains "search".

mod populate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use berth_api::UrlPolicy;
use berth_auth::registry_token::{RegistryTokens, SigningKey};
use berth_auth::{AccessService, Mode, TokenService};
use berth_meta::{IdentityStore, Leases, MetadataStore};
use berth_registry::{Registry, Settings};
use clap::Parser;
use http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

#[derive(Parser, Debug)]
#[command(about = "Server-side render times of the dashboard's pages on a large registry")]
struct Args {
    /// `sqlite`, `postgres` or `both`.
    #[arg(long, default_value = "both")]
    engine: String,
    /// Repositories (each with one tagged image).
    #[arg(long, default_value_t = 100_000)]
    repos: usize,
    /// Tags in the one big repository.
    #[arg(long, default_value_t = 10_000)]
    tags: usize,
    /// Measured requests per page (after as many warm-up requests as a tenth of them).
    #[arg(long, default_value_t = 200)]
    reps: usize,
    /// Where the data goes (default: a temporary directory, on /dev/shm when it exists).
    #[arg(long)]
    work_dir: Option<std::path::PathBuf>,
    /// Keep the data here (blob store, SQLite database) and reuse it when a previous run
    /// populated it with the same sizes; with `--database-url` the PostgreSQL database too.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// PostgreSQL: this database instead of a private server per run (needs `--data-dir`,
    /// which records whether it holds the data already).
    #[arg(long, requires = "data_dir")]
    database_url: Option<String>,
    /// Only the pages whose name contains this text.
    #[arg(long)]
    only: Option<String>,
    /// Tiny sizes (300 repositories, 100 tags, 3 requests per page): checks that every page
    /// renders on both engines, in seconds.
    #[arg(long)]
    smoke: bool,
}

/// One page's figures.
struct Measured {
    page: &'static str,
    path: String,
    p50: Duration,
    p90: Duration,
    bytes: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn measure(
    app: &axum::Router,
    cookie: &str,
    page: &'static str,
    path: String,
    reps: usize,
) -> Measured {
    let mut times = Vec::with_capacity(reps);
    let mut bytes = 0;
    for i in 0..reps + reps / 10 {
        let request = Request::get(path.as_str())
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap();
        let started = Instant::now();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let elapsed = started.elapsed();
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        bytes = body.len();
        if i >= reps / 10 {
            times.push(elapsed);
        }
    }
    times.sort();
    Measured {
        page,
        p50: percentile(&times, 0.5),
        p90: percentile(&times, 0.9),
        path,
        bytes,
    }
}

/// The one store of an engine, as each of its roles.
type Stores = (
    Arc<dyn MetadataStore>,
    Arc<dyn IdentityStore>,
    Arc<dyn Leases>,
);

fn stores<S: MetadataStore + IdentityStore + Leases>(store: Arc<S>) -> Stores {
    (store.clone(), store.clone(), store)
}

async fn run_engine(engine: &str, args: &Args, dir: &std::path::Path) -> Vec<Measured> {
    let ((meta, identity, leases), _server): (Stores, _) = match engine {
        "sqlite" => {
            let store = Arc::new(
                berth_meta::SqliteStore::open(&dir.join("berth.db"))
                    .await
                    .expect("SQLite opens"),
            );
            (stores(store), None)
        }
        "postgres" => {
            let server = match &args.database_url {
                Some(_) => None,
                None => Some(berth_meta::postgres::testing::PostgresServer::start()),
            };
            let url = match (&args.database_url, &server) {
                (Some(url), _) => url.clone(),
                (None, Some(server)) => server.url(),
                (None, None) => unreachable!("a server was started above"),
            };
            let store = Arc::new(
                berth_meta::PostgresStore::connect(
                    &url,
                    &berth_meta::postgres::PoolSettings::default(),
                )
                .await
                .expect("PostgreSQL connects"),
            );
            (stores(store), server)
        }
        other => panic!("unknown engine {other:?}: sqlite or postgres"),
    };
    let blobs = Arc::new(berth_storage::FilesystemStore::open(dir.join("blobs")).unwrap());
    let meta_for_lifecycle = Arc::clone(&meta);
    let registry = Arc::new(Registry::new(
        blobs,
        meta,
        Settings {
            delete_enabled: true,
            read_only: false,
        },
    ));
    // A kept data directory says what it holds; a run with other sizes starts afresh.
    let marker = dir.join(format!("populated-{engine}-{}-{}", args.repos, args.tags));
    if marker.exists() {
        eprintln!("{engine}: reusing the data in {}", dir.display());
    } else {
        let started = Instant::now();
        populate::populate(&registry, args.repos, args.tags).await;
        eprintln!(
            "{engine}: populated {} repositories and {} tags in {:.0?}",
            args.repos,
            args.tags,
            started.elapsed()
        );
        std::fs::write(&marker, b"").unwrap();
    }

    let key = SigningKey::generate().unwrap();
    let access = Arc::new(AccessService::new(
        Mode::Berth(Box::new(TokenService {
            tokens: RegistryTokens::new(key, "berth", "berth", Duration::from_secs(300)),
            realm: None,
            refresh_lifetime: Duration::from_secs(3600),
        })),
        Arc::clone(&identity),
    ));
    if identity.user("bench").await.unwrap().is_none() {
        let hash = berth_auth::password::hash_password("bench-password");
        identity
            .create_user("bench", Some(&hash), None, true)
            .await
            .unwrap();
    }
    let caller = access.login("bench", "bench-password", None).await.unwrap();
    let session = access.begin_session(&caller).await.unwrap();
    let cookie = format!(
        "berth_session={}; berth_csrf={}",
        session.cookie, session.csrf_token
    );
    let lifecycle = Arc::new(berth_lifecycle::Lifecycle::new(
        Arc::clone(&registry),
        Arc::clone(&meta_for_lifecycle),
        leases,
        Arc::clone(&identity),
        berth_registry::gc::GcSettings {
            grace: Duration::from_secs(86_400),
            untagged: None,
            upload_age: Duration::from_secs(86_400),
            fence: Duration::from_secs(2),
            tag_history: Duration::from_secs(14 * 86_400),
        },
        "bench".into(),
    ));
    // No remote or virtual repository: the configuration's defaults.
    let caches = Arc::new(berth_cache::admin::CacheAdmin::new(
        Arc::new(
            berth_cache::catalog::Caches::new(
                &berth_config::Config::default(),
                &registry,
                berth_cache::Shared {
                    store: Arc::clone(&meta_for_lifecycle) as Arc<dyn berth_meta::CacheStore>,
                    leases: None,
                    holder: "bench".into(),
                },
            )
            .unwrap(),
        ),
        berth_auth::admin::Administration::serving(Arc::clone(&access)),
    ));
    let app = berth_web::pages(berth_web::WebState {
        registry,
        access,
        lifecycle,
        caches,
        urls: UrlPolicy {
            public_base: Some("https://registry.example.com".into()),
            ..UrlPolicy::default()
        },
        mailer: None,
    });
    let middle = populate::repository_name(args.repos / 2);
    let tag = populate::big_tag(args.tags / 2);
    let pages = [
        ("home", "/".to_string()),
        (
            "search (one repository)",
            format!("/search?q={}", middle.rsplit('/').next().unwrap()),
        ),
        (
            "search (a label, many)",
            "/search?q=quuxcorp+frontend".to_string(),
        ),
        (
            "repository, 10k tags, by name",
            format!("/r/{}", populate::BIG),
        ),
        (
            "repository, 10k tags, by push time",
            format!("/r/{}?sort=pushed", populate::BIG),
        ),
        (
            "repository, 10k tags, a middle page",
            format!("/r/{}?page={}", populate::BIG, (args.tags / 100).max(1)),
        ),
        ("image", format!("/r/{}/-/tags/{tag}", populate::BIG)),
        ("image (small repository)", format!("/r/{middle}/-/tags/v1")),
    ];
    let mut results = Vec::new();
    for (page, path) in pages {
        if args
            .only
            .as_ref()
            .is_some_and(|only| !page.contains(only.as_str()))
        {
            continue;
        }
        results.push(measure(&app, &cookie, page, path, args.reps).await);
    }
    results
}

#[tokio::main]
async fn main() {
    let mut args = Args::parse();
    if args.smoke {
        args.repos = 300;
        args.tags = 100;
        args.reps = 3;
    }
    let engines: Vec<&str> = match args.engine.as_str() {
        "both" => vec!["sqlite", "postgres"],
        one => vec![one],
    };
    let base = args.work_dir.clone().unwrap_or_else(|| {
        if std::path::Path::new("/dev/shm").is_dir() {
            "/dev/shm".into()
        } else {
            std::env::temp_dir()
        }
    });
    println!("| engine | page | p50 | p90 | HTML |\n| --- | --- | ---: | ---: | ---: |");
    for engine in engines {
        let temporary;
        let dir = match &args.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).unwrap();
                dir.as_path()
            }
            None => {
                temporary = tempfile::Builder::new()
                    .prefix("berth-dashboard-bench")
                    .tempdir_in(&base)
                    .unwrap();
                temporary.path()
            }
        };
        for m in run_engine(engine, &args, dir).await {
            println!(
                "| {engine} | {} (`{}`) | {:.1} ms | {:.1} ms | {:.0} KB |",
                m.page,
                m.path,
                m.p50.as_secs_f64() * 1000.0,
                m.p90.as_secs_f64() * 1000.0,
                m.bytes as f64 / 1000.0
            );
        }
    }
}
