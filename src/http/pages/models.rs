//! The models page: each shipped architecture, intra and inter, beside the
//! seed paper's published numbers, with confusion matrices and training curves.

use super::layout;
use crate::http::paper::{METRICS, PAPER};
use crate::http::svg::{Chart, Series};
use crate::http::{HttpState, Viewer};
use crate::model::metrics::BinaryMetrics;
use crate::store::Store;
use axum::extract::State;
use maud::{Markup, html};

fn metric_cells(m: Option<&BinaryMetrics>) -> [Option<f64>; 6] {
    match m {
        Some(m) => [m.accuracy, m.precision, m.recall, m.f1, m.kappa, m.roc_auc].map(Some),
        None => [None; 6],
    }
}

fn aami_table(a: &crate::model::metrics::AamiConfusion) -> Markup {
    html! {
        div.scroll { table.confusion {
            tr { th { "reference \\ predicted" } @for c in crate::formats::wfdb::AamiClass::ALL { th { (format!("{c:?}")) } } th { "Se" } th { "+P" } }
            @for (i, c) in crate::formats::wfdb::AamiClass::ALL.iter().enumerate() {
                tr {
                    th { (format!("{c:?}")) }
                    @for v in a.confusion[i] { td { (v) } }
                    td { (format!("{:.3}", a.sensitivity[i])) }
                    td { (format!("{:.3}", a.positive_predictivity[i])) }
                }
            }
        } }
    }
}

/// The binary confusion matrix (normal / abnormal).
pub(super) fn confusion(m: &BinaryMetrics) -> Markup {
    html! {
        table.confusion {
            tr { th {} th { "predicted normal" } th { "predicted abnormal" } }
            tr { th { "normal" } td { (m.tn) } td { (m.fp) } }
            tr { th { "abnormal" } td { (m.fn_) } td { (m.tp) } }
        }
    }
}

pub(super) async fn models<S: Store>(State(s): State<HttpState<S>>, Viewer(p): Viewer) -> Markup {
    let models = s.web.models.models();
    // The paper's architectures first (with its numbers), then those beyond it.
    let mut sections: Vec<(String, [Option<f64>; 6])> =
        PAPER.iter().map(|(a, n)| (a.to_string(), *n)).collect();
    for m in &models {
        if !sections.iter().any(|(a, _)| *a == m.card.architecture) {
            sections.push((m.card.architecture.clone(), [None; 6]));
        }
    }
    let fmt = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "–".into());
    layout(
        "Models",
        Some(&p),
        html! {
            p { "Each architecture was trained twice: for the paper's protocol (" b { "intra" }
                ": all records' beats split at random) and for the clinical one (" b { "inter" }
                ": trained on DS1's patients, scored on DS2's). Abnormal is the positive class." }
            @for (arch, paper) in &sections {
                @let of_arch: Vec<_> = models.iter().filter(|m| &m.card.architecture == arch).collect();
                h2 { (arch) }
                @if of_arch.is_empty() { p { "Not shipped yet." } } @else {
                    @let intra = of_arch.iter().find(|m| m.card.protocol == crate::dataset::Protocol::Intra);
                    @let inter = of_arch.iter().find(|m| m.card.protocol == crate::dataset::Protocol::Inter);
                    @let a = metric_cells(intra.map(|m| &m.card.evaluation.metrics));
                    @let b = metric_cells(inter.map(|m| &m.card.evaluation.metrics));
                    div.scroll { table {
                        tr { th { "metric" } th { "paper (intra)" } th { "ours, intra" } th { "ours, inter" } }
                        @for i in 0..6 {
                            tr { th { (METRICS[i]) } td { (fmt(paper[i])) } td { (fmt(a[i])) } td { (fmt(b[i])) } }
                        }
                    } }
                    @for m in &of_arch {
                        h3 { (m.card.name) " (" (crate::model::catalog::protocol_name(m.card.protocol)) ", "
                             (m.card.parameters) " parameters, " (m.card.evaluation.beats) " test beats)" }
                        (confusion(&m.card.evaluation.metrics))
                        @if let Some(aami) = &m.card.evaluation.aami { (aami_table(aami)) }
                        @if let Some(n) = m.card.evaluation.abstained {
                            p { "Abstains (verdict unreadable) on " (n) " of the test beats as unlike its training beats." }
                        }
                        @for a in &m.card.augmentation { p { "Also trained on " (a) "." } }
                        div.curves {
                            (curve(m, "loss", |e| (e.loss, e.val_loss)))
                            (curve(m, "accuracy", |e| (e.accuracy, e.val_accuracy)))
                        }
                        p.legend { span.s1 { "── training" } " " span.s2 { "╌╌ validation" } }
                    }
                }
            }
        },
    )
}

fn curve(
    m: &crate::model::catalog::ShippedModel,
    what: &str,
    pick: fn(&crate::model::train::EpochStats) -> (f64, f64),
) -> Markup {
    let h = &m.card.history;
    Chart {
        width: 440.0,
        height: 220.0,
        x_label: "epoch".into(),
        y_label: what.into(),
        series: vec![
            Series {
                points: h.iter().map(|e| (e.epoch as f64, pick(e).0)).collect(),
                class: "s1",
                label: format!("training {what}"),
            },
            Series {
                points: h.iter().map(|e| (e.epoch as f64, pick(e).1)).collect(),
                class: "s2",
                label: format!("validation {what}"),
            },
        ],
        markers: Vec::new(),
        x_clock: false,
    }
    .render()
}
