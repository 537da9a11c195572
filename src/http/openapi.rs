//! The OpenAPI 3.1 document of `/api/v1`, built from one table of operations
//! ([`OPERATIONS`]). Tests check the table against the router both ways: every
//! documented operation is served, and every route is documented.

use serde_json::{Map, Value, json};

/// Where a parameter goes.
#[derive(Clone, Copy)]
pub enum In {
    Path,
    Query,
}

/// One parameter: name, place, JSON type, description.
pub type Param = (&'static str, In, &'static str, &'static str);

/// One API operation.
pub struct Operation {
    pub method: &'static str,
    /// Path under `/api/v1`, with `{name}` parameters.
    pub path: &'static str,
    pub summary: &'static str,
    /// `viewer` or `uploader`.
    pub role: &'static str,
    pub params: &'static [Param],
}

const RANGE: [Param; 2] = [
    (
        "from",
        In::Query,
        "string",
        "Start, µs since 1970 or YYYY-MM-DDTHH:MM (UTC); default: 24 h before `to`",
    ),
    (
        "to",
        In::Query,
        "string",
        "End (exclusive); default: the device's last beat",
    ),
];
const DEVICE: Param = ("device", In::Path, "string", "Device id");

/// Every operation of `/api/v1`.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        method: "get",
        path: "/devices",
        summary: "Every device: last seen, live, heart rate, today's beats by verdict, readable share",
        role: "viewer",
        params: &[],
    },
    Operation {
        method: "get",
        path: "/devices/{device}/beats",
        summary: "A device's beats in a time range, filtered by verdict, AAMI class and minimum p(abnormal); page with `after`. Each beat carries `class` (N, S, V, F, Q or null)",
        role: "viewer",
        params: &[
            DEVICE,
            RANGE[0],
            RANGE[1],
            (
                "verdict",
                In::Query,
                "string",
                "abnormal (default; all when `class` is given), normal, unreadable or all",
            ),
            (
                "class",
                In::Query,
                "string",
                "Only beats of this AAMI class: N, S, V, F or Q (empty: any)",
            ),
            ("min_p", In::Query, "number", "Minimum p(abnormal), 0 to 1"),
            (
                "after",
                In::Query,
                "integer",
                "Only beats after this R time (µs): pass `next_after` for the next page",
            ),
            (
                "limit",
                In::Query,
                "integer",
                "Beats per page, 1 to 1000 (default 50)",
            ),
        ],
    },
    Operation {
        method: "get",
        path: "/devices/{device}/beats/{t}",
        summary: "One beat: verdict, probability, `class` (N, S, V, F, Q or null) and `class_probs` ({\"N\": p, …} or null), its 187 values, the raw ECG within ±5 s, previous/next flagged beat",
        role: "viewer",
        params: &[
            DEVICE,
            ("t", In::Path, "integer", "R-peak time, µs since 1970"),
        ],
    },
    Operation {
        method: "get",
        path: "/devices/{device}/trend",
        summary: "Heart-rate trend (up to 288 points), beat counts by verdict, and by AAMI class (count, share of classified beats, per recorded hour) over a range",
        role: "viewer",
        params: &[DEVICE, RANGE[0], RANGE[1]],
    },
    Operation {
        method: "get",
        path: "/devices/{device}/summary",
        summary: "Holter summary: recording length, analysable share, beats by verdict, burden, heart rate min/mean/max, the same by day and by night (`heart_rate_day`, `heart_rate_night`: minutes, min and max with `at_us`, mean; night is `night_hours_utc`, 22–07 UTC), longest pause, abnormal runs (binary models); time-domain heart-rate variability (`hrv`: nn_intervals, nn_pairs, mean_nn_ms, sdnn_ms, sdann_ms, sdnn_index_ms, segments, rmssd_ms, pnn50 in %; null with too few NN intervals); beats and burden by AAMI class, V and S couplets and runs (count, longest, fastest, each by its first beat's R time); rhythm lines, AF burden and episodes",
        role: "viewer",
        params: &[DEVICE, RANGE[0], RANGE[1]],
    },
    Operation {
        method: "get",
        path: "/devices/{device}/episodes",
        summary: "Rhythm episodes overlapping a range, by onset: kind (atrial_fibrillation, ventricular_tachycardia, idioventricular_rhythm, supraventricular_tachycardia, supraventricular_run, bigeminy, trigeminy, pause, asystole, bradycardia, tachycardia, signal_loss), start/end (µs), duration, beats, min/max rate, `ongoing` (still under way), the analyser and model",
        role: "viewer",
        params: &[
            DEVICE,
            RANGE[0],
            RANGE[1],
            (
                "kind",
                In::Query,
                "string",
                "Only episodes of this kind (empty: any)",
            ),
            (
                "limit",
                In::Query,
                "integer",
                "Episodes, 1 to 1000 (default 1000)",
            ),
        ],
    },
    Operation {
        method: "get",
        path: "/models",
        summary: "Shipped models' cards (metrics on both protocols, training history), the choices for uploads, and the paper's numbers",
        role: "viewer",
        params: &[],
    },
    Operation {
        method: "get",
        path: "/uploads",
        summary: "The latest uploaded beat files",
        role: "viewer",
        params: &[],
    },
    Operation {
        method: "post",
        path: "/uploads",
        summary: "Upload (multipart/form-data: kind = beats | recording | wfdb, model, device, start, fs, lead, then file parts); answers 202 with a job",
        role: "uploader",
        params: &[],
    },
    Operation {
        method: "get",
        path: "/uploads/jobs/{job}",
        summary: "Progress of an upload job, and its result when done",
        role: "viewer",
        params: &[("job", In::Path, "string", "Job id from the upload")],
    },
    Operation {
        method: "get",
        path: "/uploads/{id}",
        summary: "An uploaded beat file's verdicts and classes (`class`, `class_probs`), counts and (when labelled) evaluation",
        role: "viewer",
        params: &[
            ("id", In::Path, "string", "Upload id"),
            (
                "verdict",
                In::Query,
                "string",
                "all (default), normal, abnormal",
            ),
            (
                "limit",
                In::Query,
                "integer",
                "Rows, 1 to 1000 (default 100)",
            ),
            ("offset", In::Query, "integer", "Rows to skip"),
        ],
    },
    Operation {
        method: "get",
        path: "/uploads/{id}/beats/{row}",
        summary: "One beat of an upload with its class, class probabilities and 187 values",
        role: "viewer",
        params: &[
            ("id", In::Path, "string", "Upload id"),
            ("row", In::Path, "integer", "Row in the file, from 0"),
        ],
    },
    Operation {
        method: "get",
        path: "/openapi.json",
        summary: "This document",
        role: "viewer",
        params: &[],
    },
];

