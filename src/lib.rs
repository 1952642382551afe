//! quorum: a Redis-compatible key-value database whose replicas agree before they answer.
//!
//! The core (`resp`, `command`, `keyspace`, `wal` framing and recovery, `replica`) is pure and
//! deterministic: it never touches the clock, the network, the file system or unseeded
//! randomness (a test in `tests/core_purity.rs` enforces it). The `node` adapter drives it on
//! tokio, or on madsim when built with `--cfg madsim`.

pub mod codec;
pub mod command;
pub mod command_docs;
#[doc(hidden)]
pub mod fuzzing;
pub mod invariants;
pub mod keyspace;
pub mod linearizability;
pub mod log;
pub mod node;
pub mod replica;
pub mod resp;
pub mod rng;
pub mod session;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod wal;
