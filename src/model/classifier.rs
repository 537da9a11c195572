//! A ready-to-use beat classifier: one shipped model, or an ensemble of several
//! whose probabilities are averaged (the seed paper's ensemble). The daemon, the
//! offline `analyze` command and `eval classify` all classify through it.
//!
//! On the CPU it computes with [`super::cpu`] (several times faster than
//! candle's kernels on these small networks); on a GPU, with candle.

use super::card::{LoadedModel, load_model};
use super::cpu::CpuNetwork;
use super::params::ModelError;
use super::rr::SIDE_FEATURES;
use super::train::predict_probabilities;
use crate::dsp::BEAT_LEN;
use crate::formats::wfdb::AamiClass;
use candle_core::Device;
use std::path::Path;

/// One or more loaded models and the identity stored with their verdicts.
pub struct Classifier {
    members: Vec<LoadedModel>,
    /// The members in CPU form, when loaded on the CPU.
    cpu: Option<Vec<CpuNetwork>>,
    name: String,
    version: String,
}

impl Classifier {
    /// Loads the model directories `dirs` (more than one makes an ensemble) onto `device`.
    pub fn load(dirs: &[impl AsRef<Path>], device: &Device) -> Result<Classifier, ModelError> {
        if dirs.is_empty() {
            return Err(ModelError::Device("no model directory given".into()));
        }
        let mut members = Vec::new();
        let mut hash = Fnv1a::default();
        for dir in dirs {
            let dir = &super::locate(dir.as_ref());
            members.push(load_model(dir, device)?);
            let weights = dir.join("weights.safetensors");
            let bytes = std::fs::read(&weights).map_err(|e| ModelError::Weights {
                path: weights.display().to_string(),
                message: e.to_string(),
            })?;
            hash.write(&bytes);
        }
        let cpu = if device.is_cpu() {
            let nets = members
                .iter()
                .map(|m| CpuNetwork::from_network(&m.network, &m.params))
                .collect::<Result<Option<Vec<_>>, _>>()?;
            // A member without a CPU form puts the whole ensemble on candle.
            nets
        } else {
            None
        };
        let names: Vec<&str> = members.iter().map(|m| m.card.name.as_str()).collect();
        let name = if names.len() == 1 {
            names[0].to_string()
        } else {
            format!("ensemble({})", names.join("+"))
        };
        Ok(Classifier {
            members,
            cpu,
            name,
            version: format!("{:016x}", hash.0),
        })
    }

    /// Model name: the directory's, or `ensemble(a+b)`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Hash of the weights, so that stored verdicts say exactly which weights made them.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Why `beat` gets no verdict: the first shape feature outside some
    /// member's training range (see [`super::profile`]), or `None` when every
    /// member has seen beats like it. Members without a profile accept anything.
    pub fn out_of_distribution(&self, beat: &[f32; BEAT_LEN]) -> Option<(&'static str, f64)> {
        self.members
            .iter()
            .filter_map(|m| m.card.input_profile.as_ref())
            .find_map(|p| p.outlier(beat))
    }

    /// The loaded members.
    pub fn members(&self) -> &[LoadedModel] {
        &self.members
    }

    /// True when some member needs the beats' RR intervals (see [`super::rr`]).
    pub fn needs_rr(&self) -> bool {
        self.members.iter().any(|m| m.network.rr_features() > 0)
    }

    /// True when every member gives the five AAMI classes, so the ensemble does.
    pub fn five_class(&self) -> bool {
        self.members
            .iter()
            .all(|m| m.network.classes() == AamiClass::ALL.len())
    }

    /// Class probabilities of each beat `idx` of `beats` (with their side
    /// features, needed when [`needs_rr`](Self::needs_rr)), averaged over the
    /// members, in batches of `batch`: five per beat (N, S, V, F, Q) when
    /// [`five_class`](Self::five_class), else two (normal, abnormal; a
    /// five-class member counts every class but N as abnormal).
    pub fn probabilities_of(
        &self,
        beats: &[[f32; BEAT_LEN]],
        rr: Option<&[[f32; SIDE_FEATURES]]>,
        idx: &[usize],
        batch: usize,
    ) -> Result<Vec<f32>, ModelError> {
        self.probabilities_on(self.cpu.as_deref(), beats, rr, idx, batch)
    }

