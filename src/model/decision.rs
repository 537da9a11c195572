//! How a five-class model's probabilities, and the beat's patient context,
//! become the beat's class.
//!
//! Up to three steps, all chosen by leave-records-out cross-validation inside DS1
//! (`holterd eval cv`) and written in the model card:
//!
//! 1. the class maximising `w_N · p_N` against the other classes' `p`
//!    (`normal_weight`: a larger `w_N` flags fewer normal beats);
//! 2. optionally, the [`PrematureRule`]: a beat the network calls N or S (a
//!    supraventricular QRS) is S exactly when it came early against the
//!    patient's own rhythm, in a regular rhythm, with a QRS shape the patient
//!    commonly makes. Across patients, the networks learn S poorly (S beats
//!    are few, most in a handful of DS1 records, and look like the patient's
//!    normal beats); prematurity against the same patient's running mean RR
//!    is what defines them (AAMI EC57's SVEB: a supraventricular beat earlier
//!    than expected) and what carries over to new patients;
//! 3. optionally, the [`ClusterRule`]: a beat the network calls N or S whose
//!    shape cluster the patient makes early and whose shape is not the
//!    dominant one is V, before the premature rule is asked (the networks
//!    lean on prematurity and miss the late members of a PVC shape).

use super::rr::{RR_FEATURES, SIDE_FEATURES};
use crate::formats::wfdb::AamiClass;
use serde::{Deserialize, Serialize};

/// Side-feature indices of the patient context features the rule reads (see
/// [`crate::dsp::context`]).
const RR_TO_RECENT_MEAN: usize = RR_FEATURES;
const WARM_UP: usize = RR_FEATURES + 13;
const COMMON_SHAPE_CORRELATION: usize = RR_FEATURES + 14;
const RR_IRREGULARITY: usize = RR_FEATURES + 16;
const DOMINANT_CORRELATION: usize = RR_FEATURES + 5;
const WIDTH_TO_DOMINANT: usize = RR_FEATURES + 9;
const RR_TO_LAST_8: usize = RR_FEATURES + 15;
const RR_TO_RUN_BASE: usize = RR_FEATURES + 18;
const P_WAVE_DIFFERENCE: usize = RR_FEATURES + 19;
const CLUSTER_PREMATURITY: usize = RR_FEATURES + 20;
const CLUSTER_DOMINANT_CORRELATION: usize = RR_FEATURES + 21;
/// Side feature 0: RR before, seconds (see [`super::rr::features`]).
const RR_BEFORE_S: usize = 0;
/// RR (ms) under which a rhythm is fast (100 /min), when a rule gives none.
const DEFAULT_FAST_RR_MS: f32 = 600.0;
/// A V or F call is vetoed only for a QRS at most this much wider than the dominant one.
const VETO_MAX_WIDTH_RATIO: f32 = 1.25;

/// When a beat with a supraventricular QRS is an S beat.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrematureRule {
    /// S when RR before / the patient's recent mean RR is below this.
    pub max_rr_ratio: f32,
    /// ... and the rhythm's irregularity (median successive RR difference /
    /// mean RR, last 16 intervals) is below this: in atrial fibrillation every
    /// interval varies, and an early beat is not an S beat.
    pub max_irregularity: f32,
    /// ... and the QRS correlates at least this well with a common shape of
    /// the patient's.
    pub min_correlation: f32,
    /// ... and the context has learned at least this share of its warm-up (0–1).
    pub min_warm_up: f32,
    /// A V or F call whose QRS correlates at least this well with the
    /// dominant beat (and is at most 1.25 × as wide) is a supraventricular
    /// QRS after all, decided N or S by the rule above; `None`: no veto.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub veto_correlation: Option<f32>,
    /// ... and, when set, RR before / the mean of the last 8 intervals is
    /// below this (for the later beats of a run of early beats, that mean as
    /// it stood before the run: context feature 18), or the rhythm is fast
    /// (RR before under [`Self::fast_rr_ms`]). A beat early against the last
    /// minutes but not against the last few seconds, and not in a run that
    /// started abruptly, belongs to a gradual change of rate (a sinus rate
    /// rising), not to an ectopic beat; a run that is fast stays S
    /// (supraventricular tachycardia).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_local_ratio: Option<f32>,
    /// The RR interval (ms) below which a beat counts as fast for
    /// [`Self::max_local_ratio`] (600 ms: 100 /min, the tachycardia limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_rr_ms: Option<f32>,
    /// When set, a fast beat is S through [`Self::fast_rr_ms`] only when it is
    /// also this early against the recent mean RR. A supraventricular
    /// tachycardia starts abruptly, far faster than the minutes before it; a
    /// sinus rate rising gradually (exercise) stays within a moderate ratio of
    /// its lagging recent mean and is not a run of S beats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_max_ratio: Option<f32>,
    /// When set, a later beat of a run (early only against the rhythm before
    /// the run, context feature 18) is S only when its P wave differs at
    /// least this much from the patient's usual one (context feature 19): an
    /// atrial run has an ectopic P wave; an AV block returning from 2:1 to
    /// 1:1 conduction keeps the sinus P wave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_run_p_difference: Option<f32>,
}

