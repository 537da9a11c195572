//! The shipped models offered to people: every directory of `models/` with a
//! `card.json`, plus one ensemble per evaluation protocol of the seed paper's
//! architectures (as the paper's ensemble; they need nothing but the beat). Uploads choose from
//! it by name (never by path), and the models page reads the cards.

use super::ModelError;
use super::card::ModelCard;
use super::classifier::Classifier;
use crate::dataset::Protocol;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Models under one directory, loaded on first use and kept.
pub struct ModelCatalog {
    dir: PathBuf,
    loaded: Mutex<HashMap<String, Arc<Classifier>>>,
}

/// A shipped model's card and where it lives.
pub struct ShippedModel {
    pub dir: PathBuf,
    pub card: ModelCard,
}

impl ModelCatalog {
    pub fn new(dir: &Path) -> ModelCatalog {
        ModelCatalog {
            dir: super::locate(dir),
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// Every model directory whose card parses, by name. Unreadable cards are logged and skipped.
    pub fn models(&self) -> Vec<ShippedModel> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            tracing::warn!(dir = %self.dir.display(), "models directory cannot be read");
            return Vec::new();
        };
        let mut out: Vec<ShippedModel> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.join("card.json").is_file())
            .filter_map(|dir| {
                let text = std::fs::read_to_string(dir.join("card.json")).ok()?;
                match serde_json::from_str::<ModelCard>(&text) {
                    Ok(card) => Some(ShippedModel { dir, card }),
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "model card skipped");
                        None
                    }
                }
            })
            .collect();
        out.sort_by(|a, b| a.card.name.cmp(&b.card.name));
        out
    }

    /// Names people can choose: each model, and `ensemble-<protocol>` where a
    /// protocol has two or more of the paper's models (their probabilities averaged).
    pub fn choices(&self) -> Vec<String> {
        let models = self.models();
        let mut out: Vec<String> = models.iter().map(|m| m.card.name.clone()).collect();
        for p in [Protocol::Inter, Protocol::Intra] {
            if models.iter().filter(|m| in_ensemble(m, p)).count() >= 2 {
                out.push(format!("ensemble-{}", protocol_name(p)));
            }
        }
        out
    }

    /// The classifier called `name` (one of [`choices`](Self::choices)).
    pub fn classifier(&self, name: &str) -> Result<Arc<Classifier>, ModelError> {
        if let Some(c) = self.lock().get(name) {
            return Ok(c.clone());
        }
        let models = self.models();
        let dirs: Vec<&PathBuf> = match name.strip_prefix("ensemble-") {
            Some(p) => models
                .iter()
                .filter(|m| {
                    [Protocol::Inter, Protocol::Intra]
                        .into_iter()
                        .any(|q| protocol_name(q) == p && in_ensemble(m, q))
                })
                .map(|m| &m.dir)
                .collect(),
            None => models
                .iter()
                .filter(|m| m.card.name == name)
                .map(|m| &m.dir)
                .collect(),
        };
        if dirs.is_empty() || (name.starts_with("ensemble-") && dirs.len() < 2) {
            return Err(ModelError::Device(format!(
                "no model called {name:?}; choose one of {}",
                self.choices().join(", ")
            )));
        }
        let c = Arc::new(Classifier::load(&dirs, &candle_core::Device::Cpu)?);
        self.lock().insert(name.to_string(), c.clone());
        Ok(c)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Classifier>>> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// True when `m` belongs in the ensemble of protocol `p`: one of the seed paper's architectures.
fn in_ensemble(m: &ShippedModel, p: Protocol) -> bool {
    m.card.protocol == p
        && ["cnn-lstm", "cnn-lstm-dropout", "transformer"].contains(&m.card.architecture.as_str())
}

/// `intra` or `inter`.
pub fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Intra => "intra",
        Protocol::Inter => "inter",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_models_and_ensembles_are_offered_by_name_only() {
        let c = ModelCatalog::new(Path::new("models"));
        let choices = c.choices();
        assert!(
            choices.contains(&"cnn-lstm-inter".to_string()),
            "{choices:?}"
        );
        assert!(
            choices.contains(&"ensemble-inter".to_string()),
            "{choices:?}"
        );
        let e = c.classifier("ensemble-inter").unwrap();
        assert!(e.members().len() >= 2);
        assert!(c.classifier("../models/cnn-lstm-inter").is_err());
        assert!(c.classifier("nope").is_err());
    }
}
