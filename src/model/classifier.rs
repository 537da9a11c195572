//! A ready-to-use beat classifier: one shipped model, or an ensemble of several
//! whose probabilities are averaged (the seed paper's ensemble). The daemon, the
//! offline `analyze` command and `eval classify` all classify through it.
//!
//! On the CPU it computes with [`super::cpu`] (several times faster than
//! candle's kernels on these small networks); on a GPU, with candle.

use super::card::{Evaluation, LoadedModel, load_model};
use super::cpu::CpuNetwork;
use super::metrics::AamiConfusion;
use super::params::ModelError;
use super::rr::SIDE_FEATURES;
use super::train::predict_probabilities;
use crate::dataset::{BeatSet, Protocol};
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
    /// Loads the model directories `dirs` (more than one makes an ensemble) onto
    /// `device`. A directory whose card lists [`ensemble`](super::card::ModelCard::ensemble)
    /// members brings them too, under its own name.
    pub fn load(dirs: &[impl AsRef<Path>], device: &Device) -> Result<Classifier, ModelError> {
        if dirs.is_empty() {
            return Err(ModelError::Device("no model directory given".into()));
        }
        let mut members = Vec::new();
        let mut names = Vec::new();
        let mut hash = Fnv1a::default();
        for dir in dirs {
            let dir = &super::locate(dir.as_ref());
            let top = load_member(dir, device, &mut hash)?;
            names.push(top.card.name.clone());
            let extra = top.card.ensemble.clone();
            members.push(top);
            for member in &extra {
                members.push(load_member(&member_dir(dir, member)?, device, &mut hash)?);
            }
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
        let name = if names.len() == 1 {
            names.remove(0)
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
    /// (1 when their cards give none) and the first member's premature and
    /// cluster rules.
    pub fn decide(&self, q: &[f32], side: Option<&[f32; SIDE_FEATURES]>) -> AamiClass {
        let n = self.members.len().max(1) as f32;
        let normal_weight = self
            .members
            .iter()
            .map(|m| m.card.normal_weight.unwrap_or(1.0))
            .sum::<f32>()
            / n;
        let premature = self.members.iter().find_map(|m| m.card.premature_rule);
        let cluster = self.members.iter().find_map(|m| m.card.cluster_rule);
        super::decision::DecisionRule {
            normal_weight,
            premature,
            cluster,
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

    /// How the classifier does on beats `idx` of `set`, scored under
    /// `protocol`: the binary metrics of p(abnormal), the rates per AAMI class,
    /// the beats it abstains on and, when five-class, the AAMI confusion of
    /// the classes its decision rule gives (what the daemon would store).
    /// `train` writes it into model cards and `eval classify` prints it.
    pub fn evaluate(
        &self,
        set: &BeatSet,
        idx: &[usize],
        protocol: Protocol,
    ) -> Result<Evaluation, ModelError> {
        let rr = set.rr_features();
        let probs = self.probabilities_of(&set.values, Some(&rr), idx, 1024)?;
        let p = self.abnormal(&probs);
        let classes: Vec<AamiClass> = idx.iter().map(|&i| set.class[i]).collect();
        let mut evaluation = Evaluation::compute(protocol, &p, &classes);
        if self.five_class() {
            let predicted: Vec<usize> = probs
                .chunks_exact(AamiClass::ALL.len())
                .zip(idx)
                .map(|(q, &i)| self.decide(q, Some(&rr[i])).index())
                .collect();
            let reference: Vec<usize> = classes.iter().map(|c| c.index()).collect();
            evaluation.aami = Some(AamiConfusion::compute(&predicted, &reference));
        }
        evaluation.abstained = Some(
            idx.iter()
                .filter(|&&i| self.out_of_distribution(&set.values[i]).is_some())
                .count(),
        );
        Ok(evaluation)
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

/// Loads the model in `dir` and adds its weights to the identity `hash`.
fn load_member(dir: &Path, device: &Device, hash: &mut Fnv1a) -> Result<LoadedModel, ModelError> {
    let model = load_model(dir, device)?;
    let weights = dir.join("weights.safetensors");
    let bytes = std::fs::read(&weights).map_err(|e| ModelError::Weights {
        path: weights.display().to_string(),
        message: e.to_string(),
    })?;
    hash.write(&bytes);
    Ok(model)
}

/// The directory of ensemble member `name` of the model in `dir`: a plain
/// subdirectory name, so that a card cannot point outside its model.
fn member_dir(dir: &Path, name: &str) -> Result<std::path::PathBuf, ModelError> {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if !plain {
        return Err(ModelError::Weights {
            path: dir.join("card.json").display().to_string(),
            message: format!(
                "ensemble member {name:?} is not a subdirectory name (letters, digits, '-' and '_' only)"
            ),
        });
    }
    Ok(dir.join(name))
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