impl PrematureRule {
    /// Whether a beat with these side features is premature, in a regular
    /// rhythm, with a common QRS shape.
    pub fn holds(&self, side: &[f32; SIDE_FEATURES]) -> bool {
        side[RR_TO_RECENT_MEAN] < self.max_rr_ratio
            && side[RR_IRREGULARITY] < self.max_irregularity
            && side[COMMON_SHAPE_CORRELATION] >= self.min_correlation
            && side[WARM_UP] >= self.min_warm_up
            && self.max_local_ratio.is_none_or(|r| {
                side[RR_TO_LAST_8] < r
                    || (side[RR_TO_RUN_BASE] < r
                        && self
                            .min_run_p_difference
                            .is_none_or(|p| side[P_WAVE_DIFFERENCE] >= p))
                    || (1000.0 * side[RR_BEFORE_S] < self.fast_rr_ms.unwrap_or(DEFAULT_FAST_RR_MS)
                        && self
                            .fast_max_ratio
                            .is_none_or(|f| side[RR_TO_RECENT_MEAN] < f))
            })
    }

    /// Whether a V or F call on a beat with these side features is vetoed:
    /// its QRS is the dominant one's in shape and width.
    pub fn vetoes(&self, side: &[f32; SIDE_FEATURES]) -> bool {
        self.veto_correlation.is_some_and(|r| {
            side[DOMINANT_CORRELATION] >= r
                && side[WIDTH_TO_DOMINANT] <= VETO_MAX_WIDTH_RATIO
                && side[WARM_UP] >= self.min_warm_up
        })
    }
}

