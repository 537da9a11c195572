//! The MQTT source: subscribes with `rumqttc` (QoS 1, persistent session,
//! manual acknowledgements), decodes every message ([`crate::formats::wire`]) and
//! hands it to ingest, which acknowledges it once stored ([`Acker`]).
//!
//! rumqttc reconnects when polled again after an error, but neither waits
//! between attempts nor subscribes again; this module does both, with a
//! doubling backoff, on every new connection.
//!
//! MQTT 3.1.1 requires a client to acknowledge QoS 1 messages in the order
//! they arrived (MQTT-4.6.0-2), and some brokers (rumqttd, the embedded one)
//! drop a client that does not. Ingest finishes messages out of order (a
//! refused one at once, a stored one after its commit), so [`AckOrder`] puts
//! the acknowledgements back in arrival order before they are written.

use crate::clock::now_us;
use crate::config::MqttConfig;
use crate::formats::partition::{partition_in_topic, partition_of};
use crate::formats::wire;
use crate::metrics::Metrics;
use crate::pipeline::Inbound;
use crate::pipeline::ack::{AckToken, Acker};
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, Packet, PubAck, Publish, QoS,
    SubscribeFilter, SubscribeReasonCode, TlsConfiguration, Transport,
};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// A configured, not yet connected, MQTT subscription.
pub struct MqttSource {
    client: AsyncClient,
    eventloop: EventLoop,
    acks: mpsc::UnboundedReceiver<AckToken>,
    connection: Arc<AtomicU64>,
    order: AckOrder,
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

/// The connection settings every holterd MQTT client shares (broker
/// `address`, credentials, TLS, keep-alive, persistent session) under `client_id`.
pub fn client_options(
    config: &MqttConfig,
    address: &str,
    password: Option<String>,
    client_id: &str,
) -> Result<MqttOptions, String> {
    let (host, port) = split_address(address, if config.tls { 8883 } else { 1883 })
        .map_err(|e| format!("mqtt.broker: {e}"))?;
    let mut options = MqttOptions::new(client_id, host, port);
    options
        .set_keep_alive(Duration::from_secs(config.keep_alive_s))
        .set_clean_session(false);
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
    Ok(options)
}

impl MqttSource {
    /// Prepares the client for broker `address` (`host:port`).
    pub fn new(
        config: &MqttConfig,
        address: &str,
        password: Option<String>,
    ) -> Result<(MqttSource, Acker), String> {
        let mut options = client_options(config, address, password, &config.client_id)?;
        options
            .set_manual_acks(true)
            .set_inflight(config.max_inflight)
            // Larger payloads are refused by ingest with a reason; letting rumqttc refuse them
            // would drop the connection, and the broker would resend the same message forever.
            .set_max_packet_size(32 << 20, 1 << 20)
            .set_request_channel_capacity(config.max_inflight as usize + 1024);
        let (client, eventloop) = AsyncClient::new(options, config.max_inflight as usize + 1024);
        let connection = Arc::new(AtomicU64::new(0));
        let (ack_tx, acks) = mpsc::unbounded_channel();
        let acker = Acker {
            tx: Some(ack_tx),
            connection: connection.clone(),
        };
        Ok((
            MqttSource {
                client,
                eventloop,
                acks,
                connection,
                order: AckOrder::default(),
                config: config.clone(),
            },
            acker,
        ))
    }

    /// Asks the broker for the subscriptions, one per owned partition (again:
    /// rumqttc does not on reconnection).
    fn subscribe(&self) {
        let filters = self
            .config
            .partitions
            .topic_filters(&self.config.topic_filter)
            .into_iter()
            .map(|path| SubscribeFilter::new(path, QoS::AtLeastOnce));
        if let Err(e) = self.client.try_subscribe_many(filters) {
            tracing::error!(error = %e, "subscribe request failed");
        }
    }

