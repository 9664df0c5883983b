//! `berth webhook ...`: webhooks from the command line, straight against the database (the
//! same `WebhookAdmin` as the admin API, acting as the operator): list them with their
//! backlog, send a test event, read the delivery log and the dead letters, replay them.

use std::process::ExitCode;
use std::sync::Arc;

use berth_webhooks::admin::WebhookAdmin;
use berth_webhooks::{Delivery, Endpoints};
use clap::Subcommand;

use crate::management::{CommandError, Context, Output, StoreArgs, run_management, table, value};
use crate::observability;

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// List webhook endpoints (configuration and API) with their backlog.
    List,
    /// Send a test event to an endpoint now and show how it answered.
    Test { name: String },
    /// Show an endpoint's recent delivery attempts, newest first.
    Deliveries {
        name: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show the events given up on after the endpoint's maximum age.
    DeadLetters { name: String },
    /// Put dead letters back in the endpoint's queue (all of them, or those given by id); a
    /// running berth delivers them.
    Replay {
        name: String,
        /// Only these dead letters (ids as `dead-letters` shows them).
        #[arg(long = "id")]
        ids: Vec<i64>,
    },
}

pub fn run(command: WebhookCommand, store: StoreArgs) -> ExitCode {
    run_management(store, |context| execute(command, context))
}

async fn execute(command: WebhookCommand, context: Context) -> Result<Output, CommandError> {
    let endpoints = Arc::new(Endpoints::new(
        observability::configured_webhooks(&context.config)?,
        Arc::clone(&context.database.webhooks),
    ));
    let delivery = Arc::new(Delivery::new(
        Arc::clone(&endpoints),
        Arc::clone(&context.database.webhooks),
        Arc::clone(&context.database.leases),
        observability::command_line_instance(&context.config),
    ));
    let webhooks = WebhookAdmin::new(
        endpoints,
        Arc::clone(&context.database.webhooks),
        delivery,
        context.admin,
    );
    let actor = &context.actor;
    Ok(match command {
        WebhookCommand::List => {
            let list = webhooks.list().await?;
            let rows = list
                .iter()
                .map(|w| {
                    vec![
                        w.name.clone(),
                        format!("{:?}", w.source).to_lowercase(),
                        w.spec.format.as_str().to_string(),
                        w.spec.url.clone(),
                        w.pending.to_string(),
                        w.oldest_pending_at.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            let text = table(
                &["NAME", "SOURCE", "FORMAT", "URL", "PENDING", "OLDEST"],
                rows,
            );
            value(&list, text)
        }
        WebhookCommand::Test { name } => {
            let result = webhooks.test(actor, &name).await?;
            let text = match (&result.error, result.status) {
                (None, status) => format!(
                    "delivered ({}) in {} ms\n",
                    status.map(|s| s.to_string()).unwrap_or_default(),
                    result.latency_ms
                ),
                (Some(error), _) => format!("not delivered: {error}\n"),
            };
            value(&result, text)
        }
        WebhookCommand::Deliveries { name, limit } => {
            let log = webhooks.deliveries(&name, None, Some(limit)).await?;
            let rows = log
                .iter()
                .map(|d| {
                    vec![
                        d.at.clone(),
                        d.event.clone(),
                        d.repository.clone(),
                        d.attempt.to_string(),
                        d.status.map(|s| s.to_string()).unwrap_or_default(),
                        d.latency_ms.to_string(),
                        d.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            let text = table(
                &[
                    "AT",
                    "EVENT",
                    "REPOSITORY",
                    "ATTEMPT",
                    "STATUS",
                    "MS",
                    "ERROR",
                ],
                rows,
            );
            value(&log, text)
        }
        WebhookCommand::DeadLetters { name } => {
            let dead = webhooks.dead_letters(&name).await?;
            let rows = dead
                .iter()
                .map(|d| {
                    vec![
                        d.id.to_string(),
                        d.created_at.clone(),
                        d.event.clone(),
                        d.repository.clone(),
                        d.attempts.to_string(),
                        d.last_error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            let text = table(
                &[
                    "ID",
                    "EVENT AT",
                    "EVENT",
                    "REPOSITORY",
                    "ATTEMPTS",
                    "LAST ERROR",
                ],
                rows,
            );
            value(&dead, text)
        }
        WebhookCommand::Replay { name, ids } => {
            let ids = (!ids.is_empty()).then_some(ids);
            let replayed = webhooks.replay(actor, &name, ids.as_deref()).await?;
            Output::Message(format!(
                "{replayed} dead letters are back in the queue of {name}"
            ))
        }
    })
}
