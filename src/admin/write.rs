//! The write endpoints: `POST /reload`, `PUT /pools/{name}/backends` and `POST /acme/renew`. When
//! `admin.token_file` is set they need `Authorization: Bearer <token>`, compared in constant
//! time. Each answers JSON: the change made, or every reason it was refused.

use super::Body;
use super::{AdminCtx, json_response, text};
use crate::acme::AcmeError;
use crate::control::{ControlError, MembersError, ReloadError};
use crate::discovery::parse_feed;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;
use subtle::ConstantTimeEq;

/// Largest `PUT /pools/{name}/backends` body.
const MAX_PUSH: usize = 1024 * 1024;

/// `None` when the request may write; otherwise the 401 to send.
fn refuse_without_token<B>(ctx: &AdminCtx, request: &Request<B>) -> Option<Response<Body>> {
    let token = ctx.token.load();
    let expected = token.as_deref()?;
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        return None;
    }
    let mut response = text(StatusCode::UNAUTHORIZED, "a bearer token is required\n");
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer"),
    );
    Some(response)
}

/// `POST /reload`.
pub(super) async fn reload<B>(ctx: &AdminCtx, request: &Request<B>) -> Response<Body> {
    if let Some(refused) = refuse_without_token(ctx, request) {
        return refused;
    }
    let Some(control) = ctx.control.upgrade() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    };
    match control.reload().await {
        Ok(report) => json_response(
            StatusCode::OK,
            &json!({ "result": "ok", "generation": report.generation, "changes": report.changes }),
        ),
        Err(error) => refused(&error),
    }
}

/// `POST /acme/renew[?listener=NAME]`: the ACME tasks order now; the answer names the
/// listeners asked (the orders themselves run in the background: watch
/// `portero_acme_orders_total`).
pub(super) fn renew<B>(ctx: &AdminCtx, request: &Request<B>) -> Response<Body> {
    if let Some(refused) = refuse_without_token(ctx, request) {
        return refused;
    }
    let Some(control) = ctx.control.upgrade() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    };
    let listener = request
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("listener="));
    match control.renew_certificates(listener) {
        Ok(asked) => json_response(
            StatusCode::ACCEPTED,
            &json!({ "result": "ok", "listeners": asked }),
        ),
        Err(error) => refused(&error),
    }
}

/// `PUT /pools/{name}/backends` with `{"backends": [{"address": "...", "weight": 1}]}`.
pub(super) async fn push(ctx: &AdminCtx, request: Request<Incoming>, pool: &str) -> Response<Body> {
    if let Some(refused) = refuse_without_token(ctx, &request) {
        return refused;
    }
    let body = match Limited::new(request.into_body(), MAX_PUSH).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            return error_json(
                StatusCode::BAD_REQUEST,
                vec![json!({ "message": format!("cannot read the body: {e}") })],
            );
        }
    };
    let specs = match parse_feed(&body) {
        Ok(specs) => specs,
        Err(e) => {
            return error_json(
                StatusCode::BAD_REQUEST,
                vec![json!({ "message": e.to_string() })],
            );
        }
    };
    let Some(control) = ctx.control.upgrade() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    };
    match control.push(pool, specs) {
        Ok(Some(report)) => json_response(
            StatusCode::OK,
            &json!({ "result": "ok", "changed": true, "generation": report.generation, "changes": report.changes }),
        ),
        Ok(None) => json_response(StatusCode::OK, &json!({ "result": "ok", "changed": false })),
        Err(error) => refused(&error),
    }
}

/// The one table from a refused change to its status, with every reason in the body.
fn refused(error: &ControlError) -> Response<Body> {
    let status = match error {
        ControlError::Reload(ReloadError::Invalid(_)) => StatusCode::UNPROCESSABLE_ENTITY,
        ControlError::Reload(
            ReloadError::Listener(_) | ReloadError::NeedsRestart(_) | ReloadError::NoConfigFile,
        ) => StatusCode::CONFLICT,
        ControlError::Reload(ReloadError::Token(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        ControlError::Members(MembersError::UnknownPool(_)) => StatusCode::NOT_FOUND,
        ControlError::Members(MembersError::Invalid(_)) => StatusCode::BAD_REQUEST,
        ControlError::Renew(AcmeError::UnknownListener(_)) => StatusCode::NOT_FOUND,
        ControlError::Renew(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let errors = match error {
        ControlError::Reload(ReloadError::Invalid(config)) => config
            .problems
            .iter()
            .map(|p| match p.line_col {
                Some((line, column)) => {
                    json!({ "message": p.message, "line": line, "column": column })
                }
                None => json!({ "message": p.message }),
            })
            .collect(),
        other => vec![json!({ "message": other.to_string() })],
    };
    error_json(status, errors)
}

fn error_json(status: StatusCode, errors: Vec<serde_json::Value>) -> Response<Body> {
    json_response(status, &json!({ "result": "error", "errors": errors }))
}
