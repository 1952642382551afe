//! What the replicated log holds: entries, and the records the WAL stores them in.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One WAL record. New kinds are added at the end only (see `codec`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WalRecord {
    Entry(LogEntry),
    /// Raft's hard state: the current term and the vote cast in it. Written, and fsynced,
    /// before any message that depends on it is sent. The last one in the log is the state.
    HardState(HardState),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: u64,
    pub vote: Option<u64>,
}

/// Who proposed an entry: the replica, its incarnation (a random number drawn at each start)
/// and the proposal's sequence number there. The state machine applies an origin once, so a
/// replica may send a write to the leader again without it running twice; the proposing
/// replica answers its client when it applies the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Origin {
    pub node: u64,
    pub incarnation: u64,
    pub seq: u64,
}

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub index: u64,
    pub term: u64,
    /// The proposer's clock when it proposed this entry (never decreasing along the log):
    /// relative TTLs become absolute with it, and expiry is judged by it, on every replica.
    pub ts_ms: u64,
    /// `None` for entries the leader proposes on its own (no-op, expiry).
    pub origin: Option<Origin>,
    /// Shared: the proposing replica keeps it until the write is applied (to send it again
    /// should the leader change), and the log, the WAL writer and appends hold the entry.
    pub payload: Arc<EntryPayload>,
}

impl LogEntry {
    /// About how much memory the entry holds: its arguments, their handles, and the entry's
    /// own header. An estimate (allocators round up), for the bounds on entries in memory
    /// (`ReplicaConfig::log_memory_bytes_max`).
    pub fn memory_bytes(&self) -> usize {
        // The entry, its payload and their reference counts.
        const ENTRY_BYTES: usize = 128;
        const ARG_BYTES: usize = std::mem::size_of::<Bytes>();
        // A watched key's handle, database and version; a queued command's database and
        // vector.
        const WATCH_BYTES: usize = 48;
        const QUEUED_BYTES: usize = 32;
        let args = |argv: &[Bytes]| argv.iter().map(|a| a.len() + ARG_BYTES).sum::<usize>();
        ENTRY_BYTES
            + match self.payload.as_ref() {
                EntryPayload::Noop => 0,
                EntryPayload::Command { argv, .. } => args(argv),
                EntryPayload::Transaction { watches, commands } => {
                    watches
                        .iter()
                        .map(|w| w.key.len() + WATCH_BYTES)
                        .sum::<usize>()
                        + commands
                            .iter()
                            .map(|(_, argv)| args(argv) + QUEUED_BYTES)
                            .sum::<usize>()
                }
                EntryPayload::Expire { keys } => {
                    keys.iter().map(|(_, k)| k.len() + ARG_BYTES + 8).sum()
                }
            }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum EntryPayload {
    /// Appended by a new leader to commit entries of earlier terms.
    Noop,
    /// One write command, as the client sent it, against database `db`.
    Command { db: u8, argv: Vec<Bytes> },
    /// A MULTI/EXEC block: applied whole or not at all. `watches` are the WATCHed keys with the
    /// version each had when watched; if any changed, nothing runs and EXEC replies null.
    Transaction {
        watches: Vec<WatchedKey>,
        commands: Vec<(u8, Vec<Bytes>)>,
    },
    /// Active expiry, proposed by the leader: delete these keys if still expired at `ts_ms`.
    Expire { keys: Vec<(u8, Bytes)> },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchedKey {
    pub db: u8,
    pub key: Bytes,
    /// The key's version (index of its last write) when watched; `None` if it was absent.
    pub version: Option<u64>,
}