/// The OpenAPI document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in OPERATIONS {
        let params: Vec<Value> = op
            .params
            .iter()
            .map(|(name, place, ty, description)| {
                json!({
                    "name": name,
                    "in": match place { In::Path => "path", In::Query => "query" },
                    "required": matches!(place, In::Path),
                    "description": description,
                    "schema": { "type": ty },
                })
            })
            .collect();
        let mut responses = json!({
            "200": { "description": "OK", "content": { "application/json": {} } },
            "400": { "description": "Bad input; `error` says which" },
            "401": { "description": "Not authenticated" },
            "403": { "description": "Role does not allow this" },
            "404": { "description": "Not found" },
        });
        if op.method == "post" {
            responses["202"] = json!({ "description": "Accepted: the job id and its status URL" });
            responses["413"] = json!({ "description": "File too large" });
        }
        let mut operation = json!({
            "summary": op.summary,
            "parameters": params,
            "responses": responses,
            "x-role": op.role,
        });
        if op.method == "post" {
            operation["requestBody"] = json!({
                "required": true,
                "content": { "multipart/form-data": { "schema": { "type": "object" } } },
            });
        }
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        entry[op.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "holterd API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Beats, verdicts, Holter summaries and uploads of holterd. Every call needs `Authorization: Bearer <token>` (or a browser session).",
        },
        "servers": [{ "url": "/api/v1" }],
        "security": [{ "bearer": [] }, { "session": [] }],
        "components": { "securitySchemes": {
            "bearer": { "type": "http", "scheme": "bearer" },
            "session": { "type": "apiKey", "in": "cookie", "name": super::auth::SESSION_COOKIE },
        } },
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.route(...)` of the API router is documented with its methods, and nothing more.
    #[test]
    fn table_matches_the_router_source() {
        let src = include_str!("api.rs");
        let mut routed: Vec<(String, String)> = Vec::new();
        for line in src
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with(".route(\""))
        {
            let path = line.split('"').nth(1).unwrap_or_default().to_string();
            for method in ["get", "post", "put", "delete", "patch"] {
                if line.contains(&format!("{method}(")) {
                    routed.push((method.into(), path.clone()));
                }
            }
        }
        let mut documented: Vec<(String, String)> = OPERATIONS
            .iter()
            .map(|o| (o.method.to_string(), o.path.to_string()))
            .collect();
        routed.sort();
        documented.sort();
        assert_eq!(routed, documented);
        let doc = document();
        assert_eq!(doc["paths"].as_object().map(|p| p.len()), Some(12));
    }
}
