//! The daemon's HTTP server.
//!
//! - `/healthz` (alive, and what is degraded) and `/readyz` (broker connected
//!   and store answering): open, for probes; they show no ECG data.
//! - `/metrics` (Prometheus), optionally on its own address (`http.metrics_listen`).
//! - The clinician's pages ([`pages`]) and the JSON API under `/api/v1`
//!   ([`api`], described by [`openapi`]), behind [`auth`].
//! - Uploads of beat files and recordings ([`upload`], [`jobs`]).
//! - What pages and API share: the device and range a request asks for
//!   ([`range`]), the seed paper's numbers ([`paper`]), charts ([`svg`]).
//!
//! Every response carries security headers ([`security_headers`]).

pub mod api;
pub mod auth;
pub mod jobs;
pub mod openapi;
pub mod pages;
pub mod paper;
pub mod range;
pub mod svg;
pub mod upload;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::catalog::ModelCatalog;
use crate::store::Store;
use auth::{Accounts, Principal, Role};
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use std::time::Duration;

/// What the review pages, the API and uploads share.
pub struct Web {
    pub accounts: Accounts,
    pub models: ModelCatalog,
    pub jobs: jobs::Jobs,
    /// p(abnormal) at or above which a beat is flagged.
    pub threshold: f32,
    pub powerline_hz: Option<f64>,
    /// The rhythm analyser's settings, for uploaded recordings as for streams.
    pub rhythm: crate::rhythm::RhythmConfig,
    pub max_upload_bytes: u64,
    /// Uploads read and processed at once; more wait their turn, so a burst of
    /// large files cannot exhaust memory or starve the live pipeline.
    pub upload_slots: Arc<tokio::sync::Semaphore>,
}

/// Uploads processed at the same time.
pub const UPLOAD_SLOTS: usize = 2;

impl Web {
    /// From the configuration (accounts checked, models listed).
    pub fn from_config(config: &Config) -> Result<Web, crate::config::ConfigError> {
        Ok(Web {
            accounts: Accounts::from_config(&config.http)?,
            models: ModelCatalog::new(&config.http.models_dir),
            jobs: jobs::Jobs::default(),
            threshold: config.pipeline.threshold,
            powerline_hz: config.powerline(),
            rhythm: config.rhythm.clone(),
            max_upload_bytes: config.http.max_upload_mib * 1024 * 1024,
            upload_slots: Arc::new(tokio::sync::Semaphore::new(UPLOAD_SLOTS)),
        })
    }
}

/// What the handlers need.
pub struct HttpState<S> {
    pub store: S,
    pub metrics: Arc<Metrics>,
    pub web: Arc<Web>,
}

impl<S: Clone> Clone for HttpState<S> {
    fn clone(&self) -> Self {
        HttpState {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            web: self.web.clone(),
        }
    }
}

/// Routes of the main listener; `/metrics` is included when `with_metrics`.
pub fn router<S: Store>(state: HttpState<S>, with_metrics: bool) -> Router {
    // Multipart framing on top of the file itself.
    let body_limit = state.web.max_upload_bytes as usize + 64 * 1024;
    let mut r = Router::new()
        .route("/healthz", get(healthz::<S>))
        .route("/readyz", get(readyz::<S>))
        .merge(pages::routes::<S>())
        .nest("/api/v1", api::routes::<S>());
    if with_metrics {
        r = r.route("/metrics", get(metrics::<S>));
    }
    r.layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Routes of a separate metrics listener.
pub fn metrics_router<S: Store>(state: HttpState<S>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::<S>))
        .with_state(state)
}

/// Headers a hospital's security review expects on every response: a strict
/// content policy (no inline script or style, no framing), no MIME sniffing,
/// no referrer, and no caching of health data.
pub async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "no-referrer");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(
        h,
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
    r
}

/// A caller allowed to read (any role). Pages answer 401 with the login form;
/// the API answers 401 JSON.
pub struct Viewer(pub Principal);

/// A caller allowed to upload; others get 403.
pub struct Uploader(pub Principal);

