//! Prometheus metrics of the daemon, all under the `holterd_` prefix, served
//! on `/metrics`. One [`Metrics`] is shared by every stage.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric the daemon exports.
pub struct Metrics {
    registry: Registry,
    pub messages: IntCounter,
    pub samples: IntCounter,
    pub rejected: IntCounterVec,
    pub duplicates: IntCounter,
    pub late: IntCounter,
    pub gaps: IntCounter,
    pub missing_messages: IntCounter,
    pub segments_started: IntCounter,
    pub beats_extracted: IntCounter,
    pub beats_out_of_distribution: IntCounter,
    pub beats_stored: IntCounterVec,
    pub beats_classified: IntCounterVec,
    pub episodes_opened: IntCounterVec,
    pub events_published: IntCounterVec,
    pub events_failed: IntCounter,
    pub alert_latency_seconds: HistogramVec,
    pub active_streams: IntGauge,
    pub queue_depth: IntGaugeVec,
    pub backpressure_waits: IntCounterVec,
    pub batch_size: Histogram,
    pub inference_seconds: Histogram,
    pub end_to_end_seconds: Histogram,
    pub store_write_seconds: HistogramVec,
    pub store_errors: IntCounterVec,
    pub store_up: IntGauge,
    pub broker_connected: IntGauge,
    pub subscribed: IntGauge,
    pub mqtt_reconnects: IntCounter,
    pub embedded_broker_skips: IntCounter,
    pub recovered_segments: IntCounter,
    pub partition_mismatches: IntCounter,
    pub signal_packed_chunks: IntCounter,
    pub signal_packed_bytes: IntCounterVec,
    pub beats_packed: IntCounter,
    pub beats_packed_bytes: IntCounter,
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric name");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric name");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric name");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid metric name");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

