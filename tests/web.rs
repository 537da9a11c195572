//! The web view and JSON API: authentication and roles on every route, login,
//! CSRF, filters and pagination, beats and strips, summaries, uploads (beats
//! and recordings, CSV and WFDB, good and bad) and the OpenAPI document.
//! Requests go straight into the router (no sockets), against SQLite.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use holterd::config::{Config, TokenEntry, UserEntry};
use holterd::http::auth::{hash_password, new_token};
use holterd::http::{HttpState, Web, router};
use holterd::metrics::Metrics;
use holterd::model::classifier::Classifier;
use holterd::pipeline::offline::analyze_recording;
use holterd::rhythm::hrv;
use holterd::rhythm::{Episode, EpisodeKind, RhythmBeat};
use holterd::store::{AnyStore, BeatRow, EpisodeRow, Store, Verdict};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const PASSWORD: &str = "a long test password";
/// 2025-01-01 00:00 UTC: where the seeded recording starts.
const T0: i64 = 1_735_689_600_000_000;

struct App {
    router: axum::Router,
    store: AnyStore,
    viewer: String,
    uploader: String,
}

async fn app_with(config_edit: impl FnOnce(&mut Config)) -> App {
    let store = common::sqlite_store().await;
    let (viewer, viewer_sha) = new_token();
    let (uploader, uploader_sha) = new_token();
    let mut config = Config::default();
    config.http.users = vec![UserEntry {
        name: "alice".into(),
        role: "viewer".into(),
        password_hash: hash_password(PASSWORD),
    }];
    config.http.tokens = vec![
        TokenEntry {
            name: "dashboard".into(),
            role: "viewer".into(),
            sha256: viewer_sha,
        },
        TokenEntry {
            name: "importer".into(),
            role: "uploader".into(),
            sha256: uploader_sha,
        },
    ];
    config_edit(&mut config);
    let state = HttpState {
        store: store.clone(),
        metrics: Arc::new(Metrics::new()),
        web: Arc::new(Web::from_config(&config).unwrap()),
    };
    App {
        router: router(state, true),
        store,
        viewer,
        uploader,
    }
}

