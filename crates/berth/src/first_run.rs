//! The first start with berth's own authentication: with no user yet, nobody could log in,
//! so berth creates an administrator and prints its one-time password, once.

use std::net::SocketAddr;
use std::sync::Arc;

use berth_auth::admin::{Actor, AdminError, Administration, NewUser};
use berth_auth::secret::random_token;
use berth_meta::IdentityStore;

pub const FIRST_ADMINISTRATOR: &str = "admin";

pub async fn create_first_administrator(
    admin: &Administration,
    identity: &Arc<dyn IdentityStore>,
    listening: SocketAddr,
    tls: bool,
) -> Result<(), String> {
    if identity.count_users().await.map_err(|e| e.to_string())? > 0 {
        return Ok(());
    }
    let password = random_token(16);
    let first = NewUser {
        name: FIRST_ADMINISTRATOR.into(),
        password: Some(password.clone()),
        email: None,
        admin: true,
    };
    match admin.create_user(&Actor::System, first).await {
        Ok(_) => {}
        // Another instance starting at the same moment made it first; it printed the password.
        Err(AdminError::Conflict(_)) => return Ok(()),
        Err(e) => return Err(format!("creating the first administrator: {e}")),
    }
    let host = if listening.ip().is_unspecified() {
        format!("localhost:{}", listening.port())
    } else {
        listening.to_string()
    };
    let insecure = if tls { "" } else { " --tls-verify=false" };
    // Printed to the terminal, not logged: log collectors should not keep it.
    eprintln!(
        "\n  berth created the administrator \"{FIRST_ADMINISTRATOR}\" with this one-time password (shown only now):\n\n      {password}\n\n  Log in with:  podman login{insecure} {host} -u {FIRST_ADMINISTRATOR} -p {password}\n  Change it with:  berth user passwd {FIRST_ADMINISTRATOR}\n"
    );
    tracing::info!(
        user = FIRST_ADMINISTRATOR,
        "created the first administrator; its password was printed once"
    );
    Ok(())
}
