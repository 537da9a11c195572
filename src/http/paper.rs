//! The seed paper's published results, which the models page and the API set
//! beside ours.

/// The seed paper's published test results (accuracy, precision, recall, F1,
/// kappa, ROC AUC) per architecture; `None` where the paper gives none.
pub const PAPER: [(&str, [Option<f64>; 6]); 3] = [
    (
        "cnn-lstm",
        [
            Some(0.9731),
            Some(0.8943),
            Some(0.9571),
            Some(0.9246),
            Some(0.9083),
            Some(0.9668),
        ],
    ),
    (
        "cnn-lstm-dropout",
        [Some(0.9633), None, None, Some(0.8998), None, None],
    ),
    (
        "transformer",
        [Some(0.9635), None, None, Some(0.8975), None, None],
    ),
];

/// The names of [`PAPER`]'s six numbers, in order, as the pages show them.
pub const METRICS: [&str; 6] = ["accuracy", "precision", "recall", "F1", "kappa", "ROC AUC"];