async fn app() -> App {
    app_with(|_| {}).await
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl App {
    async fn send(&self, req: Request<Body>) -> Reply {
        let r = self.router.clone().oneshot(req).await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn get(&self, uri: &str, token: Option<&str>) -> Reply {
        let mut b = Request::get(uri);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    async fn get_cookie(&self, uri: &str, cookie: &str) -> Reply {
        self.send(
            Request::get(uri)
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// Posts a multipart form: `fields` in order, then `files` as (name, bytes).
    async fn upload(
        &self,
        uri: &str,
        auth: (&str, &str),
        fields: &[(&str, &str)],
        files: &[(&str, Vec<u8>)],
    ) -> Reply {
        let boundary = "holterdtestboundary7f3a";
        let mut body = Vec::new();
        for (k, v) in fields {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                )
                .as_bytes(),
            );
        }
        for (name, bytes) in files {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        self.send(
            Request::post(uri)
                .header(auth.0, auth.1)
                .header(
                    header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    /// Waits for an upload job (API) and returns its final state.
    async fn wait_job(&self, status_url: &str, token: &str) -> Value {
        for _ in 0..1200 {
            let j = self.get(status_url, Some(token)).await.json();
            if j["state"] != "running" {
                return j;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("upload job did not finish");
    }
}

fn bearer(t: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {t}"))
}

/// Stores the fixture record 100_0 (3 min) as device `rec-100`, analysed by the shipped model.
async fn seed(store: &AnyStore) -> Vec<BeatRow> {
    let f = common::load("100_0");
    let c = Classifier::load(&["models/cnn-lstm-inter"], &candle_core::Device::Cpu).unwrap();
    let mut beats = analyze_recording("rec-100", T0, f.fs, &f.signal, None, &c, 0.5).unwrap();
    let key = common::segment_key("rec-100", 1, 0);
    for b in &mut beats {
        b.segment = key.clone();
    }
    let chunks = common::chunk_rows(&key, T0, f.fs, &f.signal, 3600);
    let seg = common::segment_row(key, T0, f.fs);
    store
        .import_recording(&[seg], &chunks, &beats, &[seeded_episode()])
        .await
        .unwrap();
    beats
}

/// A stored beat as the summary's HRV reads it: unreadable is `None`, a
/// binary model's normal beat is N and its abnormal beat Q (not N).
fn rhythm_beat(b: &BeatRow) -> RhythmBeat {
    use holterd::formats::wfdb::AamiClass;
    RhythmBeat {
        r_time_us: b.r_time_us,
        class: match (b.verdict, b.class) {
            (Verdict::Unreadable, _) => None,
            (_, Some(c)) => Some(c),
            (Verdict::Normal, None) => Some(AamiClass::N),
            (Verdict::Abnormal, None) => Some(AamiClass::Q),
        },
    }
}

/// Equal, both absent, or within 1e-12 relative (JSON's decimal text may round the last bit).
fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * b.abs().max(1.0),
        (a, b) => a == b,
    }
}

/// A tachycardia episode stored with the seeded beats (record 100 has none of its own).
fn seeded_episode() -> EpisodeRow {
    EpisodeRow {
        device: "rec-100".into(),
        episode: Episode {
            kind: EpisodeKind::Tachycardia,
            start_us: T0 + 30_000_000,
            end_us: T0 + 45_000_000,
            beats: 30,
            min_bpm: 104.0,
            max_bpm: 131.0,
        },
        ongoing: false,
        analyser: "rhythm/1 test".into(),
    }
}

/// Every GET page and API route, with placeholders filled for the seeded data.
fn get_routes(t: i64) -> Vec<String> {
    let mut v: Vec<String> = [
        "/",
        "/devices/rec-100",
        "/devices/rec-100/summary",
        "/devices/rec-100/summary.csv",
        "/models",
        "/uploads",
        "/api/v1/devices",
        "/api/v1/devices/rec-100/beats",
        "/api/v1/devices/rec-100/trend",
        "/api/v1/devices/rec-100/summary",
        "/api/v1/devices/rec-100/episodes",
        "/api/v1/models",
        "/api/v1/uploads",
        "/api/v1/openapi.json",
    ]
    .map(String::from)
    .to_vec();
    v.push(format!("/devices/rec-100/beats/{t}"));
    v.push(format!("/api/v1/devices/rec-100/beats/{t}"));
    v
}

#[tokio::test]
async fn every_route_needs_authentication_and_leaks_nothing() {
    let a = app().await;
    let beats = seed(&a.store).await;
    let t = beats[10].r_time_us;
    for uri in get_routes(t) {
        let r = a.get(&uri, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri}");
        // Only the login form or an error: no tables, plots or values.
        let refusal = if uri.starts_with("/api/") {
            r.json()
                .as_object()
                .is_some_and(|o| o.len() == 1 && o.contains_key("error"))
        } else {
            r.body.contains("action=\"/login\"")
                && !r.body.contains("<table")
                && !r.body.contains("<svg")
        };
        assert!(refusal, "{uri} leaks data: {}", r.body);
        assert!(r.headers.contains_key("content-security-policy"), "{uri}");
        let r = a.get(&uri, Some("not-a-token")).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{uri} with a wrong token"
        );
        let r = a.get(&uri, Some(&a.viewer)).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.body);
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
        assert_eq!(
            r.headers["cache-control"]
                .to_str()
                .unwrap()
                .contains("no-store"),
            !uri.starts_with("/static")
        );
    }
    // A browser (asking for HTML) is sent to the login form instead, still without data.
    let r = a
        .send(
            Request::get("/devices/rec-100?verdict=all")
                .header(header::ACCEPT, "text/html,application/xhtml+xml")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers[header::LOCATION],
        "/login?next=/devices/rec-100%3Fverdict%3Dall"
    );
    assert!(r.body.is_empty());
    // API refusals are JSON and say how to authenticate.
    let r = a.get("/api/v1/devices", None).await;
    assert!(r.headers.contains_key(header::WWW_AUTHENTICATE));
    assert!(r.json()["error"].as_str().unwrap().contains("Bearer"));
    // Probes stay open and show no data.
    assert_eq!(a.get("/healthz", None).await.status, StatusCode::OK);
    // A viewer may not upload, by API or page; nothing is stored.
    let (k, v) = bearer(&a.viewer);
    for uri in ["/api/v1/uploads", "/uploads"] {
        let r = a
            .upload(
                uri,
                (k, &v),
                &[("kind", "beats")],
                &[("b.csv", b"1".to_vec())],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}");
    }
    assert!(a.store.uploads(10).await.unwrap().is_empty());
    assert_eq!(
        a.get("/api/v1/nope", Some(&a.viewer)).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn login_session_csrf_and_logout() {
    let a = app().await;
    let login = |name: &str, pw: &str| {
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "name={name}&password={}&next=/models",
                pw.replace(' ', "+")
            )))
            .unwrap()
    };
    let r = a.send(login("alice", "wrong")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("Wrong name or password"));
    let r = a.send(login("alice", PASSWORD)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers[header::LOCATION], "/models");
    let set = r.headers[header::SET_COOKIE].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(set.contains(attr), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_string();
    let page = a.get_cookie("/", &cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    // An open redirect is refused: `next` must be a local path.
    let r = a
        .send(
            Request::post("/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!(
                    "name=alice&password={}&next=//evil.example/",
                    PASSWORD.replace(' ', "+")
                )))
                .unwrap(),
        )
        .await;
    assert_eq!(r.headers[header::LOCATION], "/");
    // Logging out needs the CSRF token.
    let logout = |token: &str| {
        Request::post("/logout")
            .header(header::COOKIE, &cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={token}")))
            .unwrap()
    };
    assert_eq!(a.send(logout("forged")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(a.get_cookie("/", &cookie).await.status, StatusCode::OK);
    assert_eq!(a.send(logout(&csrf)).await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        a.get_cookie("/", &cookie).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn beats_filters_pagination_beat_and_summary() {
    let a = app().await;
    let beats = seed(&a.store).await;
    let tok = Some(a.viewer.as_str());
    // Pages of 25, following `next_after`, give every beat once, in order.
    let mut seen = Vec::new();
    let mut uri = "/api/v1/devices/rec-100/beats?verdict=all&limit=25".to_string();
    loop {
        let r = a.get(&uri, tok).await.json();
        let page = r["beats"].as_array().unwrap().clone();
        assert!(page.len() <= 25);
        seen.extend(page.iter().map(|b| b["r_time_us"].as_i64().unwrap()));
        match r["next_after"].as_i64() {
            Some(after) => {
                uri = format!("/api/v1/devices/rec-100/beats?verdict=all&limit=25&after={after}")
            }
            None => break,
        }
    }
    let expected: Vec<i64> = beats.iter().map(|b| b.r_time_us).collect();
    assert_eq!(seen, expected);

    // Verdict and probability filters.
    let r = a
        .get(
            "/api/v1/devices/rec-100/beats?verdict=normal&min_p=0.2&limit=1000",
            tok,
        )
        .await
        .json();
    let want = beats
        .iter()
        .filter(|b| b.verdict.as_str() == "normal" && b.p_abnormal.unwrap() >= 0.2)
        .count();
    assert_eq!(r["beats"].as_array().unwrap().len(), want);
    // A time range.
    let (from, to) = (T0 + 60_000_000, T0 + 120_000_000);
    let r = a
        .get(
            &format!("/api/v1/devices/rec-100/beats?verdict=all&limit=1000&from={from}&to={to}"),
            tok,
        )
        .await
        .json();
    let want = beats
        .iter()
        .filter(|b| (from..to).contains(&b.r_time_us))
        .count();
    assert_eq!(r["beats"].as_array().unwrap().len(), want);
    let r = a.get("/api/v1/devices/rec-100/beats?from=2025-01-01T00:01&to=2025-01-01T00:02&verdict=all&limit=1000", tok).await.json();
    assert_eq!(
        r["beats"].as_array().unwrap().len(),
        want,
        "UTC datetimes work as well as µs"
    );
    // Bad filters are named.
    for (q, word) in [
        ("verdict=odd", "verdict"),
        ("min_p=2", "min_p"),
        ("from=yesterday", "from"),
        ("from=10&to=5", "before"),
    ] {
        let r = a
            .get(&format!("/api/v1/devices/rec-100/beats?{q}"), tok)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
        assert!(
            r.json()["error"].as_str().unwrap().contains(word),
            "{q}: {}",
            r.body
        );
        let r = a.get(&format!("/devices/rec-100?{q}"), tok).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "page {q}");
    }

    // Rhythm episodes: by range and kind; a kind that does not exist is named.
    let r = a
        .get("/api/v1/devices/rec-100/episodes?from=0", tok)
        .await
        .json();
    let e = &r["episodes"][0];
    assert_eq!(r["episodes"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(e["kind"], "tachycardia");
    assert_eq!(e["start_us"], T0 + 30_000_000);
    assert_eq!(e["duration_s"], 15.0);
    assert_eq!(
        (e["beats"].clone(), e["ongoing"].clone()),
        (json!(30), json!(false))
    );
    let q = format!("from={}&kind=pause", T0);
    let r = a
        .get(&format!("/api/v1/devices/rec-100/episodes?{q}"), tok)
        .await
        .json();
    assert_eq!(r["episodes"].as_array().unwrap().len(), 0, "{r}");
    let q = format!("from={}&to={}", T0 + 50_000_000, T0 + 60_000_000);
    let r = a
        .get(&format!("/api/v1/devices/rec-100/episodes?{q}"), tok)
        .await
        .json();
    assert_eq!(
        r["episodes"].as_array().unwrap().len(),
        0,
        "after its end: {r}"
    );
    // The summary reports them, page, API and CSV.
    let q = format!("from={}&to={}", T0, T0 + 180_000_000);
    let r = a
        .get(&format!("/api/v1/devices/rec-100/summary?{q}"), tok)
        .await
        .json();
    assert_eq!(r["rhythm"][0]["kind"], "tachycardia", "{r}");
    assert_eq!(r["rhythm"][0]["total_s"], 15.0);
    assert_eq!(
        r["af_burden"],
        Value::Null,
        "the seeded beats are a binary model's"
    );
    assert_eq!(r["episodes"][0]["beats"], 30);
    let page = a
        .get(&format!("/devices/rec-100/summary?{q}"), tok)
        .await
        .body;
    assert!(
        page.contains("AF burden") && page.contains("tachycardia"),
        "{page}"
    );
    let csv = a
        .get(&format!("/devices/rec-100/summary.csv?{q}"), tok)
        .await
        .body;
    assert!(csv.contains("\ntachycardia_episodes,1,"), "{csv}");
    // The report's timeline draws the episode over the trend, linked to the ECG at its onset.
    let onset = format!("/devices/rec-100/beats/{}", T0 + 30_000_000);
    let timeline = page
        .split("<svg class=\"chart timeline\"")
        .nth(1)
        .and_then(|rest| rest.split("</svg>").next())
        .unwrap_or_else(|| panic!("no timeline: {page}"));
    assert_eq!(
        timeline.matches(&format!("href=\"{onset}\"")).count(),
        2,
        "band and bar: {timeline}"
    );
    assert!(
        timeline.contains("class=\"bar ep-tachycardia\"")
            && timeline.contains(">Tachycardia</text>")
            && timeline.contains("<path class=\"s1\""),
        "{timeline}"
    );
    let r = a
        .get("/api/v1/devices/rec-100/episodes?kind=vfib", tok)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("atrial_fibrillation"),
        "{}",
        r.body
    );

    // One beat: its values, the ±5 s strip, neighbours.
    let b = &beats[20];
    let r = a
        .get(
            &format!("/api/v1/devices/rec-100/beats/{}", b.r_time_us),
            tok,
        )
        .await
        .json();
    assert_eq!(r["beat"].as_array().unwrap().len(), 187);
    assert_eq!(r["verdict"], b.verdict.as_str());
    let strip_samples: usize = r["strip"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["samples_mv"].as_array().unwrap().len())
        .sum();
    assert!(strip_samples >= 3600, "{strip_samples}");
    assert_eq!(
        a.get("/api/v1/devices/rec-100/beats/123", tok).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        a.get("/devices/rec-100/beats/123", tok).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        a.get("/devices/bad%20id", tok).await.status,
        StatusCode::NOT_FOUND
    );
    let page = a
        .get(&format!("/devices/rec-100/beats/{}", b.r_time_us), tok)
        .await;
    // The ±5 s strip on ECG paper, and the 187-sample beat as a chart.
    assert!(
        page.body.contains("<svg class=\"ecg-paper\"") && page.body.contains("25 mm/s, 10 mm/mV")
    );
    assert!(page.body.contains("<svg class=\"chart\""));

    // The summary counts what was stored.
    let s = a.get("/api/v1/devices/rec-100/summary", tok).await.json();
    assert_eq!(s["counts"]["beats"].as_u64().unwrap() as usize, beats.len());
    let abnormal = beats
        .iter()
        .filter(|b| b.verdict.as_str() == "abnormal")
        .count();
    assert_eq!(s["counts"]["abnormal"].as_u64().unwrap() as usize, abnormal);
    let hr = s["heart_rate_mean"].as_f64().unwrap();
    assert!(
        (60.0..90.0).contains(&hr),
        "record 100 beats at about 75/min, got {hr}"
    );
    assert_eq!(s["recorded_minutes"], 3);
    // 00:00–00:03 UTC is night: the day has no minutes, the night all three.
    assert_eq!(s["night_hours_utc"], json!([22, 7]));
    assert_eq!(s["heart_rate_day"]["minutes"], 0);
    assert_eq!(s["heart_rate_day"]["mean"], Value::Null);
    assert_eq!(s["heart_rate_night"]["minutes"], 3);
    assert_eq!(s["heart_rate_night"]["mean"], s["heart_rate_mean"]);
    assert_eq!(s["heart_rate_night"]["max"], s["heart_rate_max"]);
    // HRV of the stored beats is HRV of the beats as analysed (normal verdicts
    // are N for this binary model): the store loses nothing on the way.
    let direct: Vec<RhythmBeat> = beats.iter().map(rhythm_beat).collect();
    let want = hrv::time_domain(&direct).expect("3 min of sinus rhythm");
    let got = &s["hrv"];
    assert_eq!(got["nn_intervals"], want.nn_intervals, "{got}");
    assert_eq!(got["nn_pairs"], want.nn_pairs);
    for (k, v) in [
        ("mean_nn_ms", want.mean_nn_ms),
        ("sdnn_ms", want.sdnn_ms),
        ("rmssd_ms", want.rmssd_ms),
        ("pnn50", want.pnn50),
    ] {
        assert!(close(got[k].as_f64(), Some(v)), "{k}: {got} vs {v}");
    }
    assert!(
        want.nn_intervals > 150 && (600.0..1000.0).contains(&want.mean_nn_ms),
        "{want:?}"
    );
    assert_eq!(
        got["sdann_ms"],
        Value::Null,
        "3 minutes: no 5-minute segments"
    );
    let page = a.get("/devices/rec-100/summary", tok).await.body;
    for text in [
        "Heart-rate variability",
        "SDNN index",
        "RMSSD",
        "Night (22:00–07:00 UTC)",
        "Day (07:00–22:00 UTC)",
        "<section class=\"report\" id=\"hrv\">",
    ] {
        assert!(page.contains(text), "{text}: {page}");
    }
    let csv = a.get("/devices/rec-100/summary.csv", tok).await;
    for row in [
        "\nheart_rate_day_mean_bpm,,\n".to_string(),
        format!("\nhrv_nn_intervals,{},\n", want.nn_intervals),
        format!("\nhrv_sdnn_ms,{:.1},\n", want.sdnn_ms),
        format!("\nhrv_rmssd_ms,{:.1},\n", want.rmssd_ms),
        "\nhrv_sdann_ms,,\n".to_string(),
        "\nnight_hours_utc,22-07,\n".to_string(),
    ] {
        assert!(csv.body.contains(&row), "{row:?}: {}", csv.body);
    }
    assert!(
        csv.body.contains("\nheart_rate_night_mean_bpm,")
            && !csv.body.contains("\nheart_rate_night_mean_bpm,,"),
        "{}",
        csv.body
    );
    assert!(
        csv.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        csv.body.contains(&format!("beats,{},", beats.len())),
        "{}",
        csv.body
    );
    let trend = a
        .get(
            &format!(
                "/api/v1/devices/rec-100/trend?from={T0}&to={}",
                T0 + 180_000_000
            ),
            tok,
        )
        .await
        .json();
    assert_eq!(trend["heart_rate"].as_array().unwrap().len(), 3);
}

/// The Kaggle layout: 187 values, then the label when `labels`.
fn beats_csv(beats: &[BeatRow], labels: bool) -> Vec<u8> {
    let mut s = String::new();
    for (i, b) in beats.iter().enumerate() {
        let row: Vec<String> = b.values.iter().map(|v| format!("{v:e}")).collect();
        s.push_str(&row.join(","));
        if labels {
            s.push_str(if i % 3 == 0 { ",1.0" } else { ",0.0" });
        }
        s.push('\n');
    }
    s.into_bytes()
}

#[tokio::test]
async fn labelled_beats_upload_classifies_evaluates_and_stores_nothing_when_bad() {
    let a = app().await;
    let beats = seed(&a.store).await;
    let (k, v) = bearer(&a.uploader);
    let r = a
        .upload(
            "/api/v1/uploads",
            (k, &v),
            &[("kind", "beats"), ("model", "cnn-lstm-inter")],
            &[("beats.csv", beats_csv(&beats, true))],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let job = a
        .wait_job(r.json()["status"].as_str().unwrap(), &a.uploader)
        .await;
    assert_eq!(job["state"], "done", "{job}");
    let id = job["result"]
        .as_str()
        .unwrap()
        .trim_start_matches("/uploads/")
        .to_string();
    let u = a
        .get(&format!("/api/v1/uploads/{id}?limit=1000"), Some(&a.viewer))
        .await
        .json();
    assert_eq!(u["beats"].as_u64().unwrap() as usize, beats.len());
    assert_eq!(u["uploaded_by"], "importer");
    // The same verdicts and probabilities as the daemon's for these beats.
    for (row, b) in u["rows"].as_array().unwrap().iter().zip(&beats) {
        assert_eq!(row["verdict"], b.verdict.as_str());
        let p = row["p_abnormal"].as_f64().unwrap();
        assert!((p - b.p_abnormal.unwrap() as f64).abs() < 1e-5);
    }
    let e = &u["evaluation"];
    let total = ["tp", "fp", "fn", "tn"]
        .iter()
        .map(|k| e[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(total as usize, beats.len());
    for m in ["accuracy", "precision", "recall", "f1", "kappa", "roc_auc"] {
        assert!(e[m].is_number(), "{m}");
    }
    let page = a
        .get(&format!("/uploads/{id}?tab=abnormal"), Some(&a.viewer))
        .await;
    assert!(page.body.contains("Cohen") && page.body.contains("abnormal ("));
    let one = a
        .get(&format!("/api/v1/uploads/{id}/beats/3"), Some(&a.viewer))
        .await
        .json();
    assert_eq!(one["beat"].as_array().unwrap().len(), 187);
    assert_eq!(one["label"], 1);

    // Bad files are refused with the row and column, and store nothing.
    let mut bad = beats_csv(&beats[..5], false);
    let text = String::from_utf8(bad.clone()).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mut cells: Vec<String> = lines[3].split(',').map(String::from).collect();
    cells[4] = "NaN".into();
    lines[3] = cells.join(",");
    bad = (lines.join("\n") + "\n").into_bytes();
    let r = a
        .upload(
            "/api/v1/uploads",
            (k, &v),
            &[("kind", "beats")],
            &[("bad.csv", bad)],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("row 4, column 5"),
        "{}",
        r.body
    );
    for (name, body, word) in [
        ("empty.csv", Vec::new(), "no beats"),
        ("short.csv", b"1,2,3\n".to_vec(), "3 columns"),
        ("latin1.csv", vec![0xe9, b'\n'], "UTF-8"),
    ] {
        let r = a
            .upload(
                "/api/v1/uploads",
                (k, &v),
                &[("kind", "beats")],
                &[(name, body)],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name}");
        assert!(
            r.json()["error"].as_str().unwrap().contains(word),
            "{name}: {}",
            r.body
        );
    }
    let r = a
        .upload(
            "/api/v1/uploads",
            (k, &v),
            &[("kind", "beats"), ("model", "../secret")],
            &[("b.csv", beats_csv(&beats[..2], false))],
        )
        .await;
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("choose one of"),
        "{}",
        r.body
    );
    assert_eq!(
        a.store.uploads(10).await.unwrap().len(),
        1,
        "only the good upload was stored"
    );

    // An RR-aware model cannot classify bare beats: the job fails and says why.
    let r = a
        .upload(
            "/api/v1/uploads",
            (k, &v),
            &[("kind", "beats"), ("model", "cnn-lstm-rr-inter")],
            &[("b.csv", beats_csv(&beats[..2], false))],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let job = a
        .wait_job(r.json()["status"].as_str().unwrap(), &a.uploader)
        .await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["message"].as_str().unwrap().contains("RR intervals"),
        "{job}"
    );

    // A row no heart produced (a square wave) gets no verdict but "unreadable".
    let mut csv = beats_csv(&beats[..2], false);
    let square: Vec<String> = (0..187)
        .map(|k| if (k / 10) % 2 == 0 { "1" } else { "0" }.to_string())
        .collect();
    csv.extend_from_slice((square.join(",") + "\n").as_bytes());
    let r = a
        .upload(
            "/api/v1/uploads",
            (k, &v),
            &[("kind", "beats"), ("model", "cnn-lstm-inter")],
            &[("square.csv", csv)],
        )
        .await;
    let job = a
        .wait_job(r.json()["status"].as_str().unwrap(), &a.uploader)
        .await;
    assert_eq!(job["state"], "done", "{job}");
    assert!(
        job["message"].as_str().unwrap().contains("1 unreadable"),
        "{job}"
    );
    let id = job["result"]
        .as_str()
        .unwrap()
        .trim_start_matches("/uploads/");
    let u = a
        .get(&format!("/api/v1/uploads/{id}"), Some(&a.viewer))
        .await
        .json();
    let rows = u["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_ne!(rows[0]["verdict"], "unreadable");
    assert_eq!(rows[2]["verdict"], "unreadable");
    assert!(rows[2]["p_abnormal"].is_null());
}

#[tokio::test]
async fn oversized_uploads_are_refused() {
    let a = app_with(|c| c.http.max_upload_mib = 1).await;
    let (k, v) = bearer(&a.uploader);
    let big = vec![b'0'; 3 * 1024 * 1024];
    let r = a
        .upload(
            "/api/v1/uploads",
            (k, &v),
            &[("kind", "recording"), ("fs", "360"), ("device", "x")],
            &[("big.csv", big)],
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert!(a.store.uploads(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn session_uploads_need_the_csrf_token() {
    let a = app_with(|c| c.http.users[0].role = "uploader".into()).await;
    let r = a
        .send(
            Request::post("/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!(
                    "name=alice&password={}",
                    PASSWORD.replace(' ', "+")
                )))
                .unwrap(),
        )
        .await;
    let cookie = r.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csv = "0.5,".repeat(186) + "0.5\n";
    let r = a
        .upload(
            "/uploads",
            ("cookie", &cookie),
            &[("csrf", "forged"), ("kind", "beats")],
            &[("b.csv", csv.clone().into_bytes())],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("CSRF"));
    let form = a.get_cookie("/uploads", &cookie).await.body;
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let r = a
        .upload(
            "/uploads",
            ("cookie", &cookie),
            &[("csrf", &csrf), ("kind", "beats")],
            &[("b.csv", csv.into_bytes())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let job = r.headers[header::LOCATION].to_str().unwrap().to_string();
    assert!(job.starts_with("/uploads/jobs/"));
    for _ in 0..600 {
        let page = a.get_cookie(&job, &cookie).await;
        if page.body.contains("See the result") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the job page never showed the result");
}

/// Record 100 in full when the MIT-BIH database is at hand, else the 3-minute fixture.
fn record_100() -> std::path::PathBuf {
    let dir = std::env::var("HOLTER_DATA_DIR").unwrap_or_else(|_| "../shared/data".into());
    let full = std::path::Path::new(&dir).join("mitdb").join("100");
    if full.with_extension("hea").is_file() {
        full
    } else {
        common::fixture("100_0")
    }
}

/// What `holterd analyze` prints for `record` starting at `t0`: (R time, verdict, p).
fn command_line_verdicts(record: &std::path::Path, t0: i64) -> Vec<(i64, String, f64)> {
    let out = common::temp_dir("analyze").join("verdicts.csv");
    let status = common::holterd()
        .args([
            "analyze",
            record.to_str().unwrap(),
            "--t0-us",
            &t0.to_string(),
            // The upload's default model, named: `analyze` defaults to the daemon's.
            "--model",
            "models/cnn-lstm-inter",
            "--out",
            out.to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    text.lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (
                c[0].parse().unwrap(),
                c[3].to_string(),
                c[4].parse().unwrap_or(f64::NAN),
            )
        })
        .collect()
}

async fn stored_verdicts(a: &App, device: &str) -> Vec<(i64, String, f64)> {
    let mut out = Vec::new();
    let mut uri = format!(
        "/api/v1/devices/{device}/beats?verdict=all&limit=1000&from=0&to={}",
        i64::MAX
    );
    loop {
        let r = a.get(&uri, Some(&a.viewer)).await.json();
        for b in r["beats"].as_array().unwrap() {
            out.push((
                b["r_time_us"].as_i64().unwrap(),
                b["verdict"].as_str().unwrap().to_string(),
                b["p_abnormal"].as_f64().unwrap_or(f64::NAN),
            ));
        }
        match r["next_after"].as_i64() {
            Some(after) => {
                uri = format!(
                    "/api/v1/devices/{device}/beats?verdict=all&limit=1000&from=0&to={}&after={after}",
                    i64::MAX
                )
            }
            None => return out,
        }
    }
}

fn assert_same(stored: &[(i64, String, f64)], cli: &[(i64, String, f64)]) {
    assert_eq!(stored.len(), cli.len());
    for (s, c) in stored.iter().zip(cli) {
        assert_eq!((s.0, &s.1), (c.0, &c.1));
        assert!(
            (s.2 - c.2).abs() < 1e-6 || (s.2.is_nan() && c.2.is_nan()),
            "{s:?} vs {c:?}"
        );
    }
}

#[tokio::test]
async fn recording_uploads_as_csv_and_wfdb_match_the_command_line() {
    let a = app().await;
    let record = record_100();
    let cli = command_line_verdicts(&record, T0);
    assert!(cli.len() > 100);
    let (k, v) = bearer(&a.uploader);

    // WFDB: the .hea and .dat as they are.
    let name = record.file_name().unwrap().to_str().unwrap().to_string();
    let files = [
        (
            format!("{name}.hea"),
            std::fs::read(record.with_extension("hea")).unwrap(),
        ),
        (
            format!("{name}.dat"),
            std::fs::read(record.with_extension("dat")).unwrap(),
        ),
    ];
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let r = a
        .upload(
            "/api/v1/uploads",
            (k, &v),
            &[
                ("kind", "wfdb"),
                ("device", "wfdb-100"),
                ("start", &T0.to_string()),
            ],
            &files,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let job = a
        .wait_job(r.json()["status"].as_str().unwrap(), &a.uploader)
        .await;
    assert_eq!(job["state"], "done", "{job}");
    assert_same(&stored_verdicts(&a, "wfdb-100").await, &cli);

    // CSV: a time column and the record's two leads, as PhysioNet exports them.
    let rec = holterd::formats::wfdb::read_record(&record).unwrap();
    let (mlii, v5) = (rec.physical(0), rec.physical(1));
    let mut csv = String::from("'Elapsed time','MLII','V5'\n'seconds','mV','mV'\n");
    for (i, (x, y)) in mlii.iter().zip(&v5).enumerate() {
        csv.push_str(&format!("{:.6},{x},{y}\n", i as f64 / rec.header.fs));
    }
    let r = a
        .upload(
            "/api/v1/uploads",
            (k, &v),
            &[
                ("kind", "recording"),
                ("device", "csv-100"),
                ("start", &T0.to_string()),
                ("lead", "MLII"),
            ],
            &[("100.csv", csv.into_bytes())],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let job = a
        .wait_job(r.json()["status"].as_str().unwrap(), &a.uploader)
        .await;
    assert_eq!(job["state"], "done", "{job}");
    assert_same(&stored_verdicts(&a, "csv-100").await, &cli);

    // Reviewable like a live stream.
    let page = a.get("/devices/csv-100", Some(&a.viewer)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Heart rate"));

    // A recording with a broken row stores nothing.
    let r = a
        .upload(
            "/api/v1/uploads",
            (k, &v),
            &[("kind", "recording"), ("device", "bad-1")],
            &[("bad.csv", b"t,MLII\n0,0.1\n0.0027,x\n".to_vec())],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("row 3, column 2"),
        "{}",
        r.body
    );
    let devices = a.get("/api/v1/devices", Some(&a.viewer)).await.json();
    assert!(!devices.to_string().contains("bad-1"));
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let a = app().await;
    let beats = seed(&a.store).await;
    let doc = a.get("/api/v1/openapi.json", Some(&a.viewer)).await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 10);
    for (path, ops) in paths {
        let uri = format!("/api/v1{path}")
            .replace("{device}", "rec-100")
            .replace("{t}", &beats[0].r_time_us.to_string())
            .replace("{job}", "nojob")
            .replace("{id}", "noupload")
            .replace("{row}", "0");
        for method in ops.as_object().unwrap().keys() {
            let r = if method == "post" {
                let (k, v) = bearer(&a.uploader);
                a.upload(&uri, (k, &v), &[("kind", "beats")], &[]).await
            } else {
                a.get(&uri, Some(&a.uploader)).await
            };
            assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            assert!(
                !r.body.contains("no such API route"),
                "{method} {uri} is documented but not routed"
            );
        }
    }
}

/// 14 hours (18:00 to 08:00 UTC) of synthetic five-class beats: 800/820 ms
/// alternating by day, 1000/1020 ms by night, every 97th beat a V.
#[tokio::test]
async fn the_report_splits_day_and_night_and_reads_every_beat_for_hrv() {
    use holterd::formats::wfdb::AamiClass;
    use holterd::review::is_night;
    let a = app().await;
    let key = common::segment_key("long", 1, 0);
    let start = T0 - 6 * 3_600_000_000;
    let end = T0 + 8 * 3_600_000_000;
    let mut beats = Vec::new();
    let mut t = start;
    let mut i = 0u64;
    loop {
        let night = is_night(t.div_euclid(60_000_000));
        let rr_ms = if night { 1000 } else { 800 } + 20 * (i % 2) as i64;
        t += rr_ms * 1000;
        if t >= end {
            break;
        }
        i += 1;
        let v = i.is_multiple_of(97);
        beats.push(BeatRow {
            segment: key.clone(),
            r_time_us: t,
            sample: i,
            rr_prev_ms: Some(rr_ms as f32),
            rr_next_ms: None,
            quality: holterd::dsp::Quality::Good,
            searchback: false,
            verdict: if v {
                Verdict::Abnormal
            } else {
                Verdict::Normal
            },
            p_abnormal: Some(if v { 0.9 } else { 0.1 }),
            class: Some(if v { AamiClass::V } else { AamiClass::N }),
            class_probs: None,
            model: "synthetic".into(),
            model_version: "1".into(),
            values: vec![0.0; 187],
        });
    }
    assert!(beats.len() > 50_000, "more than one page of the HRV read");
    let stored = beats.len();
    a.store
        .import_recording(&[common::segment_row(key, start, 360.0)], &[], &beats, &[])
        .await
        .unwrap();
    let tok = Some(a.viewer.as_str());
    let started = std::time::Instant::now();
    let s = a
        .get(
            &format!("/api/v1/devices/long/summary?from={start}&to={end}"),
            tok,
        )
        .await
        .json();
    eprintln!(
        "summary of {} beats ({} h): {:.2} s",
        beats.len(),
        (end - start) / 3_600_000_000,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(s["counts"]["beats"], stored);
    let (day, night) = (&s["heart_rate_day"], &s["heart_rate_night"]);
    // 18:00–22:00 and 07:00–08:00 by day, 22:00–07:00 by night.
    assert_eq!(day["minutes"], 5 * 60, "{day}");
    assert_eq!(night["minutes"], 9 * 60, "{night}");
    let mean = |h: &Value| h["mean"].as_f64().unwrap_or(0.0);
    assert!((mean(day) - 60_000.0 / 810.0).abs() < 0.1, "{day}");
    assert!((mean(night) - 60_000.0 / 1010.0).abs() < 0.1, "{night}");
    let at = |h: &Value, k: &str| h[k]["at_us"].as_i64().unwrap_or(0);
    for k in ["min", "max"] {
        assert!(!is_night(at(day, k) / 60_000_000), "{day}");
        assert!(is_night(at(night, k) / 60_000_000), "{night}");
    }
    // HRV over every stored beat, read in pages: the same as over the beats themselves.
    let direct: Vec<RhythmBeat> = beats.iter().map(rhythm_beat).collect();
    let want = hrv::time_domain(&direct).expect("14 hours");
    let got = &s["hrv"];
    assert_eq!(got["nn_intervals"], want.nn_intervals, "{got}");
    assert_eq!(got["segments"], want.segments, "{got}");
    for (k, v) in [
        ("sdnn_ms", Some(want.sdnn_ms)),
        ("sdann_ms", want.sdann_ms),
        ("sdnn_index_ms", want.sdnn_index_ms),
        ("rmssd_ms", Some(want.rmssd_ms)),
        ("pnn50", Some(want.pnn50)),
    ] {
        assert!(close(got[k].as_f64(), v), "{k}: {got} vs {v:?}");
    }
    // Each V beat takes two intervals (the last beat's only one).
    let v_beats = beats.len() / 97;
    let candidates = beats.len() - 1 - 2 * v_beats;
    assert!(
        (candidates..=candidates + 1).contains(&want.nn_intervals),
        "{} of {candidates}",
        want.nn_intervals
    );
    // Every successive difference is 20 ms but the two at the changes of
    // rate (about 200 ms, within 20 % of their medians); 5-minute means are
    // 810 or 1010 ms.
    assert!((want.rmssd_ms - 20.0).abs() < 0.1, "{want:?}");
    assert!(want.pnn50 > 0.0 && want.pnn50 < 0.01, "{want:?}");
    assert_eq!(want.segments, 14 * 12);
    assert!(
        want.sdann_ms.is_some_and(|v| (90.0..110.0).contains(&v)),
        "{want:?}"
    );
}
