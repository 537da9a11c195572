//! The MQTT source: subscribes with `rumqttc` (QoS 1, persistent session,
//! manual acknowledgements), decodes every message ([`crate::wire`]) and
//! hands it to ingest, which acknowledges it once stored ([`Acker`]).
//!
//! rumqttc reconnects when polled again after an error, but neither waits
//! between attempts nor subscribes again; this module does both, with a
//! doubling backoff, on every new connection.

use crate::config::MqttConfig;
use crate::metrics::Metrics;
use crate::pipeline::{Inbound, now_us, send_counted};
use crate::wire;
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, Packet, Publish, QoS,
    TlsConfiguration, Transport,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Identifies a received message for its acknowledgement.
#[derive(Debug)]
pub struct AckToken {
    publish: Option<Publish>,
    /// The connection it arrived on; acknowledgements for older connections are
    /// skipped (the broker resends those messages, and ingest drops the copies).
    connection: u64,
}

impl AckToken {
    /// A token for a message that needs no acknowledgement (tests, replays).
    pub fn none() -> Self {
        AckToken {
            publish: None,
            connection: 0,
        }
    }
}

/// Sends acknowledgements through the MQTT client.
#[derive(Clone)]
pub struct Acker {
    client: Option<AsyncClient>,
    connection: Arc<AtomicU64>,
}

impl Acker {
    /// An acker that acknowledges nothing (for feeding the pipeline without a broker).
    pub fn disabled() -> Self {
        Acker {
            client: None,
            connection: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Acknowledges the message of `token`, if it came on the current connection.
    pub fn ack(&self, token: AckToken) {
        let (Some(client), Some(publish)) = (&self.client, &token.publish) else {
            return;
        };
        if token.connection != self.connection.load(Ordering::Acquire) {
            return;
        }
        // The request queue holds more than the broker may have in flight, so this does not fail
        // while connected; if it does, the broker resends the message and ingest drops the copy.
        if let Err(e) = client.try_ack(publish) {
            tracing::warn!(error = %e, "acknowledgement not sent; the broker will resend the message");
        }
    }
}

/// A configured, not yet connected, MQTT subscription.
pub struct MqttSource {
    client: AsyncClient,
    eventloop: EventLoop,
    connection: Arc<AtomicU64>,
    config: MqttConfig,
}

/// `host:port` → (host, port), with `default_port` when the port is left out.
pub fn split_address(address: &str, default_port: u16) -> Result<(String, u16), String> {
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => port
            .parse()
            .map(|p| (host.to_string(), p))
            .map_err(|_| format!("{address:?}: the port must be a number")),
        _ if !address.is_empty() => Ok((address.to_string(), default_port)),
        _ => Err("empty broker address".into()),
    }
}

impl MqttSource {
    /// Prepares the client for broker `address` (`host:port`).
    pub fn new(
        config: &MqttConfig,
        address: &str,
        password: Option<String>,
    ) -> Result<(MqttSource, Acker), String> {
        let (host, port) = split_address(address, if config.tls { 8883 } else { 1883 })
            .map_err(|e| format!("mqtt.broker: {e}"))?;
        let mut options = MqttOptions::new(&config.client_id, host, port);
        options
            .set_keep_alive(Duration::from_secs(config.keep_alive_s))
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_inflight(config.max_inflight)
            // Larger payloads are refused by ingest with a reason; letting rumqttc refuse them
            // would drop the connection, and the broker would resend the same message forever.
            .set_max_packet_size(32 << 20, 1 << 20)
            .set_request_channel_capacity(config.max_inflight as usize + 1024);
        if !config.username.is_empty() {
            options.set_credentials(&config.username, password.unwrap_or_default());
        }
        if config.tls {
            let transport = if config.ca_file.is_empty() {
                Transport::tls_with_default_config()
            } else {
                let ca = std::fs::read(&config.ca_file)
                    .map_err(|e| format!("mqtt.ca_file {:?}: {e}", config.ca_file))?;
                Transport::tls_with_config(TlsConfiguration::Simple {
                    ca,
                    alpn: None,
                    client_auth: None,
                })
            };
            options.set_transport(transport);
        }
        let (client, eventloop) = AsyncClient::new(options, config.max_inflight as usize + 1024);
        let connection = Arc::new(AtomicU64::new(0));
        let acker = Acker {
            client: Some(client.clone()),
            connection: connection.clone(),
        };
        Ok((
            MqttSource {
                client,
                eventloop,
                connection,
                config: config.clone(),
            },
            acker,
        ))
    }

