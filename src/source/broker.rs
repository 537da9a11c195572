//! The embedded MQTT broker (`rumqttd`), started when no broker is configured,
//! so that `holterd serve` works on a machine with nothing installed. Devices
//! and the daemon's own subscription connect to it over TCP like to any broker.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Segments of the broker's routing log: it drops the oldest whole segment
/// when full, so the log holds between 7/8 of its size and all of it.
#[cfg(feature = "embedded-broker")]
const LOG_SEGMENTS: usize = 8;

/// Starts the broker on `listen` in its own threads and waits until it accepts connections.
/// It takes payloads up to four times `max_payload_bytes` (at least 1 MiB), so that the
/// daemon sees oversized ones and counts them; larger ones make it drop the publisher.
/// It holds `buffer_bytes` of messages for the daemon (see
/// `embedded_broker.buffer_mib`); each time it drops some for a daemon that
/// fell further behind, it logs a warning and counts it in `skips`.
#[cfg(feature = "embedded-broker")]
pub fn start(
    listen: SocketAddr,
    max_payload_bytes: usize,
    buffer_bytes: usize,
    skips: prometheus::IntCounter,
) -> Result<(), String> {
    use rumqttd::{Broker, Config, ConnectionSettings, MetricType, RouterConfig, ServerSettings};
    // rumqttd reports a taken port only in its own thread; check first for a clear message.
    TcpListener::bind(listen).map_err(|e| {
        format!("embedded_broker.listen {listen}: {e} (is another broker running there?)")
    })?;
    let server = ServerSettings {
        name: "holterd-embedded".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: (max_payload_bytes * 4).max(1 << 20),
            max_inflight_count: 1000,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 200,
            // rumqttd keeps one log per subscription filter (the daemon has
            // one) and, when it is full, moves a reader that lags past its
            // start to the oldest message it still holds.
            max_segment_size: (buffer_bytes / LOG_SEGMENTS).max(1 << 20),
            max_segment_count: LOG_SEGMENTS,
            ..Default::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        // Alerts (dropped messages among them) each second. rumqttd builds
        // these settings only from configuration text, and its timer thread
        // panics unless meters are configured too (nothing reads them).
        metrics: Some(HashMap::from([
            (MetricType::Alerts, push_interval(1)?),
            (MetricType::Meters, push_interval(3600)?),
        ])),
        ..Default::default()
    };
    let mut broker = Broker::new(config);
    let alerts = broker
        .alerts()
        .map_err(|e| format!("cannot watch the embedded broker: {e}"))?;
    std::thread::Builder::new()
        .name("mqtt-broker-alerts".into())
        .spawn(move || {
            while let Ok(batch) = alerts.router_rx.recv() {
                // The alert kinds are not exported by name; "cursor_jump" is
                // a reader moved past messages it had not read.
                for alert in batch.iter().filter(|a| a.kind.name() == "cursor_jump") {
                    skips.inc();
                    tracing::warn!(
                        client = %alert.client_id,
                        "the embedded broker dropped messages the daemon had not read yet: it fell further behind than embedded_broker.buffer_mib holds"
                    );
                }
            }
        })
        .map_err(|e| format!("cannot start the embedded broker's alert thread: {e}"))?;
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(|e| format!("cannot start the embedded broker thread: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            return Err(format!(
                "the embedded broker did not open {listen} within 10 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// rumqttd's push interval of alerts or meters, `seconds` apart.
#[cfg(feature = "embedded-broker")]
fn push_interval(seconds: u64) -> Result<rumqttd::MetricSettings, String> {
    serde_json::from_value(serde_json::json!({ "push_interval": seconds }))
        .map_err(|e| format!("embedded broker settings: {e}"))
}

/// Without the `embedded-broker` feature there is nothing to start.
#[cfg(not(feature = "embedded-broker"))]
pub fn start(
    _listen: SocketAddr,
    _max_payload_bytes: usize,
    _buffer_bytes: usize,
    _skips: prometheus::IntCounter,
) -> Result<(), String> {
    Err("this build has no embedded broker (feature `embedded-broker`); set mqtt.broker".into())
}
