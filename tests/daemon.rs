//! The daemon end to end: fixture records published over MQTT by the replay
//! fleet, through `server::run`, into a store, compared beat by beat with the
//! offline analysis of the same records.
//!
//! Every test runs on the embedded broker and SQLite. With
//! `HOLTER_TEST_MQTT=host:port` and `HOLTER_TEST_POSTGRES_URL=postgres://…`
//! (set by `.ci/run`) the same checks also run against Mosquitto and Postgres.

mod common;

use holterd::config::Config;
use holterd::formats::wfdb::LeadChoice;
use holterd::formats::wfdb::Recording;
use holterd::metrics::Metrics;
use holterd::model::classifier::Classifier;
use holterd::pipeline::offline::{analyze_recording, compare};
use holterd::pipeline::rhythm::episodes_of;
use holterd::replay::{Encoding, ReplayOptions, replay};
use holterd::rhythm::RhythmConfig;
use holterd::server::{Listeners, run};
use holterd::store::{AnyStore, BeatQuery, EpisodeQuery, Store};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

const T0_US: i64 = 1_764_000_000_000_000;

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/context-mlp-beat-inter")
}

/// The embedded broker on a free port (one per test).
fn embedded_broker() -> String {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let skips = prometheus::IntCounter::new("skips", "unread messages dropped").unwrap();
    holterd::source::broker::start(addr, 256 * 1024, 128 << 20, skips).unwrap();
    addr.to_string()
}

/// The tests' daemon configuration: the shipped CNN-LSTM, short batching waits.
fn config(broker: &str, client_id: &str, topic_prefix: &str) -> Config {
    let mut config = Config::default();
    config.mqtt.broker = broker.to_string();
    config.mqtt.topic_filter = format!("{topic_prefix}/+/ecg");
    config.mqtt.client_id = client_id.to_string();
    config.pipeline.models = vec![model_dir()];
    config.pipeline.max_wait_ms = 20;
    config.streams.expire_after_s = 600;
    config
}

/// A daemon running in the background; dropping the sender stops it.
struct Daemon {
    broker: String,
    client_id: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    metrics: Arc<Metrics>,
    http: std::net::SocketAddr,
}

impl Daemon {
    async fn start(store: AnyStore, broker: &str, client_id: &str, topic_prefix: &str) -> Daemon {
        let d = Daemon::spawn(store, config(broker, client_id, topic_prefix)).await;
        d.wait_until(|m| m.subscribed.get() == 1, "the subscription")
            .await;
        d
    }

