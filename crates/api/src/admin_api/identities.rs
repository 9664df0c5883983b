//! Users, teams and service accounts.

use axum::extract::State;
use axum::extract::{Path, Request};
use axum::response::Response;
use berth_auth::admin::NewUser;
use serde::Deserialize;

use super::failure::{created, no_content, ok};
use super::{Shared, manage};

/// A body that carries nothing (GET, DELETE; also accepts `{}`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Empty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    name: String,
    password: Option<String>,
    email: Option<String>,
    #[serde(default)]
    admin: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUser {
    admin: Option<bool>,
    disabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPassword {
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTeam {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateServiceAccount {
    name: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateServiceAccount {
    disabled: Option<bool>,
}

pub(super) async fn list_users(State(state): Shared, request: Request) -> Response {
    manage(&state, request, |op, Empty {}| async move {
        ok(&op.admin.list_users().await?)
    })
    .await
}

pub(super) async fn create_user(State(state): Shared, request: Request) -> Response {
    manage(&state, request, |op, body: CreateUser| async move {
        let new = NewUser {
            name: body.name,
            password: body.password,
            email: body.email,
            admin: body.admin,
        };
        created(&op.admin.create_user(&op.actor, new).await?)
    })
    .await
}

pub(super) async fn get_user(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    manage(&state, request, |op, Empty {}| async move {
        ok(&op.admin.user(&name).await?)
    })
    .await
}

pub(super) async fn update_user(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    manage(&state, request, |op, body: UpdateUser| async move {
        if let Some(admin) = body.admin {
            op.admin.set_user_admin(&op.actor, &name, admin).await?;
        }
        if let Some(disabled) = body.disabled {
            op.admin
                .set_user_disabled(&op.actor, &name, disabled)
                .await?;
        }
        ok(&op.admin.user(&name).await?)
    })
    .await
}

pub(super) async fn delete_user(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    manage(&state, request, |op, Empty {}| async move {
        op.admin.delete_user(&op.actor, &name).await?;
        no_content()
    })
    .await
}

pub(super) async fn set_password(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    manage(&state, request, |op, body: SetPassword| async move {
        op.admin
            .set_password(&op.actor, &name, &body.password)
            .await?;
        no_content()
    })
    .await
}

/// A user's second factors (whether they have an authenticator, recovery codes left).
pub(super) async fn get_second_factors(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    manage(&state, request, |op, Empty {}| async move {
        ok(&op.admin.second_factors(&name).await?)
    })
    .await
}

/// Resets a user's second factors (a lost authenticator).
pub(super) async fn reset_second_factors(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    manage(&state, request, |op, Empty {}| async move {
        op.admin.reset_second_factors(&op.actor, &name).await?;
        no_content()
    })
    .await
}

pub(super) async fn list_teams(State(state): Shared, request: Request) -> Response {
    manage(&state, request, |op, Empty {}| async move {
        ok(&op.admin.list_teams().await?)
    })
    .await
}

pub(super) async fn create_team(State(state): Shared, request: Request) -> Response {
    manage(&state, request, |op, body: CreateTeam| async move {
        created(&op.admin.create_team(&op.actor, &body.name).await?)
    })
    .await
}

pub(super) async fn get_team(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    manage(&state, request, |op, Empty {}| async move {
        ok(&op.admin.team(&name).await?)
    })
    .await
}

pub(super) async fn delete_team(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    manage(&state, request, |op, Empty {}| async move {
        op.admin.delete_team(&op.actor, &name).await?;
        no_content()
    })
    .await
}

pub(super) async fn add_member(
    State(state): Shared,
    Path((team, user)): Path<(String, String)>,
    request: Request,
) -> Response {
    manage(&state, request, |op, Empty {}| async move {
        ok(&op.admin.add_team_member(&op.actor, &team, &user).await?)
    })
    .await
}

pub(super) async fn remove_member(
    State(state): Shared,
    Path((team, user)): Path<(String, String)>,
    request: Request,
) -> Response {
    manage(&state, request, |op, Empty {}| async move {
        ok(&op.admin.remove_team_member(&op.actor, &team, &user).await?)
    })
    .await
}

pub(super) async fn list_service_accounts(State(state): Shared, request: Request) -> Response {
    manage(&state, request, |op, Empty {}| async move {
        ok(&op.admin.list_service_accounts().await?)
    })
    .await
}

pub(super) async fn create_service_account(State(state): Shared, request: Request) -> Response {
    manage(
        &state,
        request,
        |op, body: CreateServiceAccount| async move {
            let account = op
                .admin
                .create_service_account(&op.actor, &body.name, &body.description)
                .await?;
            created(&account)
        },
    )
    .await
}

pub(super) async fn get_service_account(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    manage(&state, request, |op, Empty {}| async move {
        ok(&op.admin.service_account(&name).await?)
    })
    .await
}

pub(super) async fn update_service_account(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    manage(
        &state,
        request,
        |op, body: UpdateServiceAccount| async move {
            if let Some(disabled) = body.disabled {
                op.admin
                    .set_service_account_disabled(&op.actor, &name, disabled)
                    .await?;
            }
            ok(&op.admin.service_account(&name).await?)
        },
    )
    .await
}

pub(super) async fn delete_service_account(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    manage(&state, request, |op, Empty {}| async move {
        op.admin.delete_service_account(&op.actor, &name).await?;
        no_content()
    })
    .await
}
