//! A ready-to-use beat classifier: one shipped model, or an ensemble of several
//! whose probabilities are averaged (the seed paper's ensemble). The daemon, the
//! offline `analyze` command and `eval classify` all classify through it.

use super::card::{LoadedModel, load_model};
use super::params::ModelError;
use super::train::predict;
use crate::dsp::BEAT_LEN;
use candle_core::Device;
use std::path::Path;

/// One or more loaded models and the identity stored with their verdicts.
pub struct Classifier {
    members: Vec<LoadedModel>,
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
            let dir = dir.as_ref();
            members.push(load_model(dir, device)?);
            let weights = dir.join("weights.safetensors");
            let bytes = std::fs::read(&weights).map_err(|e| ModelError::Weights {
                path: weights.display().to_string(),
                message: e.to_string(),
            })?;
            hash.write(&bytes);
        }
        let names: Vec<&str> = members.iter().map(|m| m.card.name.as_str()).collect();
        let name = if names.len() == 1 {
            names[0].to_string()
        } else {
            format!("ensemble({})", names.join("+"))
        };
        Ok(Classifier {
            members,
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

    /// The loaded members.
    pub fn members(&self) -> &[LoadedModel] {
        &self.members
    }

    /// Probability of "abnormal" for each beat `idx` of `beats`, in batches of `batch`.
    pub fn p_abnormal_of(
        &self,
        beats: &[[f32; BEAT_LEN]],
        idx: &[usize],
        batch: usize,
    ) -> Result<Vec<f32>, ModelError> {
        let mut p = vec![0.0f32; idx.len()];
        let n = self.members.len() as f32;
        for m in &self.members {
            let q = predict(&m.network, &m.params, beats, idx, batch)?;
            for (acc, q) in p.iter_mut().zip(q) {
                *acc += q / n;
            }
        }
        Ok(p)
    }

    /// Probability of "abnormal" for every beat, in one batch.
    pub fn p_abnormal(&self, beats: &[[f32; BEAT_LEN]]) -> Result<Vec<f32>, ModelError> {
        let idx: Vec<usize> = (0..beats.len()).collect();
        self.p_abnormal_of(beats, &idx, beats.len().max(1))
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