    /// Marks `acks` finished and writes, in arrival order, every acknowledgement
    /// now due on the current connection (with `last`, every finished one),
    /// then flushes them. A write error is left for the next poll to report
    /// (and reconnect).
    async fn write_acks(&mut self, acks: &mut Vec<AckToken>, last: bool) {
        let current = self.connection.load(Ordering::Acquire);
        for a in acks.drain(..) {
            if a.pkid.is_some() && a.connection == current {
                self.order.finish(a.seq);
            }
        }
        let due = if last {
            self.order.take_finished()
        } else {
            self.order.take_due(Instant::now())
        };
        let Some(network) = self.eventloop.network.as_mut() else {
            return;
        };
        if due.is_empty() {
            return;
        }
        for pkid in due {
            if network
                .write(Packet::PubAck(PubAck::new(pkid)))
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = network.flush().await;
    }

    /// Receives messages into `tx` until `shutdown` turns true. Then it stops taking
    /// messages (the broker keeps them for the next start) but keeps the connection
    /// serviced, so that acknowledgements still go out, until `ingest_done` turns true.
    ///
    /// The event loop is polled even while ingest's queue is full, since polling is
    /// also what sends acknowledgements; messages that arrive meanwhile wait in a
    /// local buffer. The broker sends at most its in-flight limit of unacknowledged
    /// messages, which bounds that buffer; past `max_buffer` (a broker without a
    /// limit) polling pauses and TCP pushes back.
    pub async fn run(
        mut self,
        tx: mpsc::Sender<Inbound>,
        metrics: Arc<Metrics>,
        mut shutdown: watch::Receiver<bool>,
        mut ingest_done: watch::Receiver<bool>,
        max_buffer: usize,
    ) {
        let mut tx = Some(tx);
        let mut buffer: VecDeque<Inbound> = VecDeque::new();
        let min = Duration::from_millis(self.config.reconnect_min_ms);
        let max = Duration::from_millis(self.config.reconnect_max_ms);
        let mut backoff = min;
        let mut connections = 0u64;
        let mut acks = Vec::new();
        let mut acks_open = true;
        let depth = metrics.queue_depth.with_label_values(&["source"]);
        // When the subscription is due to be acknowledged; it is asked again if not.
        let mut subscribe_by: Option<tokio::time::Instant> = None;
        loop {
            let sender = tx.clone().filter(|_| !buffer.is_empty());
            let event = tokio::select! {
                _ = shutdown.changed(), if tx.is_some() => {
                    // Closing the queue lets ingest drain and finish; buffered messages
                    // stay unacknowledged, and the broker resends them after restart.
                    tx = None;
                    buffer.clear();
                    continue;
                }
                _ = ingest_done.changed() => {
                    // Ingest has handed over its last acknowledgements: send them, then
                    // leave. Messages it never finished (held for a predecessor) are
                    // resent after restart; the finished ones behind them need not be.
                    while let Ok(a) = self.acks.try_recv() {
                        acks.push(a);
                    }
                    self.write_acks(&mut acks, true).await;
                    break;
                }
                permit = reserve(sender), if !buffer.is_empty() => {
                    if let (Some(permit), Some(inbound)) = (permit, buffer.pop_front()) {
                        permit.send(inbound);
                    }
                    depth.set(buffer.len() as i64);
                    continue;
                }
                n = self.acks.recv_many(&mut acks, 4096), if acks_open => {
                    if n == 0 {
                        acks_open = false;
                    }
                    self.write_acks(&mut acks, false).await;
                    continue;
                }
                _ = sleep_until_some(self.order.patience_deadline()) => {
                    self.write_acks(&mut acks, false).await;
                    continue;
                }
                _ = sleep_until_some(subscribe_by) => {
                    tracing::warn!(filter = %self.config.topic_filter, "no subscription acknowledgement; subscribing again");
                    self.subscribe();
                    subscribe_by = Some(tokio::time::Instant::now() + SUBSCRIBE_TIMEOUT);
                    continue;
                }
                e = self.eventloop.poll(), if buffer.len() < max_buffer => e,
            };
            match event {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let Some(tx) = &tx else { continue };
                    let connection = self.connection.load(Ordering::Acquire);
                    let inbound =
                        match decode(p, &self.config, connection, &mut self.order, &metrics) {
                            Ok(inbound) => inbound,
                            Err(token) => {
                                acks.push(token);
                                self.write_acks(&mut acks, false).await;
                                continue;
                            }
                        };
                    if buffer.is_empty() {
                        match tx.try_send(inbound) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(inbound)) => {
                                metrics
                                    .backpressure_waits
                                    .with_label_values(&["ingest"])
                                    .inc();
                                buffer.push_back(inbound);
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => {}
                        }
                    } else {
                        buffer.push_back(inbound);
                    }
                    depth.set(buffer.len() as i64);
                }
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    if ack.code != ConnectReturnCode::Success {
                        continue;
                    }
                    connections += 1;
                    self.connection.fetch_add(1, Ordering::AcqRel);
                    // Messages of the previous connection will be resent by the broker.
                    buffer.clear();
                    self.order = AckOrder::default();
                    if connections > 1 {
                        metrics.mqtt_reconnects.inc();
                    }
                    metrics.broker_connected.set(1);
                    backoff = min;
                    tracing::info!(session_present = ack.session_present, filter = %self.config.topic_filter,
                        "connected to the MQTT broker; subscribing");
                    self.subscribe();
                    subscribe_by = Some(tokio::time::Instant::now() + SUBSCRIBE_TIMEOUT);
                }
                Ok(Event::Incoming(Packet::SubAck(s))) => {
                    if s.return_codes
                        .iter()
                        .all(|c| matches!(c, SubscribeReasonCode::Success(_)))
                    {
                        subscribe_by = None;
                        metrics.subscribed.set(1);
                        tracing::info!(filter = %self.config.topic_filter, "subscribed");
                    } else {
                        tracing::error!(filter = %self.config.topic_filter,
                            "the broker refused the subscription (check the filter and the broker's ACL)");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    metrics.broker_connected.set(0);
                    metrics.subscribed.set(0);
                    subscribe_by = None;
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
        metrics.subscribed.set(0);
    }
}

/// How long finished messages wait for an older unfinished one before they are
/// acknowledged out of order anyway. Normally every message is finished within
/// a commit; one that is not (held by ingest for a late predecessor) would
/// otherwise stall all acknowledgements, and with them the broker's deliveries.
/// A broker that insists on order then drops the connection and resends what
/// was not acknowledged, which ingest recognises as duplicates: nothing is lost.
const ACK_ORDER_PATIENCE: Duration = Duration::from_secs(2);

/// QoS 1 messages of the current connection that are not yet acknowledged, in
/// arrival order, so that acknowledgements go out in that order.
#[derive(Debug, Default)]
struct AckOrder {
    next_seq: u64,
    pending: VecDeque<PendingAck>,
    /// How many entries of `pending` are finished.
    finished: usize,
}

#[derive(Debug)]
struct PendingAck {
    seq: u64,
    pkid: u16,
    received: Instant,
    finished: bool,
}

impl AckOrder {
    /// Registers an arriving message; returns its arrival number.
    fn receive(&mut self, pkid: u16, received: Instant) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push_back(PendingAck {
            seq,
            pkid,
            received,
            finished: false,
        });
        seq
    }

    /// Marks message `seq` finished (stored, or refused); unknown ones are ignored.
    fn finish(&mut self, seq: u64) {
        if let Ok(i) = self.pending.binary_search_by_key(&seq, |p| p.seq)
            && !self.pending[i].finished
        {
            self.pending[i].finished = true;
            self.finished += 1;
        }
    }

    /// Packet ids to acknowledge now, in order: the finished messages at the
    /// front, and every finished one once the oldest unfinished message has
    /// waited `ACK_ORDER_PATIENCE`.
    fn take_due(&mut self, now: Instant) -> Vec<u16> {
        let mut due = Vec::new();
        while self.pending.front().is_some_and(|p| p.finished) {
            if let Some(p) = self.pending.pop_front() {
                due.push(p.pkid);
            }
        }
        self.finished -= due.len();
        if self
            .pending
            .front()
            .is_some_and(|p| now >= p.received + ACK_ORDER_PATIENCE)
        {
            due.extend(self.take_finished());
        }
        due
    }

    /// Packet ids of every finished message, whatever is still unfinished
    /// before them (at shutdown, when the connection is about to close anyway).
    fn take_finished(&mut self) -> Vec<u16> {
        let due = self
            .pending
            .iter()
            .filter(|p| p.finished)
            .map(|p| p.pkid)
            .collect();
        self.pending.retain(|p| !p.finished);
        self.finished = 0;
        due
    }

    /// When finished messages will stop waiting for the oldest unfinished one.
    fn patience_deadline(&self) -> Option<tokio::time::Instant> {
        let front = self.pending.front().filter(|_| self.finished > 0)?;
        Some(tokio::time::Instant::from_std(
            front.received + ACK_ORDER_PATIENCE,
        ))
    }
}

/// How long a subscription may wait for its acknowledgement before it is asked again.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Completes at `deadline`; never when there is none.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Room in `tx`, or `None` once it is gone (never resolves while there is no queue).
async fn reserve(tx: Option<mpsc::Sender<Inbound>>) -> Option<mpsc::OwnedPermit<Inbound>> {
    match tx {
        Some(tx) => tx.reserve_owned().await.ok(),
        None => std::future::pending().await,
    }
}

/// Decodes one message; a refused one is counted and logged, and its token returned
/// for acknowledgement (redelivering it would not make it valid).
fn decode(
    p: Publish,
    config: &MqttConfig,
    connection: u64,
    order: &mut AckOrder,
    metrics: &Metrics,
) -> Result<Inbound, AckToken> {
    metrics.messages.inc();
    let received = Instant::now();
    let decoded = wire::device_from_topic(&config.topic_filter, &p.topic).and_then(|device| {
        check_partition(config, &p.topic, &device, metrics);
        wire::decode(&device, &p.payload, config.max_payload_bytes)
    });
    let pkid = (p.qos != QoS::AtMostOnce).then_some(p.pkid);
    let token = AckToken {
        connection,
        seq: pkid.map_or(0, |pkid| order.receive(pkid, received)),
        pkid,
    };
    match decoded {
        Ok(frame) => Ok(Inbound {
            frame,
            ack: token,
            received,
            received_us: now_us(),
        }),
        Err(reject) => {
            metrics.rejected.with_label_values(&[reject.reason()]).inc();
            let topic: String = p.topic.chars().take(200).collect();
            tracing::warn!(%topic, reason = reject.reason(), error = %reject, "message rejected");
            Err(token)
        }
    }
}

/// Counts and logs a message whose topic's partition is not the one this
/// daemon computes for its device: it is still taken (dropping it would lose
/// signal), but a restart would not re-analyse that device's open segment here.
fn check_partition(config: &MqttConfig, topic: &str, device: &str, metrics: &Metrics) {
    let partitions = &config.partitions;
    let Some(on) = partition_in_topic(&config.topic_filter, topic) else {
        return;
    };
    let computed = partition_of(device, partitions.count);
    if on != computed {
        metrics.partition_mismatches.inc();
        // Once: a wrong mapping sends every such message.
        if metrics.partition_mismatches.get() > 1 {
            return;
        }
        tracing::warn!(%device, on, computed,
            "message on another partition than its device's: the broker's mapping must be partition(mqtt.partitions.count, 1) on the device id");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_go_out_in_arrival_order() {
        let t0 = Instant::now();
        let mut order = AckOrder::default();
        let seqs: Vec<u64> = (10..15).map(|pkid| order.receive(pkid, t0)).collect();
        // The third and first finish; only the first is due, the third waits for the second.
        order.finish(seqs[2]);
        order.finish(seqs[0]);
        assert_eq!(order.take_due(t0), vec![10]);
        assert!(order.patience_deadline().is_some());
        order.finish(seqs[1]);
        assert_eq!(order.take_due(t0), vec![11, 12]);
        assert_eq!(order.patience_deadline(), None);
        // Finishing twice, or an unknown message, changes nothing.
        order.finish(seqs[1]);
        order.finish(99);
        assert!(order.take_due(t0).is_empty());
        order.finish(seqs[4]);
        order.finish(seqs[3]);
        assert_eq!(order.take_due(t0), vec![13, 14]);
        assert!(order.pending.is_empty());
    }

    #[test]
    fn an_unfinished_message_holds_the_others_back_only_for_a_while() {
        let t0 = Instant::now();
        let mut order = AckOrder::default();
        let held = order.receive(1, t0);
        let a = order.receive(2, t0);
        let b = order.receive(3, t0);
        order.finish(b);
        order.finish(a);
        assert!(order.take_due(t0).is_empty());
        let deadline = order.patience_deadline().unwrap();
        assert_eq!(deadline.into_std(), t0 + ACK_ORDER_PATIENCE);
        assert_eq!(order.take_due(t0 + ACK_ORDER_PATIENCE), vec![2, 3]);
        // The held message is still owed, and goes out once finished.
        assert_eq!(order.patience_deadline(), None);
        order.finish(held);
        assert_eq!(order.take_due(t0 + ACK_ORDER_PATIENCE), vec![1]);
    }

    #[test]
    fn at_shutdown_every_finished_message_is_acknowledged() {
        let t0 = Instant::now();
        let mut order = AckOrder::default();
        let _held = order.receive(1, t0);
        let a = order.receive(2, t0);
        let _unfinished = order.receive(3, t0);
        order.finish(a);
        assert!(order.take_due(t0).is_empty());
        assert_eq!(order.take_finished(), vec![2]);
        assert_eq!(order.pending.len(), 2);
        assert_eq!(order.patience_deadline(), None);
    }
}
