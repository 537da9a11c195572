//! Scoring the beat extractor against reference annotations: beat-by-beat
//! matching per ANSI/AAMI EC57, rhythm episodes as EC57 and `epic` score
//! them, the noise stress test, and a runner that streams whole databases
//! through the extractor.

mod detection;
mod ec57;
mod noise;
mod rhythm;
mod runner;

pub use detection::{
    Comparison, DetectionScore, MATCH_WINDOW_S, compare_detections, match_beats, score_detections,
    vf_episodes,
};
pub use ec57::{AlgorithmLabel, Confusion, Ec57Report, Ec57Stats, RecordScore, score_record};
pub use noise::{NoiseKind, add_noise, in_noisy_segment};
pub use rhythm::{
    EpisodeSource, EpisodeStats, ListedEpisode, RhythmRecordScore, RhythmReport, ScoredRhythm,
    Span, list_episodes, reference_spans, score_rhythms, vf_spans, without_pauses_in_vf,
};
pub use runner::{
    AnnotatedSignal, DetectEvalOptions, EvalError, RecordResult, eval_record, read_annotated,
};
