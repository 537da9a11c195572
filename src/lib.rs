//! holterd: streaming Holter ECG analysis. The modules, in the order data
//! flows through them (see ARCHITECTURE.md for the map and its rules):
//!
//! - [`formats`]: what ECG arrives as: WFDB records and annotations (and the
//!   bundled excerpts), the MQTT wire format, uploaded CSVs;
//! - [`source`]: the MQTT subscription that brings wearables' messages in, and
//!   the embedded broker;
//! - [`dsp`]: one causal, chunk-invariant extractor per stream: filters, QRS
//!   detection, quality gate, the 187-sample beat;
//! - [`model`]: the beat classifiers (candle, and a fast CPU path), their
//!   training, cards and metrics;
//! - [`pipeline`]: the daemon's stages from a decoded message to a stored
//!   verdict (ingest, analysis, batcher, inference, writer), with
//!   acknowledgement after commit, and the same analysis offline;
//! - [`rhythm`]: one causal rhythm analyser per stream, from classified
//!   beats to episodes (AF, runs, bigeminy, pauses, rate episodes);
//! - [`store`]: Postgres or SQLite behind one interface;
//! - [`review`]: what clinicians read, computed from the store (overview,
//!   trend, Holter summary);
//! - [`http`]: the web view, JSON API, uploads and `/metrics`;
//! - [`server`]: `serve` wired together: source, pipeline, store, HTTP;
//! - [`replay`]: a simulated wearable fleet publishing recordings;
//! - [`eval`]: detection scored against reference annotations (AAMI EC57);
//! - [`dataset`]: labelled training data from the same extractor;
//! - [`config`]: the daemon's configuration and its validation;
//! - [`metrics`]: the Prometheus metrics every stage reports to;
//! - [`clock`]: time as µs since the epoch, and its text forms;
//! - [`cli`]: the command line, parsing and calling the above.

pub mod cli;
pub mod clock;
pub mod config;
pub mod dataset;
pub mod dsp;
pub mod eval;
pub mod formats;
pub mod http;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod replay;
pub mod review;
pub mod rhythm;
pub mod server;
pub mod sink;
pub mod source;
pub mod store;

/// Directory of the reference data: `$HOLTER_DATA_DIR`, else `../shared/data`.
pub fn data_dir() -> std::path::PathBuf {
    std::env::var_os("HOLTER_DATA_DIR")
        .map(Into::into)
        .unwrap_or_else(|| "../shared/data".into())
}