    /// Starts a daemon with `config` without waiting for its broker connection.
    async fn spawn(store: AnyStore, config: Config) -> Daemon {
        let (broker, client_id) = (config.mqtt.broker.clone(), config.mqtt.client_id.clone());
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = http.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(
            config,
            store,
            Listeners {
                http,
                metrics: None,
            },
            metrics.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Daemon {
            broker,
            client_id,
            stop: Some(stop),
            task,
            metrics,
            http: addr,
        }
    }

    async fn wait_until(&self, cond: impl Fn(&Metrics) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !cond(&self.metrics) {
            assert!(!self.task.is_finished(), "daemon exited waiting for {what}");
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.metrics.render()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.unwrap().unwrap();
    }

    /// Stops the daemon and has the broker forget its session (a shared broker
    /// would otherwise keep queueing messages for a client that never returns).
    async fn stop_for_good(self) {
        let (broker, client_id) = (self.broker.clone(), self.client_id.clone());
        self.stop().await;
        let (host, port) = holterd::source::mqtt::split_address(&broker, 1883).unwrap();
        let mut o = MqttOptions::new(client_id, host, port);
        o.set_clean_session(true);
        let (client, mut eventloop) = AsyncClient::new(o, 10);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    client.disconnect().await.unwrap();
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

fn fixtures() -> Vec<Recording> {
    common::FIXTURES
        .iter()
        .map(|f| Recording::from_wfdb(&common::fixture(f), &LeadChoice::Default).unwrap())
        .collect()
}

fn options(
    broker: &str,
    topic_prefix: &str,
    devices: Vec<String>,
    encoding: Encoding,
) -> ReplayOptions {
    ReplayOptions {
        broker: broker.to_string(),
        topic_prefix: topic_prefix.into(),
        devices,
        // One-second messages keep a whole fixture under Mosquitto's default queue limit.
        chunk_ms: 1000,
        speed: 0.0,
        encoding,
        end: true,
        t0_us: T0_US,
        stream: 0,
        devices_per_connection: 50,
        from_seconds: 0.0,
        max_seconds: 0.0,
    }
}

async fn replay_all(recs: &[Recording], opts: ReplayOptions) {
    let (_tx, rx) = watch::channel(false);
    replay(Arc::new(recs.to_vec()), opts, rx).await.unwrap();
}

/// Waits until the store holds no open segment and `devices` have beats.
async fn wait_stored(store: &AnyStore, devices: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let open = store.open_segments().await.unwrap();
        let mut all = open.is_empty();
        for d in devices {
            all &= !store.beats(&BeatQuery::all(d, 1)).await.unwrap().is_empty();
        }
        if all {
            return;
        }
        assert!(Instant::now() < deadline, "beats not stored in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts the stored beats of each device equal the offline analysis of its recording.
async fn assert_matches_offline(store: &AnyStore, recs: &[Recording], devices: &[String]) {
    let classifier = Classifier::load(&[model_dir()], &candle_core::Device::Cpu).unwrap();
    for (rec, device) in recs.iter().zip(devices) {
        let offline = analyze_recording(
            device,
            T0_US,
            rec.fs,
            &rec.millivolts(),
            Some(60.0),
            &classifier,
            0.5,
        )
        .unwrap();
        let stored = store
            .beats(&BeatQuery::all(device, 1_000_000))
            .await
            .unwrap();
        assert!(offline.len() > 150, "{device}: a 3-minute record has beats");
        let c = compare(&stored, &offline);
        assert!(c.is_exact(), "{device}: {c:?}");
        assert!(stored.iter().all(|b| b.model == "context-mlp-beat-inter"));
        // The rhythm episodes too: the same as the offline analyser's on the same beats.
        let expected = episodes_of(&offline, &RhythmConfig::default());
        let episodes = store
            .episodes(&EpisodeQuery {
                device: device.clone(),
                from_us: i64::MIN,
                to_us: i64::MAX,
                kind: None,
                limit: 1000,
            })
            .await
            .unwrap();
        assert_eq!(episodes, expected, "{device}");
        if device.starts_with("119") {
            assert!(
                !episodes.is_empty(),
                "record 119 has ventricular bigeminy and trigeminy"
            );
        }
    }
}

async fn streams_match_offline(store: AnyStore, broker: &str, encoding: Encoding) {
    let recs = fixtures();
    let devices: Vec<String> = recs
        .iter()
        .map(|r| common::unique(&format!("{}-", r.name)))
        .collect();
    let topics = common::unique("t");
    let daemon = Daemon::start(store.clone(), broker, &common::unique("holterd-"), &topics).await;
    replay_all(&recs, options(broker, &topics, devices.clone(), encoding)).await;
    wait_stored(&store, &devices).await;
    assert_matches_offline(&store, &recs, &devices).await;
    assert_eq!(daemon.metrics.duplicates.get(), 0);
    assert_eq!(daemon.metrics.gaps.get(), 0);
    let body = http_get(daemon.http, "/metrics").await;
    assert!(
        body.contains("holterd_beats_stored_total{verdict=\"normal\"}"),
        "{body}"
    );
    let health = http_get(daemon.http, "/healthz").await;
    assert!(
        health.starts_with("HTTP/1.1 200") && health.contains("\"store_up\":true"),
        "{health}"
    );
    let ready = http_get(daemon.http, "/readyz").await;
    assert!(
        ready.contains("\"broker\":true") && ready.contains("\"store\":true"),
        "{ready}"
    );
    daemon.stop().await;
}

/// A minimal HTTP GET (status line and body).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_and_sqlite_store_exactly_the_offline_beats() {
    let broker = embedded_broker();
    streams_match_offline(common::sqlite_store().await, &broker, Encoding::Binary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_payloads_give_the_same_beats() {
    let broker = embedded_broker();
    streams_match_offline(common::sqlite_store().await, &broker, Encoding::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_and_postgres_store_exactly_the_offline_beats() {
    let (Ok(broker), Some(store)) = (
        std::env::var("HOLTER_TEST_MQTT"),
        common::postgres_store(4).await,
    ) else {
        eprintln!("skipped: set HOLTER_TEST_MQTT and HOLTER_TEST_POSTGRES_URL");
        return;
    };
    streams_match_offline(store, &broker, Encoding::Binary).await;
}

/// Stops the daemon half-way through the records and starts it again: the open
/// segments are re-analysed from stored signal, and nothing is lost or doubled.
///
/// With `publish_while_down`, the second half is published while the daemon is
/// stopped (the broker queues it in the daemon's session), so it pours in while
/// the open segments are being re-analysed.
async fn restart_mid_stream(store: AnyStore, broker: &str, publish_while_down: bool) {
    let recs = fixtures();
    let devices: Vec<String> = recs
        .iter()
        .map(|r| common::unique(&format!("{}-", r.name)))
        .collect();
    let client = common::unique("holterd-");
    let topics = common::unique("t");
    let daemon = Daemon::start(store.clone(), broker, &client, &topics).await;
    let mut first = options(broker, &topics, devices.clone(), Encoding::Binary);
    first.end = false;
    first.max_seconds = 95.0;
    replay_all(&recs, first).await;
    daemon
        .wait_until(|m| m.messages.get() == 3 * 95, "the first half")
        .await;
    daemon.stop().await;
    assert_eq!(store.open_segments().await.unwrap().len(), 3);
    let mut second = options(broker, &topics, devices.clone(), Encoding::Binary);
    second.from_seconds = 95.0;
    let daemon = if publish_while_down {
        replay_all(&recs, second).await;
        Daemon::start(store.clone(), broker, &client, &topics).await
    } else {
        let daemon = Daemon::start(store.clone(), broker, &client, &topics).await;
        replay_all(&recs, second).await;
        daemon
    };
    wait_stored(&store, &devices).await;
    assert_eq!(daemon.metrics.recovered_segments.get(), 3);
    assert_matches_offline(&store, &recs, &devices).await;
    daemon.stop_for_good().await;
}

/// Two daemons share a fleet and a store by partition: each takes its own
/// devices' messages, and a restart re-analyses only its own open segments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_owning_partitions_share_a_fleet_and_recover_only_their_own() {
    use holterd::formats::partition::{Partitions, partition_of};
    let broker = embedded_broker();
    let store = common::sqlite_store().await;
    let recs = fixtures();
    // Device names in partitions 0, 1, 0 of 2 (the broker's mapping would put them there).
    let devices: Vec<String> = (0..recs.len())
        .map(|i| {
            loop {
                let d = common::unique(&format!("{}-", recs[i].name));
                if partition_of(&d, 2) == (i % 2) as u32 {
                    break d;
                }
            }
        })
        .collect();
    let topics = common::unique("p");
    let partitioned = |owned: u32, client: &str| {
        let mut c = config(&broker, client, &topics);
        c.mqtt.topic_filter = format!("{topics}/{{partition}}/+/ecg");
        c.mqtt.partitions = Partitions {
            count: 2,
            owned: vec![owned],
        };
        c
    };
    let clients = [common::unique("holterd-a-"), common::unique("holterd-b-")];
    let start = |k: usize| {
        let (store, config) = (store.clone(), partitioned(k as u32, &clients[k]));
        async move {
            let d = Daemon::spawn(store, config).await;
            d.wait_until(|m| m.subscribed.get() == 1, "the subscription")
                .await;
            d
        }
    };
    // Publishes seconds `from..to` of each record on its device's partition topic.
    let publish = |from: f64, to: f64| {
        let (recs, devices, broker, topics) = (
            recs.clone(),
            devices.clone(),
            broker.clone(),
            topics.clone(),
        );
        async move {
            for k in 0..2 {
                let mine: Vec<usize> = (0..recs.len()).filter(|i| i % 2 == k).collect();
                let mut o = options(
                    &broker,
                    &format!("{topics}/{k}"),
                    mine.iter().map(|&i| devices[i].clone()).collect(),
                    Encoding::Binary,
                );
                (o.from_seconds, o.max_seconds, o.end) = (from, to, to == 0.0);
                let part: Vec<Recording> = mine.iter().map(|&i| recs[i].clone()).collect();
                replay_all(&part, o).await;
            }
        }
    };
    let (a, b) = (start(0).await, start(1).await);
    publish(0.0, 95.0).await;
    a.wait_until(|m| m.messages.get() == 2 * 95, "partition 0's first half")
        .await;
    b.wait_until(|m| m.messages.get() == 95, "partition 1's first half")
        .await;
    a.stop().await;
    b.stop().await;
    assert_eq!(store.open_segments().await.unwrap().len(), 3);
    // Daemon a alone re-analyses its two devices, not b's.
    let a = start(0).await;
    a.wait_until(|m| m.recovered_segments.get() == 2, "a's recovery")
        .await;
    let b = start(1).await;
    b.wait_until(|m| m.recovered_segments.get() == 1, "b's recovery")
        .await;
    publish(95.0, 0.0).await;
    wait_stored(&store, &devices).await;
    assert_matches_offline(&store, &recs, &devices).await;
    for d in [&a, &b] {
        assert_eq!(d.metrics.partition_mismatches.get(), 0);
        assert_eq!(d.metrics.gaps.get(), 0);
    }
    assert_eq!(a.metrics.recovered_segments.get(), 2);
    a.stop_for_good().await;
    b.stop_for_good().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_stream_loses_and_doubles_nothing_sqlite() {
    let broker = embedded_broker();
    restart_mid_stream(common::sqlite_store().await, &broker, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_stream_loses_and_doubles_nothing_postgres() {
    let (Ok(broker), Some(store)) = (
        std::env::var("HOLTER_TEST_MQTT"),
        common::postgres_store(4).await,
    ) else {
        eprintln!("skipped: set HOLTER_TEST_MQTT and HOLTER_TEST_POSTGRES_URL");
        return;
    };
    // Mosquitto keeps the daemon's session while it is down.
    restart_mid_stream(store, &broker, true).await;
}

/// Publishes raw payloads with a plain MQTT client and waits for their acknowledgements.
async fn publish_raw(broker: &str, messages: Vec<(String, Vec<u8>)>) {
    let (host, port) = holterd::source::mqtt::split_address(broker, 1883).unwrap();
    let mut o = MqttOptions::new(common::unique("raw-"), host, port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(o, 100);
    let n = messages.len();
    let pump = tokio::spawn(async move {
        let mut acked = 0;
        while acked < n {
            if let Ok(Event::Incoming(Packet::PubAck(_))) = eventloop.poll().await {
                acked += 1;
            }
        }
    });
    for (topic, payload) in messages {
        client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(30), pump)
        .await
        .unwrap()
        .unwrap();
}

/// The embedded broker holds `embedded_broker.buffer_mib` of messages for a
/// subscriber that reads none; past that it drops the oldest, counts each
/// drop, and delivers the rest in order, the newest included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_bounds_its_buffer_and_counts_what_a_stalled_reader_loses() {
    let port = common::free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let skips = prometheus::IntCounter::new("skips", "unread messages dropped").unwrap();
    holterd::source::broker::start(addr, 256 * 1024, 8 << 20, skips.clone()).unwrap();
    let prefix = common::unique("lag");
    let mut o = MqttOptions::new(common::unique("stalled-"), "127.0.0.1", port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (sub, mut sub_loop) = AsyncClient::new(o, 100);
    sub.subscribe(format!("{prefix}/+/ecg"), QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), sub_loop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => panic!("no subscription: {other:?}"),
        }
    }
    // 16 MiB for an 8 MiB buffer while the subscriber reads nothing.
    let n = 4000u32;
    let topic = format!("{prefix}/dev/ecg");
    let messages = (0..n)
        .map(|i| {
            let mut payload = vec![0u8; 4096];
            payload[..4].copy_from_slice(&i.to_be_bytes());
            (topic.clone(), payload)
        })
        .collect();
    publish_raw(&addr.to_string(), messages).await;
    let mut got = Vec::new();
    while got.last() != Some(&(n - 1)) {
        match tokio::time::timeout(Duration::from_secs(10), sub_loop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                got.push(u32::from_be_bytes(p.payload[..4].try_into().unwrap()))
            }
            Ok(Ok(_)) => {}
            other => panic!("delivery stopped after {} messages: {other:?}", got.len()),
        }
    }
    assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order");
    assert!(
        got.len() < n as usize - 1000,
        "{} of {n} delivered: nothing was dropped",
        got.len()
    );
    // Alerts come from the broker each second.
    let deadline = Instant::now() + Duration::from_secs(10);
    while skips.get() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(skips.get() >= 1, "the drop was not counted");
}

async fn bad_payloads(store: AnyStore, broker: &str) {
    let recs = fixtures();
    let good = common::unique("good-");
    let topics = common::unique("t");
    let daemon = Daemon::start(store.clone(), broker, &common::unique("holterd-"), &topics).await;
    let bad = common::unique("bad-");
    let topic = format!("{topics}/{bad}/ecg");
    let big = vec![b'{'; 300 * 1024];
    let cases: Vec<(String, Vec<u8>)> = vec![
        (topic.clone(), b"{not json".to_vec()),
        (
            topic.clone(),
            br#"{"seq":1,"t0_us":0,"fs":36,"samples":[1]}"#.to_vec(),
        ),
        (
            topic.clone(),
            br#"{"seq":1,"t0_us":0,"fs":360,"samples":[]}"#.to_vec(),
        ),
        (topic.clone(), b"\x00\x01garbage".to_vec()),
        (topic.clone(), b"HB\x01\x00short".to_vec()),
        (topic.clone(), big),
        (
            topic.clone(),
            br#"{"seq":1,"t0_us":0,"fs":360,"samples":[1e300],"gain":1e-300}"#.to_vec(),
        ),
        (
            format!("{topics}/bad device/ecg"),
            br#"{"seq":1,"t0_us":0,"fs":360,"samples":[1]}"#.to_vec(),
        ),
    ];
    // Each case's reason, and how many cases give it.
    let expected = [
        ("malformed", 2),
        ("wrong_rate", 1),
        ("empty", 1),
        ("unknown_encoding", 1),
        ("oversized", 1),
        ("non_finite", 1),
        ("bad_device_id", 1),
    ];
    assert_eq!(
        expected.iter().map(|(_, k)| k).sum::<u64>(),
        cases.len() as u64
    );
    // The good device streams while the bad messages arrive.
    let mut opts = options(broker, &topics, vec![good.clone()], Encoding::Binary);
    opts.speed = 20.0;
    let (_tx, rx) = watch::channel(false);
    let replay_task = tokio::spawn(replay(Arc::new(recs[..1].to_vec()), opts, rx));
    publish_raw(broker, cases).await;
    replay_task.await.unwrap().unwrap();
    daemon
        .wait_until(
            |m| {
                expected
                    .iter()
                    .all(|(r, k)| m.rejected.with_label_values(&[r]).get() >= *k)
            },
            "rejections",
        )
        .await;
    let m = &daemon.metrics;
    let count = |r: &str| m.rejected.with_label_values(&[r]).get();
    // MQTT delivers at least once: after a reconnect the broker redelivers
    // what was not yet acknowledged, and a redelivered bad message is refused
    // again. (rumqttd drops a client whose acknowledgements come out of
    // arrival order; the source keeps them in order, but gives up waiting on
    // a message unfinished for two seconds, which a loaded machine can reach.)
    // Without a reconnect every count is exact.
    let reconnected = m.mqtt_reconnects.get() > 0;
    for r in Reject::REASONS {
        let want = expected
            .iter()
            .find(|(name, _)| *name == r)
            .map_or(0, |(_, k)| *k);
        if want == 0 || !reconnected {
            assert_eq!(count(r), want, "{r}");
        } else {
            assert!(count(r) >= want, "{r}: {}", count(r));
        }
    }
    wait_stored(&store, std::slice::from_ref(&good)).await;
    assert_matches_offline(&store, &recs[..1], std::slice::from_ref(&good)).await;
    assert!(
        store
            .beats(&BeatQuery::all(&bad, 10))
            .await
            .unwrap()
            .is_empty()
    );
    daemon.stop().await;
}

use holterd::formats::wire::Reject;

/// rumqttd, the embedded broker, drops a client whose acknowledgements come
/// out of arrival order. Here frame 3 is held for frame 2 while the refused
/// message behind it is finished at once; acknowledging that one first would
/// cost the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_keep_arrival_order_and_the_connection() {
    let broker = embedded_broker();
    let topics = common::unique("t");
    let store = common::sqlite_store().await;
    let daemon = Daemon::start(store, &broker, &common::unique("holterd-"), &topics).await;
    let topic = format!("{topics}/{}/ecg", common::unique("dev-"));
    let frame = |seq: i64| {
        let samples = vec!["0.0"; 360].join(",");
        let t0 = T0_US + (seq - 1) * 1_000_000;
        let json = format!(r#"{{"seq":{seq},"t0_us":{t0},"fs":360,"samples":[{samples}]}}"#);
        (topic.clone(), json.into_bytes())
    };
    let refused = (topic.clone(), b"{not json".to_vec());
    publish_raw(&broker, vec![frame(1), frame(3), refused, frame(2)]).await;
    let m = &daemon.metrics;
    daemon
        .wait_until(
            |m| {
                m.samples.get() == 3 * 360
                    && m.rejected.with_label_values(&["malformed"]).get() == 1
            },
            "three frames and the refusal",
        )
        .await;
    // Time for the acknowledgements to go out and for the broker to react.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(m.mqtt_reconnects.get(), 0, "{}", m.render());
    assert_eq!(m.broker_connected.get(), 1);
    assert_eq!(m.gaps.get(), 0);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_from_a_real_client_are_refused_by_reason_and_harm_no_one() {
    let broker = embedded_broker();
    bad_payloads(common::sqlite_store().await, &broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_through_mosquitto_and_postgres() {
    let (Ok(broker), Some(store)) = (
        std::env::var("HOLTER_TEST_MQTT"),
        common::postgres_store(4).await,
    ) else {
        eprintln!("skipped: set HOLTER_TEST_MQTT and HOLTER_TEST_POSTGRES_URL");
        return;
    };
    bad_payloads(store, &broker).await;
}

/// Runs `cmd` quietly, returning whether it succeeded.
fn sh(cmd: &str, dir: &std::path::Path) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A private Mosquitto with TLS (a test CA) and password authentication.
struct SecureBroker {
    child: std::process::Child,
    port: u16,
    dir: PathBuf,
}

impl SecureBroker {
    fn start() -> Option<SecureBroker> {
        let dir = common::temp_dir("tls");
        std::fs::create_dir_all(&dir).unwrap();
        let port = common::free_port();
        let setup = [
            "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=holterd-test-ca \
               -keyout ca.key -out ca.pem",
            "openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr",
            "printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext.cnf && \
             openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
               -extfile ext.cnf -out server.pem",
            "mosquitto_passwd -c -b passwd holterd s3cret-test",
            "chmod 755 . && chmod 644 *",
        ];
        if !setup.iter().all(|c| sh(c, &dir)) {
            return None;
        }
        let conf = format!(
            "listener {port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n\
             allow_anonymous false\npassword_file {d}/passwd\n",
            d = dir.display()
        );
        std::fs::write(dir.join("mosquitto.conf"), conf).unwrap();
        let child = std::process::Command::new("mosquitto")
            .arg("-c")
            .arg(dir.join("mosquitto.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(SecureBroker { child, port, dir })
    }
}

impl Drop for SecureBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_password_authentication_to_the_broker() {
    let Some(broker) = SecureBroker::start() else {
        eprintln!("skipped: needs mosquitto, mosquitto_passwd and openssl");
        return;
    };
    let secure = |password: &str| {
        let mut c = config(
            &format!("127.0.0.1:{}", broker.port),
            &common::unique("holterd-"),
            &common::unique("t"),
        );
        c.mqtt.tls = true;
        c.mqtt.ca_file = broker.dir.join("ca.pem").display().to_string();
        c.mqtt.username = "holterd".into();
        let file = broker.dir.join(common::unique("pw-"));
        std::fs::write(&file, format!("{password}\n")).unwrap();
        c.mqtt.password_file = file.display().to_string();
        c
    };
    // The right password over TLS connects.
    let d = Daemon::spawn(common::sqlite_store().await, secure("s3cret-test")).await;
    d.wait_until(|m| m.broker_connected.get() == 1, "TLS connection")
        .await;
    d.stop().await;
    // A wrong password is refused: the daemon keeps retrying and never reports connected.
    let d = Daemon::spawn(common::sqlite_store().await, secure("wrong")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(d.metrics.broker_connected.get(), 0);
    let ready = http_get(d.http, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    d.stop().await;
    // Without TLS the listener refuses the connection.
    let mut plain = secure("s3cret-test");
    plain.mqtt.tls = false;
    let d = Daemon::spawn(common::sqlite_store().await, plain).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(d.metrics.broker_connected.get(), 0);
    d.stop().await;
}

/// Every message on `filter` until `stop` is set, as JSON values.
async fn collect_events(
    broker: String,
    filter: String,
    ready: oneshot::Sender<()>,
    mut stop: watch::Receiver<bool>,
) -> Vec<serde_json::Value> {
    let (host, port) = holterd::source::mqtt::split_address(&broker, 1883).unwrap();
    let mut o = MqttOptions::new(common::unique("events-"), host, port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(o, 100);
    client.subscribe(&filter, QoS::AtLeastOnce).await.unwrap();
    let mut ready = Some(ready);
    let mut out = Vec::new();
    loop {
        tokio::select! {
            _ = stop.changed() => return out,
            e = eventloop.poll() => match e.unwrap() {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Event::Incoming(Packet::Publish(p)) => {
                    assert!(p.topic.ends_with("/events"), "{}", p.topic);
                    out.push(serde_json::from_slice(&p.payload).unwrap());
                }
                _ => {}
            },
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn episode_events_and_alerts_are_published_on_the_events_topic() {
    let broker = embedded_broker();
    let store = common::sqlite_store().await;
    let mut recs = fixtures();
    // A 55-second run of ventricular tachycardia.
    recs.push(Recording::from_wfdb(&common::fixture("223_540"), &LeadChoice::Default).unwrap());
    let devices: Vec<String> = recs
        .iter()
        .map(|r| common::unique(&format!("{}-", r.name)))
        .collect();
    let topics = common::unique("t");
    let (ready_tx, ready) = oneshot::channel();
    let (stop_tx, stop) = watch::channel(false);
    let events = tokio::spawn(collect_events(
        broker.clone(),
        format!("{topics}/+/events"),
        ready_tx,
        stop,
    ));
    ready.await.unwrap();
    let mut c = config(&broker, &common::unique("holterd-"), &topics);
    c.events.topic = format!("{topics}/{{device}}/events");
    let daemon = Daemon::spawn(store.clone(), c).await;
    daemon
        .wait_until(|m| m.subscribed.get() == 1, "the subscription")
        .await;
    replay_all(
        &recs,
        options(&broker, &topics, devices.clone(), Encoding::Binary),
    )
    .await;
    wait_stored(&store, &devices).await;
    let mut stored = Vec::new();
    for d in &devices {
        let q = EpisodeQuery {
            device: d.clone(),
            from_us: i64::MIN,
            to_us: i64::MAX,
            kind: None,
            limit: 1000,
        };
        stored.extend(store.episodes(&q).await.unwrap());
    }
    assert!(stored.iter().all(|e| !e.ongoing), "{stored:?}");
    // Each stored episode: one start and one end event, the end with its final extent.
    let want = 2 * stored.len() as u64;
    daemon
        .wait_until(
            |m| {
                ["start", "end"]
                    .iter()
                    .flat_map(|p| ["none", "routine", "urgent", "emergency"].map(|t| (*p, t)))
                    .map(|(p, t)| m.events_published.with_label_values(&[p, t]).get())
                    .sum::<u64>()
                    >= want
            },
            "the episode events",
        )
        .await;
    let body = http_get(daemon.http, "/metrics").await;
    daemon.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop_tx.send(true);
    let events = events.await.unwrap();
    let of = |e: &serde_json::Value, k: &str| e[k].as_str().unwrap_or_default().to_string();
    for ep in &stored {
        let kind = ep.episode.kind.as_str();
        let matching = |phase: &str| {
            events
                .iter()
                .filter(|e| {
                    of(e, "event") == phase
                        && of(e, "device") == ep.device
                        && of(e, "kind") == kind
                        && e["start_us"].as_i64() == Some(ep.episode.start_us)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(matching("start").len(), 1, "{ep:?}\n{events:#?}");
        let end = matching("end");
        assert_eq!(end.len(), 1, "{ep:?}");
        assert_eq!(end[0]["end_us"].as_i64(), Some(ep.episode.end_us));
        assert_eq!(end[0]["beats"].as_u64(), Some(u64::from(ep.episode.beats)));
    }
    let kinds: Vec<&str> = stored.iter().map(|e| e.episode.kind.as_str()).collect();
    eprintln!("stored episodes: {kinds:?}");
    // The VT run: started at its third beat (no rule met yet), an emergency
    // alert at its fourth (≥ 4 beats above 100 /min), ended as an emergency.
    let vt_device = &devices[3];
    let vt: Vec<_> = events
        .iter()
        .filter(|e| of(e, "kind") == "ventricular_tachycardia" && of(e, "device") == *vt_device)
        .collect();
    let long = vt
        .iter()
        .filter(|e| of(e, "event") == "end" && e["beats"].as_u64() > Some(50))
        .count();
    assert_eq!(long, 1, "{vt:#?}");
    let run_start = vt
        .iter()
        .find(|e| of(e, "event") == "end" && e["beats"].as_u64() > Some(50))
        .map(|e| e["start_us"].as_i64())
        .unwrap();
    let phases: Vec<(String, String)> = vt
        .iter()
        .filter(|e| e["start_us"].as_i64() == run_start)
        .map(|e| (of(e, "event"), of(e, "tier")))
        .collect();
    let expect = [("start", ""), ("alert", "emergency"), ("end", "emergency")]
        .map(|(a, b)| (a.to_string(), b.to_string()));
    assert_eq!(phases, expect);
    for e in events
        .iter()
        .filter(|e| of(e, "kind") == "ventricular_tachycardia")
    {
        let fired = e["tier"].as_str().is_some();
        let long_fast = e["beats"].as_u64() >= Some(4) && e["rate_per_min"].as_f64() > Some(100.0);
        if of(e, "event") == "end" {
            assert_eq!(
                fired, long_fast,
                "the VT rule fires on ≥ 4 beats above 100 /min: {e}"
            );
        }
        if fired {
            assert_eq!(of(e, "rule"), "ventricular-tachycardia");
            assert_eq!(of(e, "tier"), "emergency");
        }
    }
    assert!(
        body.contains("holterd_alert_latency_seconds_count{stage=\"published\""),
        "{body}"
    );
}
