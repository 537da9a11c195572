//! Puts each device's messages in order and cuts its stream into segments.
//!
//! A device numbers its messages within a stream (`seq`). The [`Sequencer`]
//! drops duplicates (QoS 1 redelivery), holds a few early messages while a
//! missing one may still arrive (`window`), declares a gap when more arrive,
//! and starts a new segment — a fresh extractor — at a device's first message,
//! after a gap, after expiry, and when the stream id, rate or lead changes.
//! It is pure logic: the ingest stage feeds it and acts on its [`SeqEvent`]s.

use crate::formats::wire::Frame;
use crate::store::{SegmentKey, SegmentRow, StreamHead};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// What to do after a message, in order.
#[derive(Debug)]
pub enum SeqEvent<T> {
    /// A segment begins; the frames that follow belong to it.
    Start(SegmentRow),
    /// The next frame of `segment`, in order.
    Frame {
        frame: Frame,
        token: T,
        segment: SegmentKey,
    },
    /// No more frames will come for this segment.
    Close(SegmentKey),
    /// Already received: acknowledge and drop.
    Duplicate(T),
    /// Arrived after its gap was declared: acknowledge and drop.
    Late(T),
}

/// Counts of what happened, for metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeqCounts {
    pub gaps: u64,
    pub missing: u64,
}

struct DeviceState<T> {
    stream: u32,
    /// Highest sequence number released (or stored before a restart).
    last_seq: u64,
    /// The open segment, `None` once closed (expired).
    segment: Option<SegmentRow>,
    /// Early messages waiting for a missing one.
    held: BTreeMap<u64, (Frame, T)>,
    last_seen: Instant,
}

/// Per-device ordering and segmentation.
pub struct Sequencer<T> {
    window: usize,
    devices: HashMap<String, DeviceState<T>>,
    counts: SeqCounts,
}

impl<T> Sequencer<T> {
    /// A sequencer holding at most `window` early messages per device.
    pub fn new(window: usize) -> Self {
        Sequencer {
            window,
            devices: HashMap::new(),
            counts: SeqCounts::default(),
        }
    }

    /// Resumes from the store's view of each device after a restart.
    pub fn restore(&mut self, heads: Vec<StreamHead>, now: Instant) {
        for h in heads {
            self.devices.insert(
                h.segment.key.device.clone(),
                DeviceState {
                    stream: h.segment.key.stream,
                    last_seq: h.last_seq,
                    segment: (!h.closed).then_some(h.segment),
                    held: BTreeMap::new(),
                    last_seen: now,
                },
            );
        }
    }

    /// Gaps and missing messages so far.
    pub fn counts(&self) -> SeqCounts {
        self.counts
    }

    /// Devices with an open segment.
    pub fn active(&self) -> usize {
        self.devices
            .values()
            .filter(|d| d.segment.is_some())
            .count()
    }

    /// Takes in one message; appends what follows from it to `out`.
    pub fn push(&mut self, frame: Frame, token: T, now: Instant, out: &mut Vec<SeqEvent<T>>) {
        let window = self.window;
        let counts = &mut self.counts;
        let Some(d) = self.devices.get_mut(&frame.device) else {
            let device = frame.device.clone();
            let mut d = DeviceState {
                stream: frame.stream,
                last_seq: frame.seq,
                segment: None,
                held: BTreeMap::new(),
                last_seen: now,
            };
            release(&mut d, frame, token, false, out);
            self.devices.insert(device, d);
            return;
        };
        d.last_seen = now;
        if frame.stream != d.stream {
            // The device restarted its numbering: finish the old stream, begin the new.
            flush_held(d, counts, out);
            close(d, out);
            d.stream = frame.stream;
            d.last_seq = frame.seq;
            release(d, frame, token, false, out);
            return;
        }
        if frame.seq <= d.last_seq {
            if d.segment
                .as_ref()
                .is_some_and(|s| s.after_gap && frame.seq < s.key.first_seq)
            {
                out.push(SeqEvent::Late(token));
            } else {
                out.push(SeqEvent::Duplicate(token));
            }
            return;
        }
        if let Some(slot) = d.held.get_mut(&frame.seq) {
            // A redelivered copy of a held message: keep the newest token (the old one is stale).
            let old = std::mem::replace(&mut slot.1, token);
            out.push(SeqEvent::Duplicate(old));
            return;
        }
        if d.segment.is_none() && d.held.is_empty() {
            // The stream had expired: nothing to wait for, start afresh.
            let after_gap = frame.seq != d.last_seq + 1;
            if after_gap {
                counts.gaps += 1;
                counts.missing += frame.seq - d.last_seq - 1;
            }
            release(d, frame, token, after_gap, out);
            return;
        }
        if frame.seq == d.last_seq + 1 {
            release(d, frame, token, false, out);
            drain_consecutive(d, out);
            return;
        }
        d.held.insert(frame.seq, (frame, token));
        if d.held.len() > window {
            release_first_held_after_gap(d, counts, out);
            drain_consecutive(d, out);
        }
    }

