//! A simulated wearable fleet: publishes recordings in the wire format as
//! many devices, in real time or faster. Used by `holterd replay`, `holterd
//! demo`, the end-to-end tests and the load benchmark.

use crate::formats::wfdb::Recording;
use crate::formats::wire;
use anyhow::{Context, Result, bail};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// Payload encoding to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    Binary,
    Json,
}

/// How to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Broker `host:port`.
    pub broker: String,
    /// Topic of device `d` is `<topic_prefix>/<d>/ecg`.
    pub topic_prefix: String,
    /// Device ids; device `i` plays recording `i % recordings.len()`.
    pub devices: Vec<String>,
    /// Signal per message, ms.
    pub chunk_ms: u64,
    /// 1 = real time, 10 = ten times faster, 0 = as fast as the broker takes it.
    pub speed: f64,
    pub encoding: Encoding,
    /// Send a last, empty message flagged "end" for each device.
    pub end: bool,
    /// Time of each recording's first sample, µs since the Unix epoch.
    pub t0_us: i64,
    /// Stream id carried by every message.
    pub stream: u32,
    /// Devices per MQTT connection.
    pub devices_per_connection: usize,
    /// Start this many seconds into each recording, numbering messages as if the
    /// earlier ones had been sent (to resume an interrupted replay).
    pub from_seconds: f64,
    /// Stop this many seconds into each recording (0: at its end).
    pub max_seconds: f64,
}

/// What a replay published.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplayStats {
    pub messages: u64,
    pub samples: u64,
    /// Ticks at which the publisher was late by more than one chunk (it could not keep real time).
    pub late_ticks: u64,
}

