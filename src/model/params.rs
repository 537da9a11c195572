//! Named, trainable parameters with Keras' default initialisation, drawn from a
//! seeded generator so that training is reproducible, and stored as safetensors.

use candle_core::{DType, Device, Tensor, Var};
use std::collections::BTreeMap;
use std::path::Path;

/// A model file or configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A weights file does not fit the architecture.
    #[error("{path}: {message}")]
    Weights { path: String, message: String },
    /// The device is unavailable.
    #[error("{0}")]
    Device(String),
}

/// SplitMix64: a small, fast, seedable generator (Steele et al. 2014), enough
/// for weight initialisation, shuffling and dropout masks.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Standard normal (Box–Muller).
    pub fn next_normal(&mut self) -> f32 {
        let u1 = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let u2 = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }

    /// Uniform integer in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Shuffles `v` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// A model's parameters by name.
#[derive(Debug)]
pub struct Params {
    device: Device,
    vars: BTreeMap<String, Var>,
}

impl Params {
    /// An empty set on `device`.
    pub fn new(device: &Device) -> Self {
        Params {
            device: device.clone(),
            vars: BTreeMap::new(),
        }
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    fn add(&mut self, name: &str, values: Vec<f32>, shape: &[usize]) -> Result<Tensor, ModelError> {
        let t = Tensor::from_vec(values, shape, &self.device)?;
        let var = Var::from_tensor(&t)?;
        let tensor = var.as_tensor().clone();
        self.vars.insert(name.to_string(), var);
        Ok(tensor)
    }

    /// A parameter drawn from Keras' Glorot-uniform distribution: U(±√(6 / (fan_in + fan_out))).
    pub fn glorot(
        &mut self,
        rng: &mut SplitMix64,
        name: &str,
        shape: &[usize],
        fan_in: usize,
        fan_out: usize,
    ) -> Result<Tensor, ModelError> {
        let limit = (6.0 / (fan_in + fan_out) as f32).sqrt();
        let n = shape.iter().product();
        let values = (0..n)
            .map(|_| (2.0 * rng.next_f32() - 1.0) * limit)
            .collect();
        self.add(name, values, shape)
    }

    /// A `rows × cols` parameter (rows ≤ cols) with orthonormal rows, as Keras'
    /// `Orthogonal` initialiser draws an LSTM's recurrent kernel: Gaussian rows
    /// orthonormalised by modified Gram–Schmidt (the Q of a QR decomposition).
    pub fn orthogonal(
        &mut self,
        rng: &mut SplitMix64,
        name: &str,
        rows: usize,
        cols: usize,
    ) -> Result<Tensor, ModelError> {
        if rows > cols {
            return Err(ModelError::Device(format!(
                "{name}: orthogonal rows need rows <= cols, got {rows} x {cols}"
            )));
        }
        let mut m: Vec<Vec<f64>> = (0..rows)
            .map(|_| (0..cols).map(|_| rng.next_normal() as f64).collect())
            .collect();
        for i in 0..rows {
            for j in 0..i {
                let dot: f64 = m[i].iter().zip(&m[j]).map(|(a, b)| a * b).sum();
                let (done, rest) = m.split_at_mut(i);
                for (a, b) in rest[0].iter_mut().zip(&done[j]) {
                    *a -= dot * b;
                }
            }
            let norm = m[i].iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-12);
            m[i].iter_mut().for_each(|a| *a /= norm);
        }
        let values = m.into_iter().flatten().map(|v| v as f32).collect();
        self.add(name, values, &[rows, cols])
    }

    /// A parameter filled with `value`.
    pub fn constant(
        &mut self,
        name: &str,
        shape: &[usize],
        value: f32,
    ) -> Result<Tensor, ModelError> {
        self.add(name, vec![value; shape.iter().product()], shape)
    }

    /// Sets parameter `name` to `value`.
    pub fn vars_set(&self, name: &str, value: &Tensor) -> Result<(), ModelError> {
        let var = self
            .vars
            .get(name)
            .ok_or_else(|| ModelError::Device(format!("no parameter {name}")))?;
        var.set(value)?;
        Ok(())
    }

    /// The parameter `name`.
    pub fn get(&self, name: &str) -> Result<Tensor, ModelError> {
        self.vars
            .get(name)
            .map(|v| v.as_tensor().clone())
            .ok_or_else(|| ModelError::Device(format!("no parameter {name}")))
    }

    /// All trainable variables, for an optimiser.
    pub fn vars(&self) -> Vec<Var> {
        self.vars.values().cloned().collect()
    }

    /// Total number of scalar parameters.
    pub fn count(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// A copy of every parameter's current value (to restore the best epoch).
    pub fn snapshot(&self) -> Result<BTreeMap<String, Tensor>, ModelError> {
        self.vars
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
            .collect()
    }

    /// Sets every parameter from `values` (names and shapes must match).
    pub fn restore(&self, values: &BTreeMap<String, Tensor>) -> Result<(), ModelError> {
        for (k, v) in &self.vars {
            if let Some(t) = values.get(k) {
                v.set(t)?;
            }
        }
        Ok(())
    }

    /// Writes the parameters as a safetensors file.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let map: std::collections::HashMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        candle_core::safetensors::save(&map, path)?;
        Ok(())
    }

    /// Replaces every parameter with the one of the same name in a safetensors
    /// file; a missing, extra or mis-shaped tensor is an error naming it.
    pub fn load(&self, path: &Path) -> Result<(), ModelError> {
        let err = |message: String| ModelError::Weights {
            path: path.display().to_string(),
            message,
        };
        if !path.exists() {
            return Err(err("file not found".into()));
        }
        let tensors = candle_core::safetensors::load(path, &self.device)
            .map_err(|e| err(format!("not a readable safetensors file: {e}")))?;
        for (name, var) in &self.vars {
            let t = tensors
                .get(name)
                .ok_or_else(|| err(format!("tensor {name} is missing")))?;
            if t.dims() != var.dims() {
                return Err(err(format!(
                    "tensor {name} has shape {:?}, the architecture needs {:?}",
                    t.dims(),
                    var.dims()
                )));
            }
            var.set(&t.to_dtype(DType::F32)?)?;
        }
        if let Some(extra) = tensors.keys().find(|k| !self.vars.contains_key(*k)) {
            return Err(err(format!(
                "tensor {extra} does not belong to this architecture"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_rows_are_orthonormal() {
        let mut p = Params::new(&Device::Cpu);
        let mut rng = SplitMix64::new(8);
        let w: Vec<Vec<f32>> = p
            .orthogonal(&mut rng, "r", 16, 64)
            .unwrap()
            .to_vec2()
            .unwrap();
        for i in 0..16 {
            for j in 0..16 {
                let dot: f32 = w[i].iter().zip(&w[j]).map(|(a, b)| a * b).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-5, "rows {i},{j}: {dot}");
            }
        }
        assert!(p.orthogonal(&mut rng, "tall", 5, 3).is_err());
    }
}
