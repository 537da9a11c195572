//! holterd: streaming Holter ECG analysis.
//!
//! - [`wfdb`] reads PhysioNet records and annotations;
//! - [`dsp`] turns a stream of samples into 187-sample beats (filters, QRS
//!   detection, quality gate, resampling);
//! - [`eval`] scores detection against reference annotations (AAMI EC57);
//! - [`dataset`] builds labelled training data with the same extractor;
//! - [`model`] holds the beat classifiers, their training and metrics;
//! - [`cli`] is the command line, a thin layer over the above.

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
pub mod server;
pub mod source;
pub mod store;

/// Directory of the reference data: `$HOLTER_DATA_DIR`, else `../shared/data`.
pub fn data_dir() -> std::path::PathBuf {
    std::env::var_os("HOLTER_DATA_DIR")
        .map(Into::into)
        .unwrap_or_else(|| "../shared/data".into())
}
