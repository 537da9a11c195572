//! Logging in and out: the form, the password check (off the async runtime),
//! the session cookie, and where to go afterwards.

use super::layout;
use crate::http::auth::LoginError;
use crate::http::{Failure, HttpState, Viewer};
use crate::store::Store;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

/// The login form; `next` is where to go afterwards.
pub fn login_page(next: &str, error: Option<&str>) -> Markup {
    layout(
        "Log in",
        None,
        html! {
            @if let Some(e) = error { p.error { (e) } }
            form.card method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label { "Name" input type="text" name="name" autocomplete="username" required autofocus; }
                label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                button type="submit" { "Log in" }
            }
        },
    )
}

pub(super) async fn login_form(Query(q): Query<NextQuery>) -> Markup {
    login_page(&safe_next(q.next.as_deref()), None)
}

/// The login form's query: where to go after logging in.
#[derive(Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

/// The login form as posted.
#[derive(Deserialize)]
pub(super) struct LoginForm {
    name: String,
    password: String,
    next: Option<String>,
}

/// Only local paths, so the login cannot be used to redirect elsewhere.
pub(super) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.into(),
        _ => "/".into(),
    }
}

pub(super) async fn login<S: Store>(
    State(s): State<HttpState<S>>,
    axum::Form(f): axum::Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    let web = s.web.clone();
    let name = f.name.clone();
    let outcome = tokio::task::spawn_blocking(move || web.accounts.login(&name, &f.password)).await;
    match outcome {
        Ok(Ok(cookie)) => {
            tracing::info!(user = %f.name, "login");
            (
                StatusCode::SEE_OTHER,
                [(header::SET_COOKIE, cookie), (header::LOCATION, next)],
            )
                .into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!(user = %f.name, "login refused");
            let (status, msg) = match e {
                LoginError::Invalid => (StatusCode::UNAUTHORIZED, "Wrong name or password."),
                LoginError::LockedOut => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many failed logins for this name; wait a minute.",
                ),
            };
            (status, login_page(&next, Some(msg))).into_response()
        }
        Err(_) => Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "login failed").into_response(),
    }
}

/// A form that only carries the CSRF token (log out).
#[derive(Deserialize)]
pub(super) struct CsrfForm {
    csrf: Option<String>,
}

pub(super) async fn logout<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(p): Viewer,
    headers: HeaderMap,
    axum::Form(f): axum::Form<CsrfForm>,
) -> Response {
    if !p.check_csrf(f.csrf.as_deref()) {
        return Failure::new(StatusCode::FORBIDDEN, "stale form; reload the page").into_response();
    }
    let cookie = s.web.accounts.logout(&headers);
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}

/// Percent-encodes `s` for a query-string value.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
