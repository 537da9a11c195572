//! Durable storage of devices, raw signal, stream segments and classified beats.
//!
//! One [`Store`] trait, two implementations: [`PgStore`] (Postgres, bulk
//! writes with `UNNEST`) for production and [`SqliteStore`] (a file) as the
//! default that needs nothing installed. Both share one test suite
//! (`tests/store.rs`).
//!
//! Every write is idempotent: chunks are keyed by (device, stream, seq), beats
//! by (device, R-peak time), so a message redelivered after a crash, or a
//! segment re-analysed on restart, never stores anything twice.

//!
//! - [`rows`]: what is stored and returned;
//! - [`interface`]: the [`Store`] trait and [`StoreError`];
//! - [`any`]: [`AnyStore`], the configured one of the two;
//! - [`signal`]: raw signal as stored (the device's counts, delta-coded);
//! - [`beat_block`]: beats packed by segment once they are past review's hot window;
//! - `codec`: the varints and zstd both packed layouts use;
//! - `shared`: the SQL both stores run, written once; `postgres` and `sqlite`: the rest.

#[macro_use]
mod shared;
mod any;
pub mod beat_block;
mod codec;
mod interface;
mod postgres;
mod rows;
pub mod signal;
mod sqlite;

pub use any::AnyStore;
pub use interface::{Store, StoreError};
pub use postgres::PgStore;
pub use rows::*;
pub use sqlite::SqliteStore;