    /// Closes the streams of devices silent since before `deadline` (held messages are released first).
    pub fn expire(&mut self, deadline: Instant, out: &mut Vec<SeqEvent<T>>) {
        for d in self.devices.values_mut() {
            if d.last_seen < deadline && (d.segment.is_some() || !d.held.is_empty()) {
                flush_held(d, &mut self.counts, out);
                close(d, out);
            }
        }
    }
}

/// Releases `frame` as the next of the device's open segment, starting one if needed.
fn release<T>(
    d: &mut DeviceState<T>,
    frame: Frame,
    token: T,
    after_gap: bool,
    out: &mut Vec<SeqEvent<T>>,
) {
    let needs_new = match &d.segment {
        None => true,
        Some(s) => s.fs != frame.fs || s.lead != frame.lead || after_gap,
    };
    if needs_new {
        close(d, out);
        let row = SegmentRow {
            key: SegmentKey {
                device: frame.device.clone(),
                stream: frame.stream,
                first_seq: frame.seq,
            },
            t0_us: frame.t0_us,
            fs: frame.fs,
            lead: frame.lead.clone(),
            after_gap,
        };
        out.push(SeqEvent::Start(row.clone()));
        d.segment = Some(row);
    }
    d.last_seq = frame.seq;
    let segment = d
        .segment
        .as_ref()
        .map(|s| s.key.clone())
        .unwrap_or_else(|| SegmentKey {
            device: frame.device.clone(),
            stream: frame.stream,
            first_seq: frame.seq,
        });
    let end = frame.end;
    out.push(SeqEvent::Frame {
        frame,
        token,
        segment,
    });
    if end {
        close(d, out);
    }
}

fn close<T>(d: &mut DeviceState<T>, out: &mut Vec<SeqEvent<T>>) {
    if let Some(s) = d.segment.take() {
        out.push(SeqEvent::Close(s.key));
    }
}

fn drain_consecutive<T>(d: &mut DeviceState<T>, out: &mut Vec<SeqEvent<T>>) {
    while let Some(entry) = d.held.first_entry() {
        if *entry.key() != d.last_seq + 1 {
            break;
        }
        let (frame, token) = entry.remove();
        release(d, frame, token, false, out);
    }
}

fn release_first_held_after_gap<T>(
    d: &mut DeviceState<T>,
    counts: &mut SeqCounts,
    out: &mut Vec<SeqEvent<T>>,
) {
    if let Some((seq, (frame, token))) = d.held.pop_first() {
        counts.gaps += 1;
        counts.missing += seq - d.last_seq - 1;
        release(d, frame, token, true, out);
    }
}

