//! WAL recovery: decides, from the bytes of the segments alone, what to keep. Pure.
//!
//! # Decision table
//!
//! Recovery walks each segment's records in order. At the first offset `X` where no valid
//! record starts, it looks at what the rest of the segment holds:
//!
//! | what is at `X`                                     | last segment          | earlier segment |
//! |----------------------------------------------------|-----------------------|-----------------|
//! | nothing: the records end exactly at end of file    | clean end, keep all   | clean end       |
//! | fewer than 8 bytes (a torn length field)           | torn tail: truncate X | corruption      |
//! | a length reaching past end of file, nothing valid after | torn tail: truncate X | corruption |
//! | a checksum mismatch, nothing valid after           | torn tail: truncate X | corruption      |
//! | zeros up to end of file (a file grown before its data landed) | torn tail: truncate X | corruption |
//! | any bad record with a valid record somewhere after it | corruption         | corruption      |
//! | a missing, unreadable or foreign segment header    | corruption            | corruption      |
//!
//! Why: appends are not atomic, so a crash may leave the end of the last segment half written
//! (records after the last fsync were never acknowledged, so dropping them loses nothing).
//! Segments are fsynced whole before the next one is started, so an earlier segment can never
//! have a torn end. A bad record followed by a good one is not the shape a crash leaves: it is
//! corruption of data that may have been acknowledged, and silently dropping it (and everything
//! after it) could lose acknowledged writes. Recovery refuses instead and says where.
//!
//! "Valid record somewhere after" is searched byte by byte from `X + 1` (a record whose length
//! and checksum both verify); the cost is bounded by the size of the damaged tail.

use super::record::{FrameAt, HEADER_BYTES, HeaderError, decode_header, frame_at};
use std::ops::Range;
use thiserror::Error;

/// Why the last segment's tail was cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TornTail {
    /// Fewer than 8 bytes of a frame header.
    TruncatedHeader,
    /// A length field pointing past the end of the file.
    LengthPastEnd,
    /// The last record's checksum does not match.
    ChecksumMismatch,
    /// Zero bytes from the cut to the end of the file.
    ZeroFill,
}

/// The outcome for one segment that recovery accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentScan {
    pub seq: u64,
    /// Payload ranges of the valid records, in order.
    pub records: Vec<Range<usize>>,
    /// Where the valid data ends (header plus whole records).
    pub valid_len: usize,
    /// Set when the tail from `valid_len` to the end of the file must be truncated.
    pub torn: Option<TornTail>,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CorruptionKind {
    #[error("segment header: {0}")]
    Header(HeaderError),
    #[error("record checksum mismatch, and valid records follow it (at offset {next_valid})")]
    ChecksumBeforeTail { next_valid: usize },
    #[error(
        "record length reaches past the end of the file, and valid records follow it (at offset {next_valid})"
    )]
    LengthBeforeTail { next_valid: usize },
    #[error("a zero-length record, and valid records follow it (at offset {next_valid})")]
    ZeroBeforeTail { next_valid: usize },
    #[error("a damaged record at the end of a segment that is not the last one")]
    DamagedEarlierSegment,
    #[error("segment sequence numbers are not consecutive (expected {expected}, found {found})")]
    MissingSegment { expected: u64, found: u64 },
}

/// Corruption that recovery will not repair on its own.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error(
    "WAL corruption in {file} at byte offset {offset}: {kind}. quorum will not start on a damaged \
     log, because dropping this record and those after it could lose acknowledged writes. Run \
     `quorum check-wal <dir>` for a full report; then restore this node's data directory from a \
     backup or from a healthy replica. `check-wal --fix` only ever truncates a torn tail, never this."
)]
pub struct Corruption {
    pub file: String,
    pub offset: usize,
    pub kind: CorruptionKind,
}