/// Why a request was refused before its handler ran.
pub struct Refused {
    status: StatusCode,
    api: bool,
    /// The client is a browser (asks for HTML): send it to the login form.
    browser: bool,
    next: String,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let message = if self.status == StatusCode::UNAUTHORIZED {
            "log in, or send Authorization: Bearer <token>"
        } else {
            "your role does not allow this"
        };
        if self.api {
            let mut r = (
                self.status,
                axum::Json(serde_json::json!({ "error": message })),
            )
                .into_response();
            if self.status == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"holterd\""),
                );
            }
            r
        } else if self.status == StatusCode::UNAUTHORIZED && self.browser {
            let to = format!("/login?next={}", pages::url_encode(&self.next));
            axum::response::Redirect::to(&to).into_response()
        } else if self.status == StatusCode::UNAUTHORIZED {
            (self.status, pages::login_page(&self.next, None)).into_response()
        } else {
            pages::error_page(self.status, message).into_response()
        }
    }
}

fn authorize<S>(parts: &Parts, state: &HttpState<S>, role: Role) -> Result<Principal, Refused> {
    // Inside `nest`, `parts.uri` has lost its prefix; the original has it.
    let uri = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or(&parts.uri, |o| &o.0);
    let api = uri.path().starts_with("/api/");
    let browser = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let next = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    match state.web.accounts.principal(&parts.headers) {
        None => Err(Refused {
            status: StatusCode::UNAUTHORIZED,
            api,
            browser,
            next,
        }),
        Some(p) if p.role < role => Err(Refused {
            status: StatusCode::FORBIDDEN,
            api,
            browser,
            next,
        }),
        Some(p) => {
            // The access record a hospital's audit asks for: who read what (never the data).
            tracing::info!(
                target: "holterd::audit",
                user = %p.name,
                role = p.role.as_str(),
                method = %parts.method,
                path = uri.path(),
                "access"
            );
            Ok(p)
        }
    }
}

impl<S: Store> FromRequestParts<HttpState<S>> for Viewer {
    type Rejection = Refused;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &HttpState<S>,
    ) -> Result<Self, Self::Rejection> {
        authorize(parts, state, Role::Viewer).map(Viewer)
    }
}

impl<S: Store> FromRequestParts<HttpState<S>> for Uploader {
    type Rejection = Refused;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &HttpState<S>,
    ) -> Result<Self, Self::Rejection> {
        authorize(parts, state, Role::Uploader).map(Uploader)
    }
}

/// Liveness: always 200 while the process runs; the body says what is degraded
/// (from the metrics, without touching the database).
async fn healthz<S: Store>(State(s): State<HttpState<S>>) -> impl IntoResponse {
    let body = serde_json::json!({
        "status": "alive",
        "broker_connected": s.metrics.broker_connected.get() == 1,
        "store_up": s.metrics.store_up.get() == 1,
    })
    .to_string();
    ([(header::CONTENT_TYPE, "application/json")], body)
}

async fn readyz<S: Store>(State(s): State<HttpState<S>>) -> impl IntoResponse {
    let broker = s.metrics.broker_connected.get() == 1 && s.metrics.subscribed.get() == 1;
    let store = matches!(
        tokio::time::timeout(Duration::from_secs(2), s.store.ping()).await,
        Ok(Ok(()))
    );
    let body = serde_json::json!({ "broker": broker, "store": store }).to_string();
    let status = if broker && store {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

async fn metrics<S: Store>(State(s): State<HttpState<S>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

/// A handler failure: a status and a message for the caller (never internals
/// of the database; those go to the log).
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
}

impl Failure {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Failure {
        Failure::new(StatusCode::NOT_FOUND, what)
    }

    pub fn bad_request(what: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, what)
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(e: crate::store::StoreError) -> Failure {
        tracing::error!(error = %e, "store error while serving a request");
        if e.is_unavailable() {
            Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is not answering; try again shortly",
            )
        } else {
            // Corrupt rows or a schema that does not match: retrying will not help.
            Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "stored data could not be read; the error is in the server's log",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Failure;
    use crate::store::StoreError;
    use axum::http::StatusCode;

    #[test]
    fn a_corrupt_row_is_a_server_error_and_an_unreachable_database_is_unavailable() {
        let corrupt: Failure = StoreError::Corrupt("verdict \"maybe\"".into()).into();
        assert_eq!(corrupt.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!corrupt.message.contains("not answering"));
        let decode: Failure = StoreError::Db(sqlx::Error::ColumnNotFound("beat".into())).into();
        assert_eq!(decode.status, StatusCode::INTERNAL_SERVER_ERROR);
        let down: Failure = StoreError::Db(sqlx::Error::PoolTimedOut).into();
        assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