/// Releases every held message, declaring the gaps before them.
fn flush_held<T>(d: &mut DeviceState<T>, counts: &mut SeqCounts, out: &mut Vec<SeqEvent<T>>) {
    while !d.held.is_empty() {
        release_first_held_after_gap(d, counts, out);
        drain_consecutive(d, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(device: &str, stream: u32, seq: u64) -> Frame {
        Frame {
            device: device.into(),
            stream,
            seq,
            t0_us: seq as i64 * 1_000_000,
            fs: 360.0,
            lead: "MLII".into(),
            samples: vec![0.0; 360],
            scale: crate::formats::wire::Scale {
                gain: 1.0,
                baseline: 0.0,
            },
            end: false,
        }
    }

    /// Pushes `seqs` of device "a" and describes the events compactly.
    fn run(window: usize, seqs: &[(u32, u64)]) -> (Vec<String>, SeqCounts) {
        let mut s = Sequencer::new(window);
        let now = Instant::now();
        let mut out = Vec::new();
        for &(stream, seq) in seqs {
            s.push(frame("a", stream, seq), seq, now, &mut out);
        }
        let desc = out
            .iter()
            .map(|e| match e {
                SeqEvent::Start(r) => format!(
                    "start{}{}",
                    r.key.first_seq,
                    if r.after_gap { "g" } else { "" }
                ),
                SeqEvent::Frame { frame, .. } => format!("{}", frame.seq),
                SeqEvent::Close(k) => format!("close{}", k.first_seq),
                SeqEvent::Duplicate(t) => format!("dup{t}"),
                SeqEvent::Late(t) => format!("late{t}"),
            })
            .collect();
        (desc, s.counts())
    }

    #[test]
    fn in_order_stream_is_one_segment() {
        let (e, c) = run(4, &[(0, 5), (0, 6), (0, 7)]);
        assert_eq!(e, ["start5", "5", "6", "7"]);
        assert_eq!(c, SeqCounts::default());
    }

    #[test]
    fn duplicates_are_dropped() {
        let (e, _) = run(4, &[(0, 1), (0, 2), (0, 2), (0, 1), (0, 3)]);
        assert_eq!(e, ["start1", "1", "2", "dup2", "dup1", "3"]);
    }

    #[test]
    fn reordering_within_the_window_is_repaired() {
        let (e, c) = run(4, &[(0, 1), (0, 3), (0, 4), (0, 2), (0, 5)]);
        assert_eq!(e, ["start1", "1", "2", "3", "4", "5"]);
        assert_eq!(c.gaps, 0);
    }

    #[test]
    fn a_redelivered_held_message_keeps_the_new_token() {
        let (e, _) = run(4, &[(0, 1), (0, 3), (0, 3), (0, 2)]);
        assert_eq!(e, ["start1", "1", "dup3", "2", "3"]);
    }

    #[test]
    fn a_gap_starts_a_new_segment_once_the_window_overflows() {
        let (e, c) = run(2, &[(0, 1), (0, 4), (0, 5), (0, 6), (0, 2)]);
        assert_eq!(
            e,
            ["start1", "1", "close1", "start4g", "4", "5", "6", "late2"]
        );
        assert_eq!(
            c,
            SeqCounts {
                gaps: 1,
                missing: 2
            }
        );
    }

    #[test]
    fn a_new_stream_id_starts_a_new_segment() {
        let (e, _) = run(4, &[(0, 10), (0, 11), (1, 0), (1, 1)]);
        assert_eq!(e, ["start10", "10", "11", "close10", "start0", "0", "1"]);
    }

    #[test]
    fn a_rate_change_starts_a_new_segment() {
        let mut s = Sequencer::new(4);
        let now = Instant::now();
        let mut out = Vec::new();
        s.push(frame("a", 0, 1), (), now, &mut out);
        let mut f = frame("a", 0, 2);
        f.fs = 250.0;
        s.push(f, (), now, &mut out);
        let starts = out
            .iter()
            .filter(|e| matches!(e, SeqEvent::Start(_)))
            .count();
        assert_eq!(starts, 2);
        assert!(matches!(out[2], SeqEvent::Close(_)));
    }

    #[test]
    fn expiry_flushes_held_messages_and_closes() {
        let mut s = Sequencer::new(4);
        let t0 = Instant::now();
        let mut out = Vec::new();
        s.push(frame("a", 0, 1), 1, t0, &mut out);
        s.push(frame("a", 0, 3), 3, t0, &mut out);
        s.push(
            frame("b", 0, 1),
            1,
            t0 + std::time::Duration::from_secs(10),
            &mut out,
        );
        out.clear();
        s.expire(t0 + std::time::Duration::from_secs(5), &mut out);
        let kinds: Vec<_> = out
            .iter()
            .map(|e| match e {
                SeqEvent::Start(r) => format!("start{}", r.key.first_seq),
                SeqEvent::Frame { frame, .. } => format!("{}{}", frame.device, frame.seq),
                SeqEvent::Close(k) => format!("close{}{}", k.device, k.first_seq),
                _ => "?".into(),
            })
            .collect();
        assert_eq!(
            kinds,
            ["close a1", "start3", "a3", "close a3"].map(|s| s.replace(' ', ""))
        );
        assert_eq!(s.active(), 1);
        // After expiry the device's next message starts a new segment; old ones are duplicates.
        out.clear();
        s.push(frame("a", 0, 2), 2, t0, &mut out);
        s.push(frame("a", 0, 4), 4, t0, &mut out);
        assert!(matches!(out[0], SeqEvent::Duplicate(2)));
        assert!(matches!(&out[1], SeqEvent::Start(r) if r.key.first_seq == 4 && !r.after_gap));
    }

    #[test]
    fn restore_resumes_numbering() {
        let mut s = Sequencer::new(4);
        let row = SegmentRow {
            key: SegmentKey {
                device: "a".into(),
                stream: 0,
                first_seq: 1,
            },
            t0_us: 0,
            fs: 360.0,
            lead: "MLII".into(),
            after_gap: false,
        };
        s.restore(
            vec![StreamHead {
                segment: row,
                closed: false,
                last_seq: 7,
            }],
            Instant::now(),
        );
        let mut out = Vec::new();
        s.push(frame("a", 0, 7), 7, Instant::now(), &mut out);
        s.push(frame("a", 0, 8), 8, Instant::now(), &mut out);
        assert!(matches!(out[0], SeqEvent::Duplicate(7)));
        assert!(matches!(&out[1], SeqEvent::Frame { segment, .. } if segment.first_seq == 1));
    }
}
