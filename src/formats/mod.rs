//! The formats ECG arrives in: PhysioNet WFDB records and annotations, the
//! MQTT wire format wearables publish, and the recording CSVs people upload.
//! Readers only: nothing here knows about streams, models or stores.

pub mod csv;
pub mod partition;
pub mod wfdb;
pub mod wire;