/// The colon-separated numbers of a `kind` rule, all finite.
fn rule_numbers(kind: &str, s: &str) -> Result<Vec<f32>, String> {
    let v: Vec<f32> = s
        .split(':')
        .map(|x| x.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{kind} rule {s:?}: {e}"))?;
    match v.iter().find(|x| !x.is_finite()) {
        Some(x) => Err(format!("{kind} rule {s:?}: {x} is not a finite number")),
        None => Ok(v),
    }
}

impl std::str::FromStr for PrematureRule {
    type Err = String;

    /// `RATIO:IRREGULARITY:CORRELATION:WARMUP[:VETO[:LOCAL:FAST_MS[:FAST_RATIO[:RUN_P]]]]`,
    /// e.g. `0.8:0.1:0.9:0.5` or `0.8:0.1:0.9:0.5:0.97:0.85:600:0.6`.
    fn from_str(s: &str) -> Result<Self, String> {
        let v = rule_numbers("premature", s)?;
        match v[..] {
            [
                max_rr_ratio,
                max_irregularity,
                min_correlation,
                min_warm_up,
                ..,
            ] if matches!(v.len(), 4 | 5 | 7 | 8 | 9) => Ok(PrematureRule {
                max_rr_ratio,
                max_irregularity,
                min_correlation,
                min_warm_up,
                veto_correlation: v.get(4).copied(),
                max_local_ratio: v.get(5).copied(),
                fast_rr_ms: v.get(6).copied(),
                fast_max_ratio: v.get(7).copied(),
                min_run_p_difference: v.get(8).copied(),
            }),
            _ => Err(format!(
                "premature rule {s:?}: expected four, five, seven, eight or nine numbers RATIO:IRREGULARITY:CORRELATION:WARMUP[:VETO[:LOCAL:FAST_MS[:FAST_RATIO[:RUN_P]]]], e.g. 0.8:0.1:0.9:0.5"
            )),
        }
    }
}

impl std::fmt::Display for PrematureRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.max_rr_ratio, self.max_irregularity, self.min_correlation, self.min_warm_up
        )?;
        if let Some(v) = self.veto_correlation {
            write!(f, ":{v}")?;
        }
        match (self.max_local_ratio, self.fast_rr_ms) {
            (Some(local), fast) => {
                write!(f, ":{local}:{}", fast.unwrap_or(DEFAULT_FAST_RR_MS))?;
                match (self.fast_max_ratio, self.min_run_p_difference) {
                    (Some(r), None) => write!(f, ":{r}"),
                    // No fast ratio: any ratio, which the context clamps below 1000.
                    (r, Some(p)) => write!(f, ":{}:{p}", r.unwrap_or(1000.0)),
                    (None, None) => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}

/// When a beat the network calls N or S is V after all: it matches a shape
/// cluster of the patient's whose members come early on average (context
/// feature 20) and whose shape differs from the dominant beat's (feature 21).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClusterRule {
    /// V when the cluster's mean RR before / recent mean RR is below this ...
    pub max_cluster_ratio: f32,
    /// ... and its shape's QRS correlation with the dominant beat is below this.
    pub max_dominant_correlation: f32,
}

/// The context must have learned this share of its warm-up before the
/// cluster rule is applied (as the premature rules that ship require).
const CLUSTER_MIN_WARM_UP: f32 = 0.5;

impl ClusterRule {
    /// Whether a beat with these side features belongs to an ectopic cluster.
    pub fn holds(&self, side: &[f32; SIDE_FEATURES]) -> bool {
        side[CLUSTER_PREMATURITY] < self.max_cluster_ratio
            && side[CLUSTER_DOMINANT_CORRELATION] < self.max_dominant_correlation
            && side[WARM_UP] >= CLUSTER_MIN_WARM_UP
    }
}

impl std::str::FromStr for ClusterRule {
    type Err = String;

    /// `RATIO:CORRELATION`, e.g. `0.9:0.8`.
    fn from_str(s: &str) -> Result<Self, String> {
        match rule_numbers("cluster", s)?[..] {
            [max_cluster_ratio, max_dominant_correlation] => Ok(ClusterRule {
                max_cluster_ratio,
                max_dominant_correlation,
            }),
            _ => Err(format!(
                "cluster rule {s:?}: expected two numbers RATIO:CORRELATION, e.g. 0.9:0.8"
            )),
        }
    }
}

impl std::fmt::Display for ClusterRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}",
            self.max_cluster_ratio, self.max_dominant_correlation
        )
    }
}

/// The whole decision: the normal weight and the optional premature and
/// cluster rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecisionRule {
    /// Weight of N's probability.
    pub normal_weight: f32,
    /// The S rule, if any.
    pub premature: Option<PrematureRule>,
    /// The V rule for beats of an ectopic cluster, if any.
    pub cluster: Option<ClusterRule>,
}

impl DecisionRule {
    /// The class of a beat with five-class probabilities `q` and, for the
    /// premature rule, its side features.
    pub fn decide(&self, q: &[f32], side: Option<&[f32; SIDE_FEATURES]>) -> AamiClass {
        let class = weighted_argmax(q, self.normal_weight);
        if let (Some(rule), Some(side)) = (self.cluster, side)
            && matches!(class, AamiClass::N | AamiClass::S)
            && rule.holds(side)
        {
            return AamiClass::V;
        }
        match (self.premature, side) {
            (Some(rule), Some(side))
                if matches!(class, AamiClass::N | AamiClass::S)
                    || (matches!(class, AamiClass::V | AamiClass::F) && rule.vetoes(side)) =>
            {
                if rule.holds(side) {
                    AamiClass::S
                } else {
                    AamiClass::N
                }
            }
            _ => class,
        }
    }
}

