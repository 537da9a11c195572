//! The MQTT events sink: publishes each episode event as JSON on
//! `holter/<device>/events` (the `[events]` topic), QoS 1, on a connection of
//! its own (client id `<mqtt.client_id>-events`, persistent session), so that
//! a slow or refused publication never holds back the ECG subscription.
//!
//! Events are published after their beats are committed; a daemon killed
//! between the two loses those events (the episodes themselves are stored,
//! and `GET /api/v1/devices/{id}/episodes` is the record). rumqttc keeps
//! publications not yet acknowledged and sends them again on reconnection.

use crate::config::MqttConfig;
use crate::metrics::Metrics;
use crate::pipeline::alerts::{EventsConfig, OutboundEvent, Tier};
use crate::source::mqtt::client_options;
use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, QoS};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::Receiver;

/// Publications handed to rumqttc and not yet written: when each was caused, and its tier.
type Queued = Arc<Mutex<VecDeque<(Instant, &'static str)>>>;

/// A configured, not yet connected, events publisher.
pub struct MqttEventsSink {
    client: AsyncClient,
    eventloop: EventLoop,
    config: EventsConfig,
    reconnect: (Duration, Duration),
}

impl MqttEventsSink {
    /// Prepares the publisher for broker `address` with the subscription's credentials and TLS settings.
    pub fn new(
        mqtt: &MqttConfig,
        address: &str,
        password: Option<String>,
        events: &EventsConfig,
    ) -> Result<Self, String> {
        let client_id = format!("{}-events", mqtt.client_id);
        let mut options = client_options(mqtt, address, password, &client_id)?;
        options
            .set_inflight(1000)
            .set_request_channel_capacity(1024);
        let (client, eventloop) = AsyncClient::new(options, 1024);
        Ok(MqttEventsSink {
            client,
            eventloop,
            config: events.clone(),
            reconnect: (
                Duration::from_millis(mqtt.reconnect_min_ms),
                Duration::from_millis(mqtt.reconnect_max_ms),
            ),
        })
    }

    /// Publishes every event from `rx` until it closes, then waits (at most
    /// `drain`) for the broker to acknowledge what was published.
    pub async fn run(
        self,
        mut rx: Receiver<OutboundEvent>,
        metrics: Arc<Metrics>,
        drain: Duration,
    ) {
        let queued: Queued = Arc::default();
        let (acked_tx, mut acked) = tokio::sync::watch::channel(0u64);
        let poller = tokio::spawn(poll(
            self.eventloop,
            queued.clone(),
            metrics.clone(),
            acked_tx,
            self.reconnect,
        ));
        let mut published = 0u64;
        while let Some(out) = rx.recv().await {
            let tier = out.event.tier.map_or("none", Tier::as_str);
            let phase = serde_json::to_value(out.event.event)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let topic = self.config.topic_of(&out.event.device);
            let payload = match serde_json::to_vec(&out.event) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode an episode event");
                    metrics.events_failed.inc();
                    continue;
                }
            };
            if let Ok(mut q) = queued.lock() {
                q.push_back((out.triggered, tier));
            }
            match self
                .client
                .publish(topic, QoS::AtLeastOnce, self.config.retain, payload)
                .await
            {
                Ok(()) => {
                    published += 1;
                    metrics
                        .events_published
                        .with_label_values(&[&phase, tier])
                        .inc();
                }
                Err(e) => {
                    if let Ok(mut q) = queued.lock() {
                        q.pop_back();
                    }
                    metrics.events_failed.inc();
                    tracing::error!(error = %e, device = %out.event.device, "episode event not published");
                }
            }
        }
        let done = acked.wait_for(|&n| n >= published);
        if tokio::time::timeout(drain, done).await.is_err() {
            tracing::warn!("the broker did not acknowledge every episode event before shutdown");
        }
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), poller).await;
    }
}

/// Drives the connection: observes each event's latency when rumqttc writes
/// it, counts the broker's acknowledgements, and reconnects with a doubling wait.
async fn poll(
    mut eventloop: EventLoop,
    queued: Queued,
    metrics: Arc<Metrics>,
    acked: tokio::sync::watch::Sender<u64>,
    (min, max): (Duration, Duration),
) {
    let mut backoff = min;
    loop {
        match eventloop.poll().await {
            Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                let first = queued.lock().ok().and_then(|mut q| q.pop_front());
                if let Some((triggered, tier)) = first {
                    metrics
                        .alert_latency_seconds
                        .with_label_values(&["published", tier])
                        .observe(triggered.elapsed().as_secs_f64());
                }
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                acked.send_modify(|n| *n += 1);
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => backoff = min,
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "events connection to the MQTT broker failed; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max);
            }
        }
    }
}