/// Latency buckets from 1 ms to 30 s.
fn seconds_buckets() -> Vec<f64> {
    vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0,
        10.0, 30.0,
    ]
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Metrics {
        let r = Registry::new();
        let store_write_seconds = HistogramVec::new(
            HistogramOpts::new(
                "holterd_store_write_seconds",
                "Duration of one bulk write transaction, by table group",
            )
            .buckets(seconds_buckets()),
            &["what"],
        )
        .expect("valid metric name");
        r.register(Box::new(store_write_seconds.clone()))
            .expect("unique metric");
        let alert_latency_seconds = HistogramVec::new(
            HistogramOpts::new(
                "holterd_alert_latency_seconds",
                "From the arrival of the sample that caused an episode event to the event stored (stage=stored) and handed to the broker connection (stage=published), by the tier of the rule it met (none: no rule)",
            )
            .buckets(seconds_buckets()),
            &["stage", "tier"],
        )
        .expect("valid metric name");
        r.register(Box::new(alert_latency_seconds.clone()))
            .expect("unique metric");
        let m = Metrics {
            messages: counter(&r, "holterd_messages_total", "MQTT messages received"),
            samples: counter(&r, "holterd_samples_total", "ECG samples accepted"),
            rejected: counter_vec(
                &r,
                "holterd_rejected_messages_total",
                "Messages refused, by reason",
                &["reason"],
            ),
            duplicates: counter(
                &r,
                "holterd_duplicate_messages_total",
                "Messages dropped as already received (QoS 1 redelivery)",
            ),
            late: counter(
                &r,
                "holterd_late_messages_total",
                "Messages arriving after their gap was declared (acknowledged and dropped)",
            ),
            gaps: counter(&r, "holterd_gaps_total", "Gaps in sequence numbers"),
            missing_messages: counter(
                &r,
                "holterd_missing_messages_total",
                "Messages never received, summed over gaps",
            ),
            segments_started: counter(
                &r,
                "holterd_segments_started_total",
                "Stream segments started (first message, gap, expiry, rate change)",
            ),
            beats_extracted: counter(&r, "holterd_beats_extracted_total", "Beats detected"),
            beats_out_of_distribution: counter(
                &r,
                "holterd_beats_out_of_distribution_total",
                "Readable beats the model abstained on as unlike its training beats (stored unreadable)",
            ),
            beats_stored: counter_vec(
                &r,
                "holterd_beats_stored_total",
                "Beats stored, by verdict",
                &["verdict"],
            ),
            beats_classified: counter_vec(
                &r,
                "holterd_beats_classified_total",
                "Beats stored, by the five-class model's AAMI class (N, S, V, F, Q; none: unreadable or a binary model)",
                &["class"],
            ),
            episodes_opened: counter_vec(
                &r,
                "holterd_episodes_opened_total",
                "Rhythm episodes opened on live beats, by kind",
                &["kind"],
            ),
            events_published: counter_vec(
                &r,
                "holterd_events_published_total",
                "Episode events published on MQTT, by event (start, alert, end, withdrawn) and tier",
                &["event", "tier"],
            ),
            events_failed: counter(
                &r,
                "holterd_events_failed_total",
                "Episode events the broker connection refused (logged; not retried)",
            ),
            alert_latency_seconds,
            active_streams: gauge(&r, "holterd_active_streams", "Device streams open now"),
            queue_depth: {
                let g = IntGaugeVec::new(
                    Opts::new("holterd_queue_depth", "Items waiting in each stage's queue"),
                    &["queue"],
                )
                .expect("valid metric name");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            backpressure_waits: counter_vec(
                &r,
                "holterd_backpressure_waits_total",
                "Times a stage waited for room in a full downstream queue",
                &["queue"],
            ),
            batch_size: histogram(
                &r,
                "holterd_batch_size",
                "Beats per inference batch",
                vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
                ],
            ),
            inference_seconds: histogram(
                &r,
                "holterd_inference_seconds",
                "Duration of one inference batch",
                seconds_buckets(),
            ),
            end_to_end_seconds: histogram(
                &r,
                "holterd_end_to_end_seconds",
                "From the arrival of a beat's last sample to its verdict being committed",
                seconds_buckets(),
            ),
            store_write_seconds,
            store_errors: counter_vec(
                &r,
                "holterd_store_errors_total",
                "Failed store writes (retried), by table group",
                &["what"],
            ),
            store_up: gauge(
                &r,
                "holterd_store_up",
                "1 when the last store access succeeded",
            ),
            broker_connected: gauge(
                &r,
                "holterd_broker_connected",
                "1 while connected to the MQTT broker",
            ),
            subscribed: gauge(
                &r,
                "holterd_subscribed",
                "1 while the broker has acknowledged the subscription",
            ),
            mqtt_reconnects: counter(
                &r,
                "holterd_mqtt_reconnects_total",
                "Connections to the broker after the first",
            ),
            embedded_broker_skips: counter(
                &r,
                "holterd_embedded_broker_skips_total",
                "Times the embedded broker dropped the oldest messages for the daemon, which had fallen further behind than embedded_broker.buffer_mib holds",
            ),
            recovered_segments: counter(
                &r,
                "holterd_recovered_segments_total",
                "Open segments re-analysed from stored signal at start",
            ),
            partition_mismatches: counter(
                &r,
                "holterd_partition_mismatches_total",
                "Messages on a partition other than the one this daemon computes for their device (the broker's mapping is not partition(N, 1) on the device id)",
            ),
            signal_packed_chunks: counter(
                &r,
                "holterd_signal_packed_chunks_total",
                "Raw chunks packed into compressed signal blocks",
            ),
            signal_packed_bytes: counter_vec(
                &r,
                "holterd_signal_packed_bytes_total",
                "Stored sample bytes of the chunks packed (stage=in) and of their blocks (stage=out)",
                &["stage"],
            ),
            beats_packed: counter(
                &r,
                "holterd_beats_packed_total",
                "Normal and unreadable beat rows packed into compressed beat blocks",
            ),
            beats_packed_bytes: counter(
                &r,
                "holterd_beats_packed_bytes_total",
                "Bytes of the beat blocks written",
            ),
            registry: r,
        };
        for stage in ["in", "out"] {
            m.signal_packed_bytes.with_label_values(&[stage]);
        }
        for reason in crate::formats::wire::Reject::REASONS {
            m.rejected.with_label_values(&[reason]);
        }
        for v in crate::store::Verdict::ALL {
            m.beats_stored.with_label_values(&[v.as_str()]);
        }
        // Every series a dashboard or alerting rule reads exists from the start.
        let tiers = crate::pipeline::alerts::Tier::ALL.map(|t| t.as_str());
        for tier in tiers.iter().copied().chain(["none"]) {
            for phase in ["start", "alert", "end", "withdrawn"] {
                m.events_published.with_label_values(&[phase, tier]);
            }
            for stage in ["stored", "published"] {
                m.alert_latency_seconds.with_label_values(&[stage, tier]);
            }
        }
        for c in crate::formats::wfdb::AamiClass::ALL {
            m.beats_classified.with_label_values(&[c.as_str()]);
        }
        m.beats_classified.with_label_values(&["none"]);
        for k in crate::rhythm::EpisodeKind::ALL {
            m.episodes_opened.with_label_values(&[k.as_str()]);
        }
        for q in [
            "source",
            "ingest",
            "analysis",
            "batcher",
            "inference",
            "writer",
            "events",
        ] {
            m.queue_depth.with_label_values(&[q]);
            m.backpressure_waits.with_label_values(&[q]);
        }
        for w in ["chunks", "beats", "rhythm"] {
            m.store_errors.with_label_values(&[w]);
            m.store_write_seconds.with_label_values(&[w]);
        }
        m
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