/// Scans one segment. `is_last` allows a torn tail to be cut.
pub fn scan_segment(bytes: &[u8], is_last: bool) -> Result<SegmentScan, (usize, CorruptionKind)> {
    let header = decode_header(bytes).map_err(|e| (0, CorruptionKind::Header(e)))?;
    let mut records = Vec::new();
    let mut at = HEADER_BYTES;
    loop {
        if at == bytes.len() {
            return Ok(SegmentScan {
                seq: header.seq,
                records,
                valid_len: at,
                torn: None,
            });
        }
        let found = frame_at(bytes, at);
        let torn = match found {
            FrameAt::Valid { payload_start, end } => {
                records.push(payload_start..end);
                at = end;
                continue;
            }
            FrameAt::TruncatedHeader => TornTail::TruncatedHeader,
            FrameAt::PastEnd { .. } => TornTail::LengthPastEnd,
            FrameAt::ZeroLength if bytes[at..].iter().all(|&b| b == 0) => TornTail::ZeroFill,
            // A zero length followed by garbage: a frame header that never fully landed.
            FrameAt::ZeroLength => TornTail::ChecksumMismatch,
            FrameAt::BadChecksum { .. } => TornTail::ChecksumMismatch,
        };
        if let Some(next_valid) = next_valid_record(bytes, at + 1) {
            let kind = match found {
                FrameAt::PastEnd { .. } | FrameAt::TruncatedHeader => {
                    CorruptionKind::LengthBeforeTail { next_valid }
                }
                FrameAt::ZeroLength => CorruptionKind::ZeroBeforeTail { next_valid },
                _ => CorruptionKind::ChecksumBeforeTail { next_valid },
            };
            return Err((at, kind));
        }
        if !is_last {
            return Err((at, CorruptionKind::DamagedEarlierSegment));
        }
        return Ok(SegmentScan {
            seq: header.seq,
            records,
            valid_len: at,
            torn: Some(torn),
        });
    }
}

/// The first offset at or after `from` where a valid record starts.
fn next_valid_record(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes
        .len()
        .saturating_sub(super::record::FRAME_HEADER_BYTES))
        .find(|&at| matches!(frame_at(bytes, at), FrameAt::Valid { .. }))
}

/// A segment file as recovery sees it.
pub struct SegmentImage<'a> {
    pub name: String,
    pub bytes: &'a [u8],
}

/// Scans every segment, in order. Only the last may have a torn tail; sequence numbers must
/// be consecutive.
pub fn scan_all(segments: &[SegmentImage]) -> Result<Vec<SegmentScan>, Corruption> {
    let mut scans: Vec<SegmentScan> = Vec::with_capacity(segments.len());
    for (i, segment) in segments.iter().enumerate() {
        let scan = scan_after(scans.last(), segment, i + 1 == segments.len())?;
        scans.push(scan);
    }
    Ok(scans)
}

