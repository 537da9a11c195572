//! Reading PhysioNet WFDB records: the `.hea` header, format 212 and 16
//! signal files, and MIT-format `.atr` annotation files.
//!
//! Every reader returns a [`WfdbError`] that names the file and what is wrong
//! with it; malformed input never panics.

mod annotation;
pub mod bundled;
mod header;
mod lead;
mod record;
mod recording;
mod signal;
mod write;

pub use annotation::{AamiClass, Annotation, AnnotationCode, read_annotations};
pub use header::{Header, SignalSpec, parse_header};
pub use lead::LeadChoice;
pub use record::{ReadOptions, Record, checksum, list_records, read_record, read_record_with};
pub use recording::Recording;
pub use signal::{decode_16, decode_212};
pub use write::{CutSummary, cut_record, write_annotations, write_record_16};

use std::path::{Path, PathBuf};

/// An error while reading or writing WFDB files: which file, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum WfdbError {
    /// The file could not be opened or read.
    #[error("{path}: {}", io_message(source))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but its content is invalid.
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// An I/O error in words: "not found" rather than the OS's message and number.
fn io_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "not found".into(),
        _ => e.to_string(),
    }
}

impl WfdbError {
    pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> Self {
        WfdbError::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        WfdbError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, WfdbError> {
    if let Some(bundled) = bundled::file(path) {
        return bundled;
    }
    std::fs::read(path).map_err(|e| WfdbError::io(path, e))
}
