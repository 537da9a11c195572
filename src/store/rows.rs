//! The rows the stores keep and return: segments, raw chunks, beats and their
//! rollups, uploads, and the queries that select them.

use super::StoreError;
use crate::dsp::Quality;
use crate::formats::wfdb::AamiClass;

/// A segment: consecutive messages of one device stream analysed by one extractor.
/// It starts at the stream's first message, after a gap, or after the stream expired.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SegmentKey {
    pub device: String,
    pub stream: u32,
    /// Sequence number of the segment's first message.
    pub first_seq: u64,
}

/// A segment's description.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRow {
    pub key: SegmentKey,
    /// Time of the segment's first sample, µs since the Unix epoch; beat times count from it.
    pub t0_us: i64,
    pub fs: f64,
    pub lead: String,
    /// Messages were missing just before this segment.
    pub after_gap: bool,
}

/// One stored message of raw signal.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRow {
    pub segment: SegmentKey,
    pub seq: u64,
    pub t0_us: i64,
    pub fs: f64,
    pub received_us: i64,
    /// Samples, mV.
    pub samples: Vec<f32>,
    /// The device's counts-to-mV scale, when the samples came as counts: the
    /// store then keeps the counts ([`super::signal`]). Read back, it is set
    /// exactly when the chunk was stored as counts.
    pub scale: Option<crate::formats::wire::Scale>,
}

/// What the daemon concluded about a beat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Normal,
    Abnormal,
    /// The quality gate refused it (flat, clipped, lead-off, noisy): not classified.
    Unreadable,
}

impl Verdict {
    pub const ALL: [Verdict; 3] = [Verdict::Normal, Verdict::Abnormal, Verdict::Unreadable];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Normal => "normal",
            Verdict::Abnormal => "abnormal",
            Verdict::Unreadable => "unreadable",
        }
    }

    pub fn parse(s: &str) -> Result<Verdict, StoreError> {
        Verdict::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("verdict {s:?}")))
    }
}

pub(crate) fn parse_quality(s: &str) -> Result<Quality, StoreError> {
    Quality::parse(s).ok_or_else(|| StoreError::Corrupt(format!("quality {s:?}")))
}

/// A stored class letter (`NULL`: no class).
pub(crate) fn parse_class(s: Option<&str>) -> Result<Option<AamiClass>, StoreError> {
    s.map(|s| {
        let mut c = s.chars();
        match (c.next().and_then(AamiClass::from_letter), c.next()) {
            (Some(class), None) => Ok(class),
            _ => Err(StoreError::Corrupt(format!("class {s:?}"))),
        }
    })
    .transpose()
}

/// Class probabilities as stored: five f32 little-endian.
pub(crate) fn class_probs_bytes(p: Option<[f32; 5]>) -> Option<Vec<u8>> {
    p.map(|p| f32_bytes(&p))
}

/// The inverse of [`class_probs_bytes`].
pub(crate) fn parse_class_probs(b: Option<&[u8]>) -> Result<Option<[f32; 5]>, StoreError> {
    b.map(|b| {
        <[f32; 5]>::try_from(bytes_f32(b)?)
            .map_err(|v| StoreError::Corrupt(format!("{} class probabilities, not 5", v.len())))
    })
    .transpose()
}

/// One classified beat.
#[derive(Debug, Clone, PartialEq)]
pub struct BeatRow {
    pub segment: SegmentKey,
    /// R-peak time, µs since the Unix epoch.
    pub r_time_us: i64,
    /// R-peak index within the segment (input rate).
    pub sample: u64,
    pub rr_prev_ms: Option<f32>,
    pub rr_next_ms: Option<f32>,
    pub quality: Quality,
    pub searchback: bool,
    pub verdict: Verdict,
    /// Probability of "abnormal"; `None` for unreadable beats.
    pub p_abnormal: Option<f32>,
    /// AAMI class the model gave (`None`: unreadable, or a binary model).
    pub class: Option<crate::formats::wfdb::AamiClass>,
    /// Probabilities of N, S, V, F, Q (`None`: unreadable, or a binary model).
    pub class_probs: Option<[f32; 5]>,
    pub model: String,
    pub model_version: String,
    /// The 187-sample beat vector.
    pub values: Vec<f32>,
}

/// What one [`super::Store::compact_signal`] call packed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Compaction {
    pub chunks: u64,
    pub blocks: u64,
    /// Bytes of the chunks' stored samples, and of the blocks that replaced them.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The last device of this call; `None` when there are no more.
    pub last_device: Option<String>,
}

/// What one [`super::Store::compact_beats`] call packed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BeatCompaction {
    pub beats: u64,
    pub blocks: u64,
    /// Bytes of the blocks written.
    pub bytes_out: u64,
    /// The last device of this call; `None` when there are no more.
    pub last_device: Option<String>,
}

/// Where a device's stream stands, to resume sequencing after a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamHead {
    pub segment: SegmentRow,
    pub closed: bool,
    /// Highest stored sequence number of the segment.
    pub last_seq: u64,
}

