//! 8 in the token profile: resident memory after a burst of failed logins.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};

use super::{Bench, MB, PER_1000};
use crate::Result;
use crate::client::{self, Conn, header};
use crate::report::Better;
use crate::servers::{PeakWatch, Server};

impl Bench<'_> {
    /// 8 (token profile): resident memory after a burst of failed logins: 160 wrong
    /// passwords on `/v2/` with Basic credentials, 16 at a time, each of the 16 clients from
    /// a loopback address of its own (so that throttling refuses few and most cost a password
    /// check), every other one for the harness's user and the rest for unknown names. The
    /// official registry (which trusts berth's tokens) checks no password and only answers
    /// 401; in A/B mode both columns are berth builds.
    pub async fn failed_logins(&mut self) -> Result<()> {
        const CLIENTS: usize = 16;
        const ATTEMPTS: usize = 10;
        let measured = self
            .alternate(&self.registries(), 1, async |server: &Server, rep| {
                let watch = PeakWatch::start(server.pid());
                let target = client::Target::plain(server.target().addr);
                let mut tasks = tokio::task::JoinSet::new();
                for worker in 0..CLIENTS {
                    let target = target.clone();
                    tasks.spawn(async move {
                        let from = std::net::Ipv4Addr::new(127, 0, 9 + rep as u8, worker as u8 + 1);
                        for attempt in 0..ATTEMPTS {
                            let user = if attempt % 2 == 0 {
                                crate::token_auth::USER.to_string()
                            } else {
                                format!("nobody-{worker}-{attempt}")
                            };
                            let credentials = data_encoding::BASE64
                                .encode(format!("{user}:wrong password {attempt}").as_bytes());
                            let mut conn = Conn::connect_from(&target, from.into()).await?;
                            let response = conn
                                .send(
                                    Method::GET,
                                    "/v2/",
                                    &[header("authorization", &format!("Basic {credentials}"))],
                                    Bytes::new(),
                                )
                                .await?;
                            if ![StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS]
                                .contains(&response.status)
                            {
                                return Err(
                                    format!("a wrong password got {}", response.status).into()
                                );
                            }
                            response.drain(None).await?;
                        }
                        Ok::<_, crate::Error>(())
                    });
                }
                while let Some(done) = tasks.join_next().await {
                    done??;
                }
                let peak = watch.finish() as f64 / MB;
                tokio::time::sleep(Duration::from_secs(1)).await;
                let after = server.rss_bytes()? as f64 / MB;
                Ok((vec![after, peak], (CLIENTS * ATTEMPTS) as f64 / 1000.0))
            })
            .await?;
        self.rows(
            "8",
            &format!(
                "RSS after {} failed logins ({CLIENTS} at a time)",
                CLIENTS * ATTEMPTS
            ),
            &measured,
            &[
                (
                    "rss_failed_logins",
                    "RSS a second after",
                    "MB",
                    Better::Lower,
                ),
                ("rss_failed_logins_peak", "peak RSS", "MB", Better::Lower),
            ],
            PER_1000,
        );
        Ok(())
    }
}
