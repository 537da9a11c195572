//! The clinician's pages, rendered on the server as HTML with inline SVG plots
//! (no JavaScript needed; one small script only adds an upload progress bar).
//!
//! One file per page family: [`login`] (login and logout), [`review`]
//! (overview → device: heart-rate trend, counts, flagged beats → beat: its
//! waveform and the ±5 s strip → Holter summary and its CSV), [`models`]
//! (the shipped models beside the paper's numbers), [`uploads`] (the form,
//! jobs, results) and [`assets`] (the stylesheet, script and icon). This file
//! holds the router and the page chrome they share.

mod assets;
mod login;
mod models;
mod review;
mod uploads;

pub use login::{login_page, url_encode};

use super::auth::Principal;
use super::{Failure, HttpState};
use crate::store::Store;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};

/// The pages' routes (everything outside `/api/v1` and the probes).
pub fn routes<S: Store>() -> Router<HttpState<S>> {
    Router::new()
        .route("/", get(review::overview::<S>))
        .route("/login", get(login::login_form).post(login::login::<S>))
        .route("/logout", post(login::logout::<S>))
        .route("/devices/{device}", get(review::device::<S>))
        .route("/devices/{device}/beats/{t}", get(review::beat::<S>))
        .route("/devices/{device}/summary", get(review::summary::<S>))
        .route(
            "/devices/{device}/summary.csv",
            get(review::summary_csv::<S>),
        )
        .route("/models", get(models::models::<S>))
        .route(
            "/uploads",
            get(uploads::uploads::<S>).post(uploads::upload::<S>),
        )
        .route("/uploads/jobs/{job}", get(uploads::job::<S>))
        .route("/uploads/{id}", get(uploads::upload_result::<S>))
        .route("/uploads/{id}/beats/{row}", get(uploads::upload_beat::<S>))
        .route("/static/style.css", get(assets::style))
        .route("/static/upload.js", get(assets::script))
        .route("/static/favicon.svg", get(assets::favicon))
        .route("/favicon.ico", get(assets::favicon))
}

/// Handler failures outside the API answer with the HTML failure page.
impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        error_page(self.status, &self.message).into_response()
    }
}

/// A page: the head, the navigation (with who is logged in) and `body` under `title`.
fn layout(title: &str, who: Option<&Principal>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · holterd" }
                link rel="stylesheet" href="/static/style.css";
                link rel="icon" href="/static/favicon.svg" type="image/svg+xml";
            }
            body {
                header {
                    nav {
                        a.brand href="/" { "holterd" }
                        a href="/" { "Devices" }
                        a href="/uploads" { "Uploads" }
                        a href="/models" { "Models" }
                        @if let Some(p) = who {
                            span.who { (p.name) " (" (p.role.as_str()) ")" }
                            @if let Some(csrf) = &p.csrf {
                                form.logout method="post" action="/logout" {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button type="submit" { "Log out" }
                                }
                            }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// A page saying what went wrong.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    (
        status,
        layout(
            title,
            None,
            html! { p.error { (message) } p { a href="/" { "Back to the overview" } } },
        ),
    )
        .into_response()
}