/// Publishes `recordings` as `options.devices` until done or `stop` turns true.
pub async fn replay(
    recordings: Arc<Vec<Recording>>,
    options: ReplayOptions,
    stop: watch::Receiver<bool>,
) -> Result<ReplayStats> {
    if recordings.is_empty() || options.devices.is_empty() {
        bail!("nothing to replay: give at least one recording and one device");
    }
    for d in &options.devices {
        wire::check_device_id(d).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let messages = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(AtomicU64::new(0));
    let late = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let per = options.devices_per_connection.max(1);
    for (group, devices) in options.devices.chunks(per).enumerate() {
        let first = group * per;
        let (recordings, options, stop) = (recordings.clone(), options.clone(), stop.clone());
        let devices: Vec<(String, usize)> = devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.clone(), (first + i) % recordings.len()))
            .collect();
        let counters = (messages.clone(), samples.clone(), late.clone());
        tasks.push(tokio::spawn(async move {
            publish_group(&recordings, &options, devices, group, stop, counters).await
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(ReplayStats {
        messages: messages.load(Ordering::Relaxed),
        samples: samples.load(Ordering::Relaxed),
        late_ticks: late.load(Ordering::Relaxed),
    })
}

type Counters = (Arc<AtomicU64>, Arc<AtomicU64>, Arc<AtomicU64>);

/// One MQTT connection publishing for `devices` (id, recording index), all in step.
async fn publish_group(
    recordings: &[Recording],
    options: &ReplayOptions,
    devices: Vec<(String, usize)>,
    group: usize,
    mut stop: watch::Receiver<bool>,
    (messages, samples, late): Counters,
) -> Result<()> {
    let (host, port) =
        crate::source::mqtt::split_address(&options.broker, 1883).map_err(anyhow::Error::msg)?;
    let client_id = format!(
        "holterd-replay-{}-{}-{group}",
        std::process::id(),
        replay_nonce()
    );
    let mut mqtt = MqttOptions::new(client_id.clone(), host.clone(), port);
    // A persistent session, as a real device should use: rumqttc resends unacknowledged
    // messages after a reconnection only when the broker kept the session.
    mqtt.set_clean_session(false)
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(500)
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(mqtt, 1024);
    let (acked_tx, mut acked_rx) = watch::channel(0u64);
    let driver = tokio::spawn(async move {
        let mut acked = 0u64;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acked += 1;
                    let _ = acked_tx.send(acked);
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "replay connection error; reconnecting");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
    // Position of every device, in samples of its own recording, and its next sequence number.
    let skipped_chunks = (options.from_seconds * 1000.0 / options.chunk_ms as f64).floor() as usize;
    let mut pos: Vec<usize> = devices
        .iter()
        .map(|(_, r)| skipped_chunks * chunk_len(options, &recordings[*r]))
        .collect();
    let mut seq = vec![skipped_chunks as u64; devices.len()];
    let limit = |r: &Recording| {
        if options.max_seconds > 0.0 {
            r.counts.len().min((options.max_seconds * r.fs) as usize)
        } else {
            r.counts.len()
        }
    };
    let tick = Duration::from_secs_f64(options.chunk_ms as f64 / 1000.0 / options.speed.max(1e-9));
    let start = tokio::time::Instant::now();
    let mut ticks = 0u64;
    let mut published = 0u64;
    let mut done = vec![false; devices.len()];
    while done.iter().any(|d| !d) {
        if *stop.borrow() {
            break;
        }
        for (i, (device, r)) in devices.iter().enumerate() {
            if done[i] {
                continue;
            }
            let rec = &recordings[*r];
            let n = chunk_len(options, rec);
            let end = limit(rec);
            let (a, b) = (pos[i].min(end), (pos[i] + n).min(end));
            let last = b >= end;
            let t0_us = options.t0_us + (a as f64 * 1e6 / rec.fs).round() as i64;
            let mut payloads = Vec::new();
            if a < b {
                payloads.push(encode(
                    options,
                    rec,
                    seq[i],
                    t0_us,
                    &rec.counts[a..b],
                    false,
                ));
                seq[i] += 1;
                samples.fetch_add((b - a) as u64, Ordering::Relaxed);
            }
            if last {
                if options.end {
                    let t_end = options.t0_us + (b as f64 * 1e6 / rec.fs).round() as i64;
                    payloads.push(encode(options, rec, seq[i], t_end, &[], true));
                    seq[i] += 1;
                }
                done[i] = true;
            }
            pos[i] = b;
            let topic = format!("{}/{device}/ecg", options.topic_prefix);
            for p in payloads {
                client
                    .publish(topic.clone(), QoS::AtLeastOnce, false, p)
                    .await
                    .context("publishing")?;
                messages.fetch_add(1, Ordering::Relaxed);
                published += 1;
            }
        }
        ticks += 1;
        if options.speed > 0.0 {
            let due = start + tick * ticks as u32;
            let now = tokio::time::Instant::now();
            if now > due + tick {
                late.fetch_add(1, Ordering::Relaxed);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = stop.changed() => {}
            }
        }
    }
    // Wait until the broker has acknowledged everything, so nothing is lost on exit.
    let _ = tokio::time::timeout(
        Duration::from_secs(60),
        acked_rx.wait_for(|&a| a >= published),
    )
    .await;
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), driver).await;
    forget_session(client_id, host, port).await;
    Ok(())
}

/// Connects once with a clean session so that the broker drops this client's session.
async fn forget_session(client_id: String, host: String, port: u16) {
    let mut o = MqttOptions::new(client_id, host, port);
    o.set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(o, 10);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.try_disconnect();
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

/// A number distinguishing the replays of one process (their clients need distinct ids).
fn replay_nonce() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Samples per message.
fn chunk_len(options: &ReplayOptions, rec: &Recording) -> usize {
    ((options.chunk_ms as f64 / 1000.0) * rec.fs)
        .round()
        .max(1.0) as usize
}

fn encode(
    options: &ReplayOptions,
    rec: &Recording,
    seq: u64,
    t0_us: i64,
    counts: &[i16],
    end: bool,
) -> Vec<u8> {
    match options.encoding {
        Encoding::Binary => wire::encode_binary(
            options.stream,
            seq,
            t0_us,
            rec.fs as f32,
            rec.gain as f32,
            rec.baseline,
            &rec.lead,
            counts,
            end,
        ),
        Encoding::Json => {
            let values: Vec<f64> = counts
                .iter()
                .map(|&c| c as f64 - rec.baseline as f64)
                .collect();
            wire::encode_json(
                options.stream,
                seq,
                t0_us,
                rec.fs,
                rec.gain as f32 as f64,
                &rec.lead,
                &values,
                end,
            )
        }
    }
}