/// Scans one segment of a sequence: `previous` is the scan of the segment before it (none for
/// the first), and only the last segment may end in a torn tail.
pub fn scan_after(
    previous: Option<&SegmentScan>,
    segment: &SegmentImage,
    is_last: bool,
) -> Result<SegmentScan, Corruption> {
    let scan = scan_segment(segment.bytes, is_last).map_err(|(offset, kind)| Corruption {
        file: segment.name.clone(),
        offset,
        kind,
    })?;
    if let Some(previous) = previous.filter(|p| scan.seq != p.seq + 1) {
        return Err(Corruption {
            file: segment.name.clone(),
            offset: 0,
            kind: CorruptionKind::MissingSegment {
                expected: previous.seq + 1,
                found: scan.seq,
            },
        });
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    //! The decision table, row by row.
    use super::super::record::{encode_frame, encode_header};
    use super::*;

    fn segment(seq: u64, payloads: &[&[u8]]) -> Vec<u8> {
        let mut bytes = encode_header(seq).to_vec();
        for p in payloads {
            encode_frame(p, bytes.len() as u64, &mut bytes);
        }
        bytes
    }

    const RECORDS: [&[u8]; 3] = [b"first", b"second", b"third"];

    #[test]
    fn clean_end_keeps_everything() {
        let bytes = segment(0, &RECORDS);
        let scan = scan_segment(&bytes, true).unwrap();
        assert_eq!(scan.records.len(), 3);
        assert_eq!(scan.valid_len, bytes.len());
        assert_eq!(scan.torn, None);
    }

    #[test]
    fn torn_length_at_the_tail_is_truncated() {
        let full = segment(0, &RECORDS);
        let two = segment(0, &RECORDS[..2]).len();
        for cut in two + 1..two + 8 {
            let scan = scan_segment(&full[..cut], true).unwrap();
            assert_eq!(scan.records.len(), 2);
            assert_eq!(scan.valid_len, two);
            assert_eq!(scan.torn, Some(TornTail::TruncatedHeader));
        }
        for cut in two + 8..full.len() {
            let scan = scan_segment(&full[..cut], true).unwrap();
            assert_eq!(scan.torn, Some(TornTail::LengthPastEnd), "cut {cut}");
            assert_eq!(scan.valid_len, two);
        }
    }

    #[test]
    fn checksum_mismatch_in_the_last_record_is_truncated() {
        let mut bytes = segment(0, &RECORDS);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let scan = scan_segment(&bytes, true).unwrap();
        assert_eq!(scan.records.len(), 2);
        assert_eq!(scan.torn, Some(TornTail::ChecksumMismatch));
    }

    #[test]
    fn zero_filled_tail_is_truncated() {
        let mut bytes = segment(0, &RECORDS);
        let clean = bytes.len();
        bytes.extend_from_slice(&[0u8; 4096]);
        let scan = scan_segment(&bytes, true).unwrap();
        assert_eq!(scan.records.len(), 3);
        assert_eq!(scan.valid_len, clean);
        assert_eq!(scan.torn, Some(TornTail::ZeroFill));
    }

    #[test]
    fn corruption_before_the_tail_is_refused() {
        let mut bytes = segment(0, &RECORDS);
        let first_payload = HEADER_BYTES + 8;
        bytes[first_payload] ^= 0x01;
        let (offset, kind) = scan_segment(&bytes, true).unwrap_err();
        assert_eq!(offset, HEADER_BYTES);
        assert!(matches!(kind, CorruptionKind::ChecksumBeforeTail { .. }));
        // A flipped length field in the middle is caught too.
        let mut bytes = segment(0, &RECORDS);
        bytes[HEADER_BYTES + 3] = 0x7f;
        let (offset, kind) = scan_segment(&bytes, true).unwrap_err();
        assert_eq!(offset, HEADER_BYTES);
        assert!(matches!(kind, CorruptionKind::LengthBeforeTail { .. }));
    }

    #[test]
    fn a_torn_tail_in_an_earlier_segment_is_corruption() {
        let full = segment(0, &RECORDS);
        let torn = &full[..full.len() - 2];
        let next = segment(1, &RECORDS);
        let err = scan_all(&[
            SegmentImage {
                name: "a".into(),
                bytes: torn,
            },
            SegmentImage {
                name: "b".into(),
                bytes: &next,
            },
        ])
        .unwrap_err();
        assert_eq!(err.file, "a");
        assert_eq!(err.kind, CorruptionKind::DamagedEarlierSegment);
        assert!(err.to_string().contains("check-wal"));
    }

    #[test]
    fn bad_headers_and_gaps_are_corruption() {
        let bytes = segment(0, &RECORDS);
        assert!(matches!(
            scan_segment(&bytes[..10], true),
            Err((0, CorruptionKind::Header(HeaderError::Short(10))))
        ));
        let a = segment(0, &RECORDS);
        let c = segment(2, &RECORDS);
        let err = scan_all(&[
            SegmentImage {
                name: "a".into(),
                bytes: &a,
            },
            SegmentImage {
                name: "c".into(),
                bytes: &c,
            },
        ])
        .unwrap_err();
        assert_eq!(
            err.kind,
            CorruptionKind::MissingSegment {
                expected: 1,
                found: 2
            }
        );
    }
}
