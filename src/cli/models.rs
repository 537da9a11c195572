//! The classifier commands: `dataset build`, `train`, `profile`, `eval classify` and `bench infer`.

use super::{LeadArgs, default_db, selected_records};
use crate::dsp::ExtractorConfig;
use crate::eval::NoiseKind;
use crate::formats::wfdb::LeadChoice;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Args)]
pub(super) struct ProfileArgs {
    /// Directory written by `holterd dataset build`.
    #[arg(long)]
    data: PathBuf,
    /// Datasets the models were trained with as `train --augment` (inter only).
    #[arg(long)]
    augment: Vec<PathBuf>,
    /// Model directories whose cards get the profile of their protocol's training beats.
    #[arg(required = true)]
    models: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct TrainArgs {
    /// Architecture: cnn-lstm, cnn-lstm-dropout or transformer.
    #[arg(long)]
    model: String,
    /// Directory written by `holterd dataset build`.
    #[arg(long)]
    data: PathBuf,
    /// Output directory (default: models/<model>-<protocol>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Which beats to train on: the protocol's training part.
    #[arg(long, value_enum, default_value = "intra")]
    protocol: crate::dataset::Protocol,
    /// Seed of training's random choices: the balancing, the 70/30 split, the
    /// initial weights and the batch order (the `intra` 80/20 split is fixed).
    /// Several, comma-separated, train one network each and save them as one
    /// ensemble model (probabilities averaged; the others in `seed-<K>/`).
    #[arg(long, value_delimiter = ',', default_value = "42")]
    seed: Vec<u64>,
    /// Upper limit on epochs (early stopping usually ends sooner).
    #[arg(long, default_value_t = 200)]
    max_epochs: usize,
    /// Epochs without a better validation loss before stopping (the paper's is 10).
    #[arg(long, default_value_t = 10)]
    patience: usize,
    /// Redraw the down-sampled class's training beats every epoch from all
    /// of them, instead of once (the paper drew once and left the rest unused).
    #[arg(long)]
    redraw_each_epoch: bool,
    /// Also train on the training records' beats of these datasets (built with
    /// `dataset build --noise`); `inter` only, where the split is by patient,
    /// so no noisy copy of a scored beat can be trained on.
    #[arg(long)]
    augment: Vec<PathBuf>,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Five-class models: weight of the normal class in the decision rule, as
    /// chosen by `holterd eval cv` (default 1: the most probable class).
    #[arg(long)]
    normal_weight: Option<f32>,
    /// Five-class models: the premature rule for S, `RATIO:IRREGULARITY:CORRELATION:WARMUP[:VETO[:LOCAL:FAST_MS[:FAST_RATIO[:RUN_P]]]]` (chosen by `eval cv`).
    #[arg(long)]
    premature_rule: Option<crate::model::decision::PrematureRule>,
    /// Five-class models: the cluster rule for V, `RATIO:CORRELATION` (chosen by `eval cv`).
    #[arg(long)]
    cluster_rule: Option<crate::model::decision::ClusterRule>,
    /// Five-class models: N beats kept per epoch, as a multiple of the largest other class (default 1).
    #[arg(long)]
    normal_cap: Option<f32>,
}

#[derive(Debug, Args)]
pub(super) struct DatasetBuildArgs {
    /// Database directory (default: $HOLTER_DATA_DIR/mitdb).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Only these records (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    records: Vec<String>,
    #[command(flatten)]
    lead: LeadArgs,
    /// Add electrode noise (bw: baseline wander, ma: muscle artefact, both
    /// recorded; artefacts: synthetic movement and electrode artefacts)
    /// as the noise stress test does, and keep only the beats in noisy segments:
    /// an augmentation set for `train --augment`.
    #[arg(long)]
    noise: Option<NoiseKind>,
    /// Signal-to-noise ratio of the added noise, dB.
    #[arg(long, default_value_t = 6.0, requires = "noise")]
    snr: f64,
    /// Directory of the noise records (default: $HOLTER_DATA_DIR/nstdb).
    #[arg(long, requires = "noise")]
    noise_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct EvalClassifyArgs {
    /// Model directory (with card.json and weights.safetensors), e.g. models/cnn-lstm-intra;
    /// several, comma-separated, form an ensemble that averages their class probabilities.
    #[arg(long, value_delimiter = ',', required = true)]
    model: Vec<PathBuf>,
    /// Database directory (default: $HOLTER_DATA_DIR/mitdb).
    #[arg(long, conflicts_with = "data")]
    db: Option<PathBuf>,
    /// Score the protocol's test beats of this dataset (from `holterd dataset
    /// build`, e.g. a noisy one) instead of extracting them from the database.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Protocol (default: the one the model was trained under).
    #[arg(long, value_enum)]
    protocol: Option<crate::dataset::Protocol>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write each scored beat's probability of being abnormal to this CSV
    /// (record, sample, AAMI class, p_abnormal), for ROC or calibration plots.
    #[arg(long)]
    probabilities: Option<PathBuf>,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Debug, Args)]
pub(super) struct BenchInferArgs {
    /// Architecture to time (untrained weights time the same): cnn-lstm,
    /// cnn-lstm-dropout, transformer, …; or a model directory (e.g.
    /// models/context-mlp-beat-inter), timed as the daemon classifies with it
    /// (every ensemble member, probabilities averaged).
    #[arg(long, default_value = "cnn-lstm")]
    model: String,
    /// Seconds to run each batch size.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub(super) fn train(a: TrainArgs) -> Result<()> {
    use crate::model::recipe::TrainEvent;
    let request = crate::model::recipe::TrainRequest {
        architecture: a.model,
        data: a.data,
        out: a.out,
        protocol: a.protocol,
        seed: a.seed.first().copied().unwrap_or(42),
        max_epochs: a.max_epochs,
        patience: a.patience,
        redraw_each_epoch: a.redraw_each_epoch,
        augment: a.augment,
        device: a.device,
        normal_weight: a.normal_weight,
        premature_rule: a.premature_rule,
        cluster_rule: a.cluster_rule,
        normal_cap: a.normal_cap,
    };
    let (out, card) =
        crate::model::recipe::train_ensemble(&request, &a.seed, |event| match event {
            TrainEvent::Plan(line) => eprintln!("{line}"),
            TrainEvent::Batch {
                epoch,
                batch,
                of,
                loss,
            } => {
                eprint!("\repoch {epoch:>3}  batch {batch:>4}/{of}  loss {loss:.4}   ")
            }
            TrainEvent::Epoch(e) => eprintln!(
                "\repoch {:>3}: loss {:.4} acc {:.4} | val loss {:.4} acc {:.4} | {:.1} s",
                e.epoch, e.loss, e.accuracy, e.val_loss, e.val_accuracy, e.seconds
            ),
        })?;
    print_evaluation(&card.evaluation, false)?;
    eprintln!("saved {}", out.display());
    Ok(())
}

pub(super) fn profile(a: ProfileArgs) -> Result<()> {
    use crate::dataset::Protocol;
    use crate::model::card::ModelCard;
    use crate::model::profile::InputProfile;
    use crate::model::recipe::{TrainingSet, training_set};
    // Models of one protocol share their training beats, hence their profile:
    // each protocol's set is loaded and fitted once.
    let mut fitted: Vec<(Protocol, TrainingSet, InputProfile, usize)> = Vec::new();
    for dir in &a.models {
        let path = dir.join("card.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut card: ModelCard = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a model card", path.display()))?;
        let k = match fitted.iter().position(|(p, ..)| *p == card.protocol) {
            Some(k) => k,
            None => {
                let training = training_set(&a.data, &a.augment, card.protocol)?;
                let (set, train_idx) = (&training.set, &training.train_idx);
                let profile = InputProfile::fit(train_idx.iter().map(|&i| &set.values[i]));
                let abstained = profile.count_outliers(&set.values, &training.test_idx);
                fitted.push((card.protocol, training, profile, abstained));
                fitted.len() - 1
            }
        };
        let (_, training, profile, abstained) = &fitted[k];
        if training.augmentation.len() != card.augmentation.len() {
            bail!(
                "{} was trained with {} augmentation set(s) and {} are given (--augment): its profile must be fitted on the beats it was trained on",
                card.name,
                card.augmentation.len(),
                training.augmentation.len()
            );
        }
        let tested = training.test_idx.len();
        eprintln!(
            "{}: profile of {} training beats; abstains on {abstained} of {tested} test beats ({:.3} %)",
            card.name,
            profile.fitted_on,
            100.0 * *abstained as f64 / tested.max(1) as f64
        );
        card.evaluation.abstained = Some(*abstained);
        card.input_profile = Some(profile.clone());
        std::fs::write(&path, serde_json::to_string_pretty(&card)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn print_evaluation(e: &crate::model::card::Evaluation, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(e)?)?;
        return Ok(());
    }
    let m = &e.metrics;
    writeln!(
        out,
        "{:?} protocol, {} beats: accuracy {:.4}  precision {:.4}  recall {:.4}  F1 {:.4}  kappa {:.4}  ROC AUC {:.4}",
        e.protocol, e.beats, m.accuracy, m.precision, m.recall, m.f1, m.kappa, m.roc_auc
    )?;
    writeln!(
        out,
        "confusion (abnormal positive): TP {}  FP {}  FN {}  TN {}",
        m.tp, m.fp, m.fn_, m.tn
    )?;
    for (c, o) in &e.per_class {
        let what = if *c == crate::formats::wfdb::AamiClass::N {
            "specificity"
        } else {
            "sensitivity"
        };
        let rate = if o.beats == 0 {
            "–".to_string()
        } else {
            format!("{:.4}", o.rate)
        };
        writeln!(out, "  {c:?}: {:>6} beats, {what} {rate}", o.beats)?;
    }
    if let Some(aami) = &e.aami {
        writeln!(out, "AAMI classes (rows reference, columns predicted):")?;
        writeln!(
            out,
            "       N       S       V       F       Q     Se      +P"
        )?;
        for (c, row) in crate::formats::wfdb::AamiClass::ALL
            .iter()
            .zip(&aami.confusion)
        {
            let i = c.index();
            write!(out, "{c:?}")?;
            for v in row {
                write!(out, " {v:>7}")?;
            }
            writeln!(
                out,
                "  {:.4}  {:.4}",
                aami.sensitivity[i], aami.positive_predictivity[i]
            )?;
        }
    }
    if let Some(n) = e.abstained {
        writeln!(
            out,
            "abstains (verdict unreadable) on {n} of these beats ({:.3} %): unlike its training beats",
            100.0 * n as f64 / e.beats.max(1) as f64
        )?;
    }
    Ok(())
}

pub(super) fn eval_classify(a: EvalClassifyArgs) -> Result<()> {
    use crate::dataset::{from_db, protocol_split};
    use crate::model::classifier::Classifier;
    let device = crate::model::device(&a.device)?;
    let classifier = Classifier::load(&a.model, &device)?;
    let first = &classifier.members()[0].card;
    let protocol = a.protocol.unwrap_or(first.protocol);
    let set = match &a.data {
        Some(dir) => crate::dataset::load(dir)?,
        None => {
            let db = default_db(a.db);
            let records = selected_records(&db, &[])?;
            from_db(&db, &records, &LeadChoice::Default)?.0
        }
    };
    let (_, test_idx) = protocol_split(&set, protocol);
    if let Some(path) = &a.probabilities {
        let rr = set.rr_features();
        let p = classifier.p_abnormal_of(&set.values, Some(&rr), &test_idx, 1024)?;
        write_probabilities(path, &set, &test_idx, &p)?;
    }
    let evaluation = classifier.evaluate(&set, &test_idx, protocol)?;
    print_evaluation(&evaluation, a.json)
}

fn write_probabilities(
    path: &Path,
    set: &crate::dataset::BeatSet,
    idx: &[usize],
    p: &[f32],
) -> Result<()> {
    let mut out = String::from("record,sample,class,p_abnormal\n");
    for (&i, p) in idx.iter().zip(p) {
        out.push_str(&format!(
            "{},{},{:?},{p}\n",
            set.record[i], set.sample[i], set.class[i]
        ));
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

pub(super) fn dataset_build(a: DatasetBuildArgs) -> Result<()> {
    let db = default_db(a.db);
    let records = selected_records(&db, &a.records)?;
    let config = |fs| ExtractorConfig {
        powerline_hz: a.lead.powerline.0,
        ..ExtractorConfig::new(fs)
    };
    let noise = match a.noise {
        None => None,
        Some(kind) => {
            // nstdb's rate, and MIT-BIH's; 30 minutes, reused from the start when shorter.
            let fs = 360.0;
            let dir = a
                .noise_dir
                .unwrap_or_else(|| crate::data_dir().join("nstdb"));
            let signal = kind
                .signal(&dir, 0, fs, (1800.0 * fs) as usize)
                .map_err(anyhow::Error::msg)?;
            Some(crate::dataset::NoiseMix {
                name: kind.record().to_string(),
                signal,
                fs,
                snr_db: a.snr,
            })
        }
    };
    let s = crate::dataset::build(
        &db,
        &records,
        &a.lead.choice(),
        config,
        noise.as_ref(),
        &a.out,
    )?;
    let [n, sv, v, f, q] = s.per_class;
    eprintln!(
        "{} records: {} labelled beats (N {n}, S {sv}, V {v}, F {f}, Q {q}; {} unreadable), {} unmatched detections kept apart, in {}",
        s.records,
        s.per_class.iter().sum::<usize>(),
        s.unreadable,
        s.unmatched,
        a.out.display()
    );
    Ok(())
}

pub(super) fn bench_infer(a: BenchInferArgs) -> Result<()> {
    use crate::model::cpu::CpuNetwork;
    use crate::model::{Network, Params, SplitMix64};
    let device = crate::model::device(&a.device)?;
    if Path::new(&a.model).join("card.json").is_file() {
        return bench_model_dir(&a, &device);
    }
    let mut params = Params::new(&device);
    let mut rng = SplitMix64::new(1);
    let network = Network::build(&a.model, &mut params, &mut rng)?;
    let cpu = if device.is_cpu() {
        CpuNetwork::from_network(&network, &params)?
    } else {
        None
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} ({} parameters) on {}, RAYON_NUM_THREADS={}; beats/s over {} s per cell",
        a.model,
        params.count(),
        a.device,
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into()),
        a.seconds
    )?;
    let naive = match &network {
        Network::Transformer(t) => Some(t),
        Network::CnnLstm(_) | Network::PatchTransformer(_) | Network::ContextMlp(_) => None,
    };
    writeln!(
        out,
        "batch | holterd CPU path | candle{}",
        if naive.is_some() {
            " | candle, naive attention"
        } else {
            ""
        }
    )?;
    // A GPU only fills up with far larger batches than a CPU core.
    let batches: &[usize] = if device.is_cpu() {
        &[1, 32, 256]
    } else {
        &[1, 32, 256, 4096]
    };
    for &batch in batches {
        let beats: Vec<f32> = (0..batch * crate::dsp::BEAT_LEN)
            .map(|_| rng.next_f32())
            .collect();
        let x =
            candle_core::Tensor::from_vec(beats.clone(), (batch, crate::dsp::BEAT_LEN), &device)?;
        let k = network.rr_features();
        let rr: Vec<f32> = (0..batch * k).map(|_| 0.5 + rng.next_f32()).collect();
        let rr_tensor = (k > 0)
            .then(|| candle_core::Tensor::from_vec(rr.clone(), (batch, k), &device))
            .transpose()?;
        let rr = (k > 0).then_some(&rr[..]);
        // Reading results back makes the work complete on any device.
        let cpu_rate = match &cpu {
            Some(c) => format!(
                "{:.0}",
                rate(batch, a.seconds, || Ok(c.probabilities(&beats, rr)?.len()))?
            ),
            None => "–".into(),
        };
        let candle_rate = rate(batch, a.seconds, || {
            Ok(network
                .forward(&params, &x, rr_tensor.as_ref(), None)?
                .to_vec2::<f32>()?
                .len())
        })?;
        write!(out, "{batch:>5} | {cpu_rate:>16} | {candle_rate:>6.0}")?;
        if let Some(t) = naive {
            // The naive form costs about 0.6 GFLOP per beat: timed up to batch 32 only.
            if batch <= 32 {
                let r = rate(batch, a.seconds, || {
                    Ok(t.forward_naive(&params, &x)?.to_vec2::<f32>()?.len())
                })?;
                write!(out, " | {r:.1}")?;
            } else {
                write!(out, " | –")?;
            }
        }
        writeln!(out)?;
    }
    Ok(())
}

/// `bench infer` of a model directory: the classifier the daemon loads from
/// it (all ensemble members), on random beats and side features.
fn bench_model_dir(a: &BenchInferArgs, device: &candle_core::Device) -> Result<()> {
    use crate::model::classifier::Classifier;
    use crate::model::rr::SIDE_FEATURES;
    let classifier = Classifier::load(&[Path::new(&a.model)], device)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} ({} network(s)) on {}, RAYON_NUM_THREADS={}; beats/s over {} s per batch size",
        a.model,
        classifier.members().len(),
        a.device,
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into()),
        a.seconds
    )?;
    writeln!(out, "batch | beats/s")?;
    let mut rng = crate::model::SplitMix64::new(1);
    for batch in [1usize, 32, 256] {
        let beats: Vec<[f32; crate::dsp::BEAT_LEN]> = (0..batch)
            .map(|_| std::array::from_fn(|_| rng.next_f32()))
            .collect();
        let side: Vec<[f32; SIDE_FEATURES]> = (0..batch)
            .map(|_| std::array::from_fn(|_| 0.5 + rng.next_f32()))
            .collect();
        let idx: Vec<usize> = (0..batch).collect();
        let r = rate(batch, a.seconds, || {
            Ok(classifier
                .probabilities_of(&beats, Some(&side), &idx, batch)?
                .len())
        })?;
        writeln!(out, "{batch:>5} | {r:.0}")?;
    }
    Ok(())
}

/// Beats per second of `run` (one batch of `batch` beats per call) over about `seconds`, after one warm-up call.
fn rate(batch: usize, seconds: f64, mut run: impl FnMut() -> Result<usize>) -> Result<f64> {
    run()?;
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed().as_secs_f64() < seconds {
        run()?;
        n += batch;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}
