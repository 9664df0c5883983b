//! The stylesheet and the scripts, compiled into the binary and served under names that
//! carry a hash of their content, so browsers may keep them forever: a new build links to
//! new names.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::header;
use sha2::{Digest, Sha256};

use crate::errors::WebError;

pub struct Asset {
    /// The name pages link to: `berth.<hash>.css`.
    pub name: String,
    content_type: &'static str,
    body: &'static str,
}

fn asset(stem: &str, extension: &str, content_type: &'static str, body: &'static str) -> Asset {
    let hash = hex::encode(&Sha256::digest(body.as_bytes())[..8]);
    Asset {
        name: format!("{stem}.{hash}.{extension}"),
        content_type,
        body,
    }
}

pub static STYLESHEET: LazyLock<Asset> = LazyLock::new(|| {
    asset(
        "berth",
        "css",
        "text/css; charset=utf-8",
        include_str!("../assets/berth.css"),
    )
});

pub static SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    asset(
        "berth",
        "js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/berth.js"),
    )
});

/// The passkey script, linked only from the pages that offer passkeys.
pub static PASSKEY_SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    asset(
        "passkey",
        "js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/passkey.js"),
    )
});

/// GET /static/{file}
pub async fn serve(Path(file): Path<String>) -> Result<Response, WebError> {
    let asset = [&*STYLESHEET, &*SCRIPT, &*PASSKEY_SCRIPT]
        .into_iter()
        .find(|a| a.name == file)
        .ok_or(WebError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        asset.body,
    )
        .into_response())
}
