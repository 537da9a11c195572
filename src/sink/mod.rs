//! Where results go out besides the store: the MQTT events sink publishing
//! rhythm episode events and alerts. The pipeline never imports this module;
//! it hands [`crate::pipeline::alerts::OutboundEvent`]s to a bounded queue.

pub mod mqtt_events;
