//! Where ECG comes in: the MQTT subscription that decodes wearables' messages
//! and hands them to the pipeline, and the embedded broker used when none is
//! configured. The pipeline never imports this module; it sees only
//! [`crate::pipeline::Inbound`] messages and acknowledges them through
//! [`crate::pipeline::ack::Acker`].

pub mod broker;
pub mod mqtt;
