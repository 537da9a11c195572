//! The batcher: groups beats from every device into inference batches,
//! closing a batch when it holds `max_batch` beats or its first item has waited
//! `max_wait`, whichever comes first. Many patients' beats share one forward
//! pass, which is what makes CPU inference keep up with a fleet.

use super::{Batch, Item, send_counted};
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{Receiver, Sender};

/// Runs until `rx` closes, then sends the last partial batch.
pub async fn run(
    mut rx: Receiver<Item>,
    tx: Sender<Batch>,
    metrics: Arc<Metrics>,
    max_batch: usize,
    max_wait: Duration,
) {
    let mut id = 0u64;
    while let Some(first) = rx.recv().await {
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut beats = usize::from(matches!(first, Item::Beat(_)));
        let mut items = vec![first];
        let mut open = true;
        while beats < max_batch {
            tokio::select! {
                item = rx.recv() => match item {
                    Some(item) => {
                        beats += usize::from(matches!(item, Item::Beat(_)));
                        items.push(item);
                    }
                    None => { open = false; break; }
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        metrics
            .queue_depth
            .with_label_values(&["batcher"])
            .set(rx.len() as i64);
        if !send_counted(&tx, Batch { id, items }, &metrics, "inference").await {
            return;
        }
        id += 1;
        if !open {
            break;
        }
    }
}
