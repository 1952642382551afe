//! WAL framing: the segment header and the `len | crc32 | payload` record frame. Pure.
//!
//! ```text
//! segment := header record*
//! header  := magic "QRMWAL\0\n" (8) | format version u32 LE | segment seq u64 LE | crc32 u32 LE
//! record  := len u32 LE | crc32 u32 LE | payload (len bytes)
//! ```
//! A record's checksum covers its file offset, its length field and its payload: a torn or
//! flipped length is caught as surely as a torn payload, and a record is valid only where it
//! was written, so bytes that merely look like a record (a client's value that contains a
//! well-formed frame, a record from elsewhere) never pass for one during recovery.

use crate::codec::WAL_FORMAT_VERSION;
use thiserror::Error;

pub const SEGMENT_MAGIC: &[u8; 8] = b"QRMWAL\0\n";
pub const HEADER_BYTES: usize = 24;
pub const FRAME_HEADER_BYTES: usize = 8;
/// The largest payload a record may carry. Requests are bounded well below this by
/// `proto-max-bulk-len` and the query buffer limit.
pub const RECORD_BYTES_MAX: usize = u32::MAX as usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub version: u32,
    pub seq: u64,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HeaderError {
    #[error("the file is shorter than a segment header ({0} bytes)")]
    Short(usize),
    #[error("bad magic: not a quorum WAL segment")]
    BadMagic,
    #[error("the header checksum does not match")]
    BadChecksum,
    #[error(
        "WAL format version {0} is not supported (this build reads version {WAL_FORMAT_VERSION})"
    )]
    UnsupportedVersion(u32),
}

pub fn encode_header(seq: u64) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&WAL_FORMAT_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32fast::hash(&h[..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

pub fn decode_header(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
    if bytes.len() < HEADER_BYTES {
        return Err(HeaderError::Short(bytes.len()));
    }
    if &bytes[..8] != SEGMENT_MAGIC {
        return Err(HeaderError::BadMagic);
    }
    let crc = u32::from_le_bytes(bytes[20..24].try_into().unwrap());
    if crc32fast::hash(&bytes[..20]) != crc {
        return Err(HeaderError::BadChecksum);
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    if version != WAL_FORMAT_VERSION {
        return Err(HeaderError::UnsupportedVersion(version));
    }
    Ok(SegmentHeader {
        version,
        seq: u64::from_le_bytes(bytes[12..20].try_into().unwrap()),
    })
}

fn frame_crc(offset: u64, len_bytes: &[u8; 4], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&offset.to_le_bytes());
    h.update(len_bytes);
    h.update(payload);
    h.finalize()
}

/// Appends one framed record to `out`; `offset` is where it will sit in its segment file.
pub fn encode_frame(payload: &[u8], offset: u64, out: &mut Vec<u8>) {
    assert!(
        !payload.is_empty() && payload.len() <= RECORD_BYTES_MAX,
        "record payloads are 1..=RECORD_BYTES_MAX bytes"
    );
    let len = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&frame_crc(offset, &len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Frames a payload in place: `buf` holds 8 reserved bytes followed by the payload, and will
/// sit at `offset` in its segment file.
pub fn seal_frame(buf: &mut [u8], offset: u64) {
    let payload_len = buf.len() - FRAME_HEADER_BYTES;
    assert!(
        (1..=RECORD_BYTES_MAX).contains(&payload_len),
        "record payloads are 1..=RECORD_BYTES_MAX bytes"
    );
    let len = (payload_len as u32).to_le_bytes();
    let crc = frame_crc(offset, &len, &buf[FRAME_HEADER_BYTES..]);
    buf[..4].copy_from_slice(&len);
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// What lies at an offset of a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameAt {
    /// A valid record: its payload is `bytes[payload_start..end]`.
    Valid { payload_start: usize, end: usize },
    /// Fewer than 8 bytes remain: a frame header cut short.
    TruncatedHeader,
    /// The length field says the record runs past the end of the data.
    PastEnd { len: usize },
    /// A length of zero: never written by quorum (zero-filled space looks like this).
    ZeroLength,
    /// The bytes are all there but the checksum does not match.
    BadChecksum { len: usize },
}

/// Reads the frame at `at` without allocating (the length is checked against the data
/// before anything is sized from it).
pub fn frame_at(bytes: &[u8], at: usize) -> FrameAt {
    let rest = &bytes[at.min(bytes.len())..];
    if rest.len() < FRAME_HEADER_BYTES {
        return FrameAt::TruncatedHeader;
    }
    let len_bytes: [u8; 4] = rest[..4].try_into().unwrap();
    let len = u32::from_le_bytes(len_bytes) as usize;
    let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap());
    if len == 0 {
        return FrameAt::ZeroLength;
    }
    if len > rest.len() - FRAME_HEADER_BYTES {
        return FrameAt::PastEnd { len };
    }
    let payload = &rest[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len];
    // The mutation `bug-ignore-checksum` (the simulation must catch it) trusts every frame.
    if frame_crc(at as u64, &len_bytes, payload) != crc && !cfg!(feature = "bug-ignore-checksum") {
        return FrameAt::BadChecksum { len };
    }
    FrameAt::Valid {
        payload_start: at + FRAME_HEADER_BYTES,
        end: at + FRAME_HEADER_BYTES + len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_reject_damage() {
        let h = encode_header(42);
        assert_eq!(
            decode_header(&h),
            Ok(SegmentHeader {
                version: WAL_FORMAT_VERSION,
                seq: 42
            })
        );
        let mut bad = h;
        bad[13] ^= 1;
        assert_eq!(decode_header(&bad), Err(HeaderError::BadChecksum));
        assert_eq!(decode_header(&h[..10]), Err(HeaderError::Short(10)));
        let mut other = h;
        other[0] = b'X';
        assert_eq!(decode_header(&other), Err(HeaderError::BadMagic));
    }

    #[test]
    fn frames_are_checked() {
        let mut buf = Vec::new();
        encode_frame(b"hello", 0, &mut buf);
        assert_eq!(
            frame_at(&buf, 0),
            FrameAt::Valid {
                payload_start: 8,
                end: 13
            }
        );
        let mut sealed = vec![0u8; 8];
        sealed.extend_from_slice(b"hello");
        seal_frame(&mut sealed, 0);
        assert_eq!(sealed, buf);
        // The same bytes elsewhere in a file are not a record.
        let mut moved = vec![0u8; 3];
        moved.extend_from_slice(&buf);
        assert_eq!(frame_at(&moved, 3), FrameAt::BadChecksum { len: 5 });
        assert_eq!(frame_at(&buf[..7], 0), FrameAt::TruncatedHeader);
        assert_eq!(frame_at(&buf[..12], 0), FrameAt::PastEnd { len: 5 });
        buf[10] ^= 0x40;
        assert_eq!(frame_at(&buf, 0), FrameAt::BadChecksum { len: 5 });
        assert_eq!(frame_at(&[0u8; 16], 0), FrameAt::ZeroLength);
        // A huge declared length is refused by comparison, not by allocation.
        assert!(matches!(
            frame_at(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1], 0),
            FrameAt::PastEnd { .. }
        ));
    }
}