    /// Receives messages into `tx` until `shutdown` turns true. Then it stops taking
    /// messages (the broker keeps them for the next start) but keeps the connection
    /// serviced, so that acknowledgements still go out, until `ingest_done` turns true.
    pub async fn run(
        mut self,
        tx: mpsc::Sender<Inbound>,
        metrics: Arc<Metrics>,
        mut shutdown: watch::Receiver<bool>,
        mut ingest_done: watch::Receiver<bool>,
    ) {
        let mut tx = Some(tx);
        let min = Duration::from_millis(self.config.reconnect_min_ms);
        let max = Duration::from_millis(self.config.reconnect_max_ms);
        let mut backoff = min;
        let mut connections = 0u64;
        loop {
            let event = tokio::select! {
                _ = shutdown.changed(), if tx.is_some() => {
                    // Closing the queue lets ingest drain and finish.
                    tx = None;
                    continue;
                }
                _ = ingest_done.changed() => break,
                e = self.eventloop.poll() => e,
            };
            match event {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let Some(tx) = &tx else { continue };
                    let acker = Acker {
                        client: Some(self.client.clone()),
                        connection: self.connection.clone(),
                    };
                    on_publish(p, &self.config, &acker, tx, &metrics).await;
                }
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    if ack.code != ConnectReturnCode::Success {
                        continue;
                    }
                    connections += 1;
                    self.connection.fetch_add(1, Ordering::AcqRel);
                    if connections > 1 {
                        metrics.mqtt_reconnects.inc();
                    }
                    metrics.broker_connected.set(1);
                    backoff = min;
                    tracing::info!(session_present = ack.session_present, filter = %self.config.topic_filter,
                        "connected to the MQTT broker; subscribing");
                    if let Err(e) = self
                        .client
                        .try_subscribe(&self.config.topic_filter, QoS::AtLeastOnce)
                    {
                        tracing::error!(error = %e, "subscribe request failed");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(s))) => {
                    tracing::debug!(?s, "subscribed");
                }
                Ok(_) => {}
                Err(e) => {
                    metrics.broker_connected.set(0);
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64,
                        "MQTT connection lost or refused");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = ingest_done.changed() => break,
                    }
                    backoff = (backoff * 2).min(max);
                }
            }
        }
        let _ = self.client.try_disconnect();
        // Let the disconnect go out.
        let _ = tokio::time::timeout(Duration::from_millis(200), async {
            while self.eventloop.poll().await.is_ok() {}
        })
        .await;
        metrics.broker_connected.set(0);
    }
}

/// Decodes one message and queues it for ingest; refused ones are counted, logged and acknowledged.
async fn on_publish(
    p: Publish,
    config: &MqttConfig,
    acker: &Acker,
    tx: &mpsc::Sender<Inbound>,
    metrics: &Metrics,
) {
    metrics.messages.inc();
    let received = Instant::now();
    let decoded = wire::device_from_topic(&config.topic_filter, &p.topic)
        .and_then(|device| wire::decode(&device, &p.payload, config.max_payload_bytes));
    let topic = p.topic.clone();
    let token = AckToken {
        connection: acker.connection.load(Ordering::Acquire),
        publish: Some(p),
    };
    match decoded {
        Ok(frame) => {
            let inbound = Inbound {
                frame,
                ack: token,
                received,
                received_us: now_us(),
            };
            send_counted(tx, inbound, metrics, "ingest").await;
        }
        Err(reject) => {
            metrics.rejected.with_label_values(&[reject.reason()]).inc();
            tracing::warn!(topic = %topic.chars().take(200).collect::<String>(), reason = reject.reason(),
                    error = %reject, "message rejected");
            // A refused message is acknowledged: redelivering it would not make it valid.
            acker.ack(token);
        }
    }
}
