//! Every binary encoding quorum writes, in one place: WAL records (and, later, peer messages)
//! as postcard, whose wire format is stable and documented. Formats are versioned: a WAL
//! segment header carries [`WAL_FORMAT_VERSION`], and new enum variants are only ever added
//! at the end, so old records keep decoding.

use crate::log::{LogEntry, WalRecord};
use serde::Serialize;
use thiserror::Error;

/// The version of the record payloads in a WAL segment (see `wal::record`).
///
/// Version 2 (issue 3) added entry origins and hard-state records; version 1 segments are
/// refused with a clear error (no release ever wrote them).
pub const WAL_FORMAT_VERSION: u32 = 2;

#[derive(Debug, Error)]
#[error("cannot decode a WAL record: {0}")]
pub struct DecodeError(#[from] postcard::Error);

pub fn encode_wal_record(record: &WalRecord) -> Vec<u8> {
    postcard::to_allocvec(record).expect("encoding to a Vec cannot fail")
}

/// [`WalRecord`] by reference, so that the writer encodes entries without copying them. It
/// must encode exactly as `WalRecord` does (a test checks it): same variants, same order.
#[derive(Serialize)]
enum WalRecordRef<'a> {
    Entry(&'a LogEntry),
}

/// Appends the encoding of `WalRecord::Entry(entry)` to `out`.
pub fn encode_entry_record_into(entry: &LogEntry, out: &mut Vec<u8>) {
    let taken = std::mem::take(out);
    *out = postcard::to_extend(&WalRecordRef::Entry(entry), taken)
        .expect("encoding to a Vec cannot fail");
}

pub fn decode_wal_record(bytes: &[u8]) -> Result<WalRecord, DecodeError> {
    Ok(postcard::from_bytes(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{EntryPayload, LogEntry};
    use bytes::Bytes;

    #[test]
    fn records_round_trip() {
        let record = WalRecord::Entry(LogEntry {
            index: 7,
            term: 2,
            ts_ms: 1_700_000_000_123,
            origin: Some(crate::log::Origin {
                node: 2,
                incarnation: 99,
                seq: 5,
            }),
            payload: EntryPayload::Command {
                db: 3,
                argv: vec![Bytes::from("SET"), Bytes::from("k"), Bytes::from("v")],
            },
        });
        let bytes = encode_wal_record(&record);
        assert_eq!(decode_wal_record(&bytes).unwrap(), record);
        let WalRecord::Entry(entry) = &record else {
            unreachable!()
        };
        let mut by_ref = Vec::new();
        encode_entry_record_into(entry, &mut by_ref);
        assert_eq!(by_ref, bytes, "the by-reference encoding is the same");
        assert!(decode_wal_record(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn the_encoding_is_stable() {
        // A golden encoding: if this changes, old WALs stop reading. Bump the version instead.
        let record = WalRecord::Entry(LogEntry {
            index: 1,
            term: 1,
            ts_ms: 2,
            origin: None,
            payload: EntryPayload::Noop,
        });
        assert_eq!(encode_wal_record(&record), vec![0, 1, 1, 2, 0, 0]);
        let hard_state = WalRecord::HardState(crate::log::HardState {
            term: 3,
            vote: Some(2),
        });
        assert_eq!(encode_wal_record(&hard_state), vec![1, 3, 1, 2]);
    }
}
