//! Acknowledgements: a message is acknowledged to its source only once what it
//! carried is committed. The source creates an [`AckToken`] per message and
//! the [`Acker`] that writes them; ingest calls [`Acker::ack`] after commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

/// Identifies a received message for its acknowledgement.
#[derive(Debug)]
pub struct AckToken {
    /// Packet id of a QoS 1 message.
    pub(crate) pkid: Option<u16>,
    /// Arrival order on its connection.
    pub(crate) seq: u64,
    /// The connection it arrived on; acknowledgements for older connections are
    /// skipped (the broker resends those messages, and ingest drops the copies).
    pub(crate) connection: u64,
}

impl AckToken {
    /// A token for a message that needs no acknowledgement (tests, replays).
    pub fn none() -> Self {
        AckToken {
            pkid: None,
            seq: 0,
            connection: 0,
        }
    }
}

/// Hands acknowledgements to the source, which writes them on the connection.
///
/// rumqttc's own `ack` goes through its request queue, which its event loop
/// serves about once per ten incoming packets; under a steady flood the acks
/// fall ever further behind. The source writes these directly instead.
#[derive(Clone)]
pub struct Acker {
    /// Unbounded, but never longer than the messages in flight (each is acked once).
    pub(crate) tx: Option<mpsc::UnboundedSender<AckToken>>,
    pub(crate) connection: Arc<AtomicU64>,
}

impl Acker {
    /// An acker that acknowledges nothing (for feeding the pipeline without a broker).
    pub fn disabled() -> Self {
        Acker {
            tx: None,
            connection: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Acknowledges the message of `token`, if it came on the current connection.
    pub fn ack(&self, token: AckToken) {
        if let Some(tx) = &self.tx
            && token.pkid.is_some()
            && token.connection == self.connection.load(Ordering::Acquire)
        {
            // Fails only once the source has stopped; the broker then resends the message.
            let _ = tx.send(token);
        }
    }
}