/// The class with the largest probability, N's weighted by `normal_weight`.
pub fn weighted_argmax(q: &[f32], normal_weight: f32) -> AamiClass {
    let mut best = (
        0,
        q.first().map_or(f32::NEG_INFINITY, |p| p * normal_weight),
    );
    for (i, &p) in q.iter().enumerate().skip(1) {
        if p > best.1 {
            best = (i, p);
        }
    }
    AamiClass::ALL.get(best.0).copied().unwrap_or(AamiClass::N)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(ratio: f32, irregularity: f32, correlation: f32) -> [f32; SIDE_FEATURES] {
        let mut s = [1.0f32; SIDE_FEATURES];
        s[RR_TO_RECENT_MEAN] = ratio;
        s[RR_IRREGULARITY] = irregularity;
        s[COMMON_SHAPE_CORRELATION] = correlation;
        s
    }

    #[test]
    fn the_normal_weight_moves_only_close_calls() {
        let q = [0.3, 0.5, 0.1, 0.05, 0.05];
        assert_eq!(weighted_argmax(&q, 1.0), AamiClass::S);
        assert_eq!(weighted_argmax(&q, 2.0), AamiClass::N);
        assert_eq!(
            weighted_argmax(&[0.05, 0.0, 0.95, 0.0, 0.0], 8.0),
            AamiClass::V
        );
    }

    #[test]
    fn the_cluster_rule_turns_n_and_s_calls_of_an_ectopic_cluster_into_v() {
        let rule = DecisionRule {
            normal_weight: 1.0,
            premature: None,
            cluster: "0.9:0.8".parse().ok(),
        };
        let mut ectopic = [1.0f32; SIDE_FEATURES];
        ectopic[CLUSTER_PREMATURITY] = 0.7;
        ectopic[CLUSTER_DOMINANT_CORRELATION] = 0.2;
        let normal = [0.9, 0.05, 0.05, 0.0, 0.0];
        let s_call = [0.2, 0.7, 0.1, 0.0, 0.0];
        let f_call = [0.2, 0.0, 0.1, 0.7, 0.0];
        assert_eq!(rule.decide(&normal, Some(&ectopic)), AamiClass::V);
        assert_eq!(rule.decide(&s_call, Some(&ectopic)), AamiClass::V);
        // The network's F and Q calls stand.
        assert_eq!(rule.decide(&f_call, Some(&ectopic)), AamiClass::F);
        // A cluster that comes on time, or looks like the dominant beat, or
        // an unwarmed context: the network's call.
        let mut on_time = ectopic;
        on_time[CLUSTER_PREMATURITY] = 0.95;
        let mut alike = ectopic;
        alike[CLUSTER_DOMINANT_CORRELATION] = 0.85;
        let mut cold = ectopic;
        cold[WARM_UP] = 0.1;
        for side in [on_time, alike, cold] {
            assert_eq!(rule.decide(&normal, Some(&side)), AamiClass::N);
        }
        assert_eq!(
            "0.9:0.8".parse::<ClusterRule>().map(|r| r.to_string()),
            Ok("0.9:0.8".into())
        );
        assert!("0.9".parse::<ClusterRule>().is_err());
        assert!("0.9:x".parse::<ClusterRule>().is_err());
        assert!("0.9:inf".parse::<ClusterRule>().is_err());
    }

    #[test]
    fn the_premature_rule_decides_between_n_and_s_only() {
        let rule = DecisionRule {
            normal_weight: 1.0,
            premature: "0.8:0.1:0.9:0.5".parse().ok(),
            cluster: None,
        };
        let normal = [0.9, 0.05, 0.05, 0.0, 0.0];
        let s_call = [0.2, 0.7, 0.1, 0.0, 0.0];
        let v_call = [0.1, 0.1, 0.8, 0.0, 0.0];
        // Early, regular, common shape: S whatever N/S the network said.
        assert_eq!(
            rule.decide(&normal, Some(&side(0.7, 0.02, 0.98))),
            AamiClass::S
        );
        // On time: N, even when the network said S.
        assert_eq!(
            rule.decide(&s_call, Some(&side(0.95, 0.02, 0.98))),
            AamiClass::N
        );
        // Early in an irregular rhythm (atrial fibrillation): N.
        assert_eq!(
            rule.decide(&normal, Some(&side(0.7, 0.3, 0.98))),
            AamiClass::N
        );
        // Early with an uncommon shape: not this rule's S.
        assert_eq!(
            rule.decide(&normal, Some(&side(0.7, 0.02, 0.5))),
            AamiClass::N
        );
        // A V call is the network's.
        assert_eq!(
            rule.decide(&v_call, Some(&side(0.7, 0.02, 0.98))),
            AamiClass::V
        );
        // A V call on the dominant QRS is vetoed only when the rule says so.
        let veto = DecisionRule {
            normal_weight: 1.0,
            premature: "0.8:0.1:0.9:0.5:0.97".parse().ok(),
            cluster: None,
        };
        let mut dominant = side(0.95, 0.02, 0.99);
        dominant[DOMINANT_CORRELATION] = 0.99;
        dominant[WIDTH_TO_DOMINANT] = 1.0;
        assert_eq!(rule.decide(&v_call, Some(&dominant)), AamiClass::V);
        assert_eq!(veto.decide(&v_call, Some(&dominant)), AamiClass::N);
        dominant[WIDTH_TO_DOMINANT] = 1.6;
        assert_eq!(veto.decide(&v_call, Some(&dominant)), AamiClass::V);
        // Without side features, the network's call.
        assert_eq!(rule.decide(&s_call, None), AamiClass::S);
        let mut cold = side(0.7, 0.02, 0.98);
        cold[WARM_UP] = 0.1;
        assert_eq!(rule.decide(&normal, Some(&cold)), AamiClass::N);
    }

    #[test]
    fn the_local_clause_keeps_ectopic_and_fast_beats_and_drops_rate_changes() {
        let rule: PrematureRule = "0.8:0.1:0.9:0.5:0.97:0.85:600".parse().unwrap();
        let plain: PrematureRule = "0.8:0.1:0.9:0.5:0.97".parse().unwrap();
        // Early against the minutes before and the last 8 beats: an ectopic beat.
        let mut ectopic = side(0.7, 0.02, 0.98);
        ectopic[RR_TO_LAST_8] = 0.7;
        ectopic[RR_TO_RUN_BASE] = 0.7;
        ectopic[RR_BEFORE_S] = 0.7;
        assert!(rule.holds(&ectopic) && plain.holds(&ectopic));
        // The same, 8 beats into a slow new rhythm (an AV block going from 2:1
        // to 1:1 conduction): no longer early against the last 8, so N.
        let mut rate_change = ectopic;
        rate_change[RR_TO_LAST_8] = 0.98;
        rate_change[RR_TO_RUN_BASE] = 0.98;
        assert!(!rule.holds(&rate_change));
        assert!(plain.holds(&rate_change));
        // Inside a fast run (RR 450 ms, 133 /min): still S.
        let mut fast_run = rate_change;
        fast_run[RR_BEFORE_S] = 0.45;
        assert!(rule.holds(&fast_run));
        // The clause only narrows the rule: never S where the plain rule says N.
        let mut on_time = fast_run;
        on_time[RR_TO_RECENT_MEAN] = 0.95;
        assert!(!rule.holds(&on_time));
    }

    #[test]
    fn a_fast_beat_is_s_only_when_far_earlier_than_the_recent_rhythm() {
        let rule: PrematureRule = "0.85:0.1:0.9:0.5:0.97:0.85:600:0.6".parse().unwrap();
        let mut fast = side(0.5, 0.02, 0.98);
        fast[RR_TO_LAST_8] = 1.0;
        fast[RR_TO_RUN_BASE] = 1.0;
        fast[RR_BEFORE_S] = 0.4;
        // A tachycardia at 150 /min after 75 /min: half the recent mean RR.
        assert!(rule.holds(&fast));
        // A sinus rate risen gradually to 125 /min, its recent mean lagging
        // at 95 /min: early against it (0.76), fast, but no S beat.
        let mut sinus = fast;
        sinus[RR_TO_RECENT_MEAN] = 0.76;
        sinus[RR_BEFORE_S] = 0.48;
        assert!(!rule.holds(&sinus));
        // Without the eighth number the fast clause takes it (the older rule).
        let older: PrematureRule = "0.85:0.1:0.9:0.5:0.97:0.85:600".parse().unwrap();
        assert!(older.holds(&sinus));
        // An abrupt ectopic beat needs no fast clause.
        let mut ectopic = sinus;
        ectopic[RR_TO_LAST_8] = 0.76;
        ectopic[RR_TO_RUN_BASE] = 0.76;
        assert!(rule.holds(&ectopic));
    }

    #[test]
    fn a_run_is_s_only_with_another_p_wave_when_the_rule_asks() {
        let plain: PrematureRule = "0.85:0.1:0.9:0.5:0.97:0.85:600:0.6".parse().unwrap();
        let rule: PrematureRule = "0.85:0.1:0.9:0.5:0.97:0.85:600:0.6:0.05".parse().unwrap();
        // The fifth beat of a run at 80 /min after 50 /min: early against the
        // rhythm before the run (18), not against the last 8 (15), not fast.
        let mut run = side(0.75, 0.02, 0.98);
        run[RR_BEFORE_S] = 0.75;
        run[RR_TO_LAST_8] = 1.0;
        run[RR_TO_RUN_BASE] = 0.62;
        // The sinus P wave of the beats before it: conduction, not an atrial run.
        run[P_WAVE_DIFFERENCE] = 0.01;
        assert!(plain.holds(&run));
        assert!(!rule.holds(&run));
        // An ectopic P wave: an atrial run.
        run[P_WAVE_DIFFERENCE] = 0.08;
        assert!(rule.holds(&run));
        // The run's first beat is early against the last 8 too: S whatever its P wave.
        let mut onset = run;
        onset[RR_TO_LAST_8] = 0.62;
        onset[P_WAVE_DIFFERENCE] = 0.0;
        assert!(rule.holds(&onset));
    }

    #[test]
    fn rules_parse_print_and_refuse() {
        let r: PrematureRule = "0.8:0.1:0.9:0.5".parse().unwrap();
        assert_eq!(r.to_string().parse::<PrematureRule>().unwrap(), r);
        let v: PrematureRule = "0.8:0.1:0.9:0.5:0.97".parse().unwrap();
        assert_eq!(v.veto_correlation, Some(0.97));
        assert_eq!(v.to_string(), "0.8:0.1:0.9:0.5:0.97");
        let l: PrematureRule = "0.8:0.1:0.9:0.5:0.97:0.85:600".parse().unwrap();
        assert_eq!((l.max_local_ratio, l.fast_rr_ms), (Some(0.85), Some(600.0)));
        assert_eq!(l.to_string(), "0.8:0.1:0.9:0.5:0.97:0.85:600");
        let f: PrematureRule = "0.8:0.1:0.9:0.5:0.97:0.85:600:0.6".parse().unwrap();
        assert_eq!(f.fast_max_ratio, Some(0.6));
        assert_eq!(f.to_string(), "0.8:0.1:0.9:0.5:0.97:0.85:600:0.6");
        let p: PrematureRule = "0.8:0.1:0.9:0.5:0.97:0.85:600:0.6:0.05".parse().unwrap();
        assert_eq!(p.min_run_p_difference, Some(0.05));
        assert_eq!(p.to_string().parse::<PrematureRule>().unwrap(), p);
        for bad in [
            "0.8",
            "a:b:c:d",
            "0.8:0.1:0.9:NaN",
            "1:2:3:4:5:6",
            "1:2:3:4:5:6:7:8:9:10",
        ] {
            assert!(bad.parse::<PrematureRule>().is_err(), "{bad}");
        }
    }
}
