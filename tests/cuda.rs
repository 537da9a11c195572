//! The GPU path (`--features cuda`, `--device cuda`): every shipped model gives
//! the same probabilities on the GPU as on the CPU, and training on the GPU
//! lowers the loss. Built only with the `cuda` feature and run on a machine
//! with an NVIDIA GPU (see docs/performance.md, "GPU"); CI has none.

#![cfg(feature = "cuda")]

mod common;

use common::{FIXTURES, labelled_beats, shipped_models};
use holterd::model::classifier::Classifier;
use holterd::model::train::{TrainConfig, paper_split, train};
use holterd::model::{Network, Params, SplitMix64};

/// Largest difference allowed between a GPU and a CPU probability: cuBLAS
/// sums in another order than the CPU path, so the two differ by rounding.
const TOLERANCE: f32 = 1e-4;

fn gpu() -> candle_core::Device {
    holterd::model::device("cuda").expect("a CUDA device")
}

#[test]
fn shipped_models_agree_on_gpu_and_cpu() {
    let gpu = gpu();
    let models = shipped_models();
    assert!(!models.is_empty());
    // Extracted once, shared by every model.
    let fixtures: Vec<_> = FIXTURES.iter().map(|name| labelled_beats(name)).collect();
    for dir in &models {
        let on_cpu = Classifier::load(&[dir], &candle_core::Device::Cpu).unwrap();
        let on_gpu = Classifier::load(&[dir], &gpu).unwrap();
        let mut worst = 0.0f32;
        let mut compared = 0;
        for beats in &fixtures {
            let idx: Vec<usize> = (0..beats.values.len()).collect();
            let cpu = on_cpu
                .p_abnormal_of(&beats.values, Some(&beats.rr), &idx, 256)
                .unwrap();
            let gpu = on_gpu
                .p_abnormal_of(&beats.values, Some(&beats.rr), &idx, 256)
                .unwrap();
            assert_eq!(cpu.len(), gpu.len());
            for (c, g) in cpu.iter().zip(&gpu) {
                worst = worst.max((c - g).abs());
            }
            compared += cpu.len();
        }
        eprintln!(
            "{}: {compared} beats, largest GPU-CPU difference {worst:.2e}",
            dir.display()
        );
        assert!(compared > 500);
        assert!(worst < TOLERANCE, "{}: {worst}", dir.display());
    }
}

#[test]
fn training_on_the_gpu_lowers_the_loss() {
    let gpu = gpu();
    let (mut values, mut rr, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for name in FIXTURES {
        let beats = labelled_beats(name);
        values.extend(beats.values);
        rr.extend(beats.rr);
        labels.extend(beats.abnormal.iter().map(|&a| u8::from(a)));
    }
    let all: Vec<usize> = (0..values.len()).collect();
    let split = paper_split(&labels, &all, 1);
    for architecture in ["cnn-lstm", "cnn-lstm-rr", "patch-transformer"] {
        let mut params = Params::new(&gpu);
        let model = Network::build(architecture, &mut params, &mut SplitMix64::new(3)).unwrap();
        let config = TrainConfig {
            max_epochs: 5,
            batch: 64,
            ..TrainConfig::default()
        };
        let out = train(
            &model,
            &params,
            &values,
            Some(&rr),
            &labels,
            &split,
            &config,
            |_, _, _, _| {},
        )
        .unwrap();
        let first = out.history.first().unwrap().loss;
        let last = out.history.last().unwrap().loss;
        eprintln!("{architecture} on the GPU: training loss {first:.4} -> {last:.4}");
        assert!(
            last < first,
            "{architecture}: loss went from {first} to {last}"
        );
    }
}