    /// [`probabilities_of`](Self::probabilities_of) on the CPU path `cpu`, or candle when `None`.
    fn probabilities_on(
        &self,
        cpu: Option<&[CpuNetwork]>,
        beats: &[[f32; BEAT_LEN]],
        rr: Option<&[[f32; SIDE_FEATURES]]>,
        idx: &[usize],
        batch: usize,
    ) -> Result<Vec<f32>, ModelError> {
        let width = if self.five_class() { 5 } else { 2 };
        let mut out = vec![0.0f32; idx.len() * width];
        let share = 1.0 / self.members.len() as f32;
        let mut add = |at: usize, q: &[f32]| {
            let row = &mut out[at * width..(at + 1) * width];
            if width == 2 {
                // Abnormal is everything but class 0 (normal), for binary and
                // five-class members alike (1 − p(N), as `train::predict`).
                row[0] += share * q[0];
                row[1] += share * (1.0 - q[0]);
            } else {
                for (o, p) in row.iter_mut().zip(q) {
                    *o += share * p;
                }
            }
        };
        let batch = batch.max(1);
        match cpu {
            Some(nets) => {
                for (c, ids) in idx.chunks(batch).enumerate() {
                    let mut x = Vec::with_capacity(ids.len() * BEAT_LEN);
                    for &i in ids {
                        x.extend_from_slice(&beats[i]);
                    }
                    for net in nets {
                        let k = net.side_features();
                        let r: Option<Vec<f32>> = rr.filter(|_| k > 0).map(|rr| {
                            ids.iter()
                                .flat_map(|&i| rr[i][..k].iter().copied())
                                .collect()
                        });
                        let probs = net.probabilities(&x, r.as_deref())?;
                        for (j, q) in probs.chunks_exact(net.classes()).enumerate() {
                            add(c * batch + j, q);
                        }
                    }
                }
            }
            None => {
                for m in &self.members {
                    let classes = m.network.classes();
                    let probs =
                        predict_probabilities(&m.network, &m.params, beats, rr, idx, batch)?;
                    for (j, q) in probs.chunks_exact(classes).enumerate() {
                        add(j, q);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The class of a beat with five-class probabilities `q` and side
    /// features `side`: the decision rule with the members' mean normal weight
    /// (1 when their cards give none) and the first member's premature rule.
    pub fn decide(&self, q: &[f32], side: Option<&[f32; SIDE_FEATURES]>) -> AamiClass {
        let n = self.members.len().max(1) as f32;
        let normal_weight = self
            .members
            .iter()
            .map(|m| m.card.normal_weight.unwrap_or(1.0))
            .sum::<f32>()
            / n;
        let premature = self.members.iter().find_map(|m| m.card.premature_rule);
        super::decision::DecisionRule {
            normal_weight,
            premature,
        }
        .decide(q, side)
    }

    /// The probability of "abnormal" in each beat's row of class probabilities.
    fn abnormal(&self, probs: &[f32]) -> Vec<f32> {
        let width = if self.five_class() { 5 } else { 2 };
        probs.chunks_exact(width).map(p_abnormal_in).collect()
    }

    /// Probability of "abnormal" (any class but N) for each beat `idx`; see
    /// [`probabilities_of`](Self::probabilities_of).
    pub fn p_abnormal_of(
        &self,
        beats: &[[f32; BEAT_LEN]],
        rr: Option<&[[f32; SIDE_FEATURES]]>,
        idx: &[usize],
        batch: usize,
    ) -> Result<Vec<f32>, ModelError> {
        Ok(self.abnormal(&self.probabilities_of(beats, rr, idx, batch)?))
    }

    /// [`p_abnormal_of`](Self::p_abnormal_of) computed by candle on the model's
    /// device (the reference the CPU path is checked against).
    pub fn p_abnormal_candle(
        &self,
        beats: &[[f32; BEAT_LEN]],
        rr: Option<&[[f32; SIDE_FEATURES]]>,
        idx: &[usize],
        batch: usize,
    ) -> Result<Vec<f32>, ModelError> {
        Ok(self.abnormal(&self.probabilities_on(None, beats, rr, idx, batch)?))
    }

    /// Probability of "abnormal" for every beat, in one batch.
    pub fn p_abnormal(
        &self,
        beats: &[[f32; BEAT_LEN]],
        rr: Option<&[[f32; SIDE_FEATURES]]>,
    ) -> Result<Vec<f32>, ModelError> {
        let idx: Vec<usize> = (0..beats.len()).collect();
        self.p_abnormal_of(beats, rr, &idx, beats.len().max(1))
    }
}

/// The probability of "abnormal" in one beat's row of class probabilities
/// from [`Classifier::probabilities_of`]: the abnormal column of a binary row,
/// 1 − p(N) of a five-class row.
pub fn p_abnormal_in(q: &[f32]) -> f32 {
    match q {
        [_, abnormal] => *abnormal,
        [normal, ..] => 1.0 - normal,
        [] => 0.0,
    }
}

/// 64-bit FNV-1a, a small stable hash for the weights' identity (not for security).
#[derive(Debug)]
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
