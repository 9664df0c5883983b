//! Webhooks: telling other systems what happened in the registry.
//!
//! * [`endpoint`]: an endpoint's definition and validation (where, which events, which
//!   repositories, format, secret, timeouts, backoff, maximum age);
//! * [`endpoints::Endpoints`]: the endpoints an instance knows (configuration + admin API);
//!   it routes each committed change to the endpoints that want it (the metadata store writes
//!   those deliveries to the outbox inside the change's transaction) and queues wanted pulls;
//! * [`format`]: registry:2's notification envelope, CloudEvents 1.0, Slack messages;
//! * [`signature`]: Standard Webhooks HMAC-SHA256 signatures;
//! * [`delivery::Delivery`]: the `webhook-delivery` job that empties the outbox, at least
//!   once and in order per endpoint, with exponential backoff and dead letters.

pub mod admin;
pub mod delivery;
pub mod endpoint;
pub mod endpoints;
pub mod format;
pub mod signature;

pub use delivery::Delivery;
pub use endpoint::{Endpoint, EndpointSpec, Format, Source};
pub use endpoints::Endpoints;
pub use format::Instance;
