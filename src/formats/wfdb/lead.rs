//! Which signal of a multi-lead record to analyse.

use super::{Header, WfdbError};
use std::path::Path;

/// Which signal of a record to analyse.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LeadChoice {
    /// The MLII lead if the header names one, else channel 0.
    #[default]
    Default,
    /// A channel by index.
    Channel(usize),
    /// A channel by signal name, e.g. `V5`.
    Lead(String),
}

impl LeadChoice {
    /// Resolves the choice against a header.
    pub fn channel(&self, header: &Header, header_path: &Path) -> Result<usize, WfdbError> {
        let names = || {
            header
                .signals
                .iter()
                .map(|s| s.description.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            LeadChoice::Default => Ok(header.channel_of("MLII").unwrap_or(0)),
            LeadChoice::Channel(c) if *c < header.signals.len() => Ok(*c),
            LeadChoice::Channel(c) => Err(WfdbError::invalid(
                header_path,
                format!(
                    "channel {c} does not exist: the record has {} signals ({})",
                    header.signals.len(),
                    names()
                ),
            )),
            LeadChoice::Lead(name) => header.channel_of(name).ok_or_else(|| {
                WfdbError::invalid(
                    header_path,
                    format!("no lead named {name:?}; the record has {}", names()),
                )
            }),
        }
    }
}
