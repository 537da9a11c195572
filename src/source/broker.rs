//! The embedded MQTT broker (`rumqttd`), started when no broker is configured,
//! so that `holterd serve` works on a machine with nothing installed. Devices
//! and the daemon's own subscription connect to it over TCP like to any broker.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Starts the broker on `listen` in its own threads and waits until it accepts connections.
/// It takes payloads up to four times `max_payload_bytes` (at least 1 MiB), so that the
/// daemon sees oversized ones and counts them; larger ones make it drop the publisher.
#[cfg(feature = "embedded-broker")]
pub fn start(listen: SocketAddr, max_payload_bytes: usize) -> Result<(), String> {
    use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
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
            max_segment_size: 100 << 20,
            max_segment_count: 10,
            ..Default::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Default::default()
    };
    let mut broker = Broker::new(config);
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

/// Without the `embedded-broker` feature there is nothing to start.
#[cfg(not(feature = "embedded-broker"))]
pub fn start(_listen: SocketAddr, _max_payload_bytes: usize) -> Result<(), String> {
    Err("this build has no embedded broker (feature `embedded-broker`); set mqtt.broker".into())
}