/// A beat search: one device, a time range, optional verdict, class and minimum probability.
#[derive(Debug, Clone)]
pub struct BeatQuery {
    pub device: String,
    pub from_us: i64,
    pub to_us: i64,
    pub verdict: Option<Verdict>,
    /// Only beats of this AAMI class.
    pub class: Option<AamiClass>,
    pub min_p_abnormal: Option<f32>,
    pub limit: u32,
    pub offset: u64,
}

impl BeatQuery {
    /// Every beat of `device`, oldest first (up to `limit`).
    pub fn all(device: &str, limit: u32) -> Self {
        BeatQuery {
            device: device.to_string(),
            from_us: i64::MIN,
            to_us: i64::MAX,
            verdict: None,
            class: None,
            min_p_abnormal: None,
            limit,
            offset: 0,
        }
    }
}

/// A beat without its waveform: enough to list, count and mark it.
#[derive(Debug, Clone, PartialEq)]
pub struct BeatMark {
    pub r_time_us: i64,
    pub rr_prev_ms: Option<f32>,
    pub quality: Quality,
    pub verdict: Verdict,
    pub p_abnormal: Option<f32>,
    pub class: Option<AamiClass>,
    pub model: String,
}

/// A flagged (abnormal) beat as the flagged-beat index holds it: enough to
/// follow runs of consecutive abnormal beats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlaggedLink {
    pub r_time_us: i64,
    /// RR interval to the previous detected beat (any verdict) of its segment.
    pub rr_prev_ms: Option<f32>,
    pub class: Option<AamiClass>,
}

/// Beats by AAMI class (beats without a class are in none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClassCounts {
    /// Counts of N, S, V, F and Q, in [`AamiClass::ALL`] order.
    pub counts: [i64; 5],
}

impl ClassCounts {
    /// Beats of `class`.
    pub fn get(&self, class: AamiClass) -> i64 {
        self.counts[class.index()]
    }

    /// Beats with a class.
    pub fn classified(&self) -> i64 {
        self.counts.iter().sum()
    }

    /// Adds `o` to these counts.
    pub fn add(&mut self, o: &ClassCounts) {
        for (a, b) in self.counts.iter_mut().zip(o.counts) {
            *a += b;
        }
    }
}

/// Beats by verdict (normal = beats − abnormal − unreadable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerdictCounts {
    pub beats: i64,
    pub abnormal: i64,
    pub unreadable: i64,
}

impl VerdictCounts {
    pub fn normal(&self) -> i64 {
        self.beats - self.abnormal - self.unreadable
    }

    pub fn add(&mut self, o: &VerdictCounts) {
        self.beats += o.beats;
        self.abnormal += o.abnormal;
        self.unreadable += o.unreadable;
    }
}

/// One device-minute of the beat rollup.
#[derive(Debug, Clone, PartialEq)]
pub struct MinuteRow {
    /// Minutes since the Unix epoch.
    pub minute: i64,
    pub counts: VerdictCounts,
    /// Beats by AAMI class (zero for beats of binary models).
    pub classes: ClassCounts,
    /// Readable beats with a previous RR interval, and their sum (for the mean heart rate).
    pub rr_n: i64,
    pub rr_sum_ms: f64,
    /// Longest RR interval of a readable beat in the minute.
    pub rr_max_ms: Option<f32>,
}

/// A device with its beats since a given minute.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRow {
    pub device: String,
    pub first_seen_us: i64,
    pub last_seen_us: i64,
    pub since: VerdictCounts,
    /// The latest minute with beats, and its mean RR interval.
    pub last_minute: Option<i64>,
    pub last_minute_rr_ms: Option<f64>,
}

/// An uploaded file of beats.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadRow {
    /// Random hex identifier.
    pub id: String,
    pub filename: String,
    pub uploaded_by: String,
    pub created_us: i64,
    pub model: String,
    pub model_version: String,
    pub beats: i64,
    /// The file had a label column.
    pub labelled: bool,
    /// Metrics against the labels (JSON) when labelled.
    pub evaluation: Option<String>,
}

/// One beat of an uploaded file.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadBeatRow {
    /// Row in the file, from 0.
    pub row_index: i64,
    /// The file's label (0 = normal), if it had labels.
    pub label: Option<i64>,
    pub verdict: Verdict,
    pub p_abnormal: Option<f32>,
    /// AAMI class the model gave (`None`: unreadable, or a binary model).
    pub class: Option<AamiClass>,
    /// Probabilities of N, S, V, F, Q (`None`: unreadable, or a binary model).
    pub class_probs: Option<[f32; 5]>,
    pub values: Vec<f32>,
}

/// f32 values as little-endian bytes (how samples and beats are stored).
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The inverse of [`f32_bytes`].
pub fn bytes_f32(bytes: &[u8]) -> Result<Vec<f32>, StoreError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(StoreError::Corrupt(format!(
            "{} bytes is not a whole number of f32 values",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// A stored rhythm episode of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeRow {
    pub device: String,
    pub episode: crate::rhythm::Episode,
    /// Still under way: its end is where it stood at the last write.
    pub ongoing: bool,
    /// The analyser version and the beat model whose classes it read.
    pub analyser: String,
}

/// Episodes of one device overlapping `[from_us, to_us)`, of one kind or all.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeQuery {
    pub device: String,
    pub from_us: i64,
    pub to_us: i64,
    pub kind: Option<crate::rhythm::EpisodeKind>,
    pub limit: u32,
}
