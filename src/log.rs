//! What the replicated log holds: entries, and the records the WAL stores them in.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One WAL record. New kinds are added at the end only (see `codec`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WalRecord {
    Entry(LogEntry),
}

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub index: u64,
    pub term: u64,
    /// The proposer's clock when it proposed this entry (never decreasing along the log):
    /// relative TTLs become absolute with it, and expiry is judged by it, on every replica.
    pub ts_ms: u64,
    pub payload: EntryPayload,
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
