//! The properties the cargo-fuzz targets check, callable from plain Rust so that `cargo test`
//! replays every corpus file on the stable toolchain (see `tests/fuzz_corpora.rs`).
//!
//! Each `check_*` function panics when its property fails.

use crate::codec;
use crate::replica::Message;
use crate::resp::{self, Frame, Limits, Protocol};
#[cfg(any(test, feature = "testing"))]
use crate::testing::workload::{ScenarioConfig, run_scripted};
use crate::wal::record::{HEADER_BYTES, encode_frame, encode_header};
use crate::wal::recovery::scan_segment;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A global allocator that remembers the largest single allocation, so a fuzz target (or a
/// test binary) can check that no allocation was sized from a declared length.
pub struct CountingAlloc;

static LARGEST_ALLOCATION: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Resets and reads the largest allocation seen (meaningful only under [`CountingAlloc`]).
pub fn take_largest_allocation() -> usize {
    LARGEST_ALLOCATION.swap(0, Ordering::Relaxed)
}

/// Small limits, so that the fuzzer reaches them.
fn fuzz_limits() -> Limits {
    Limits {
        bulk_len_max: 1 << 20,
        multibulk_len_max: 1 << 20,
        depth_max: 32,
        inline_len_max: 4096,
    }
}

/// Equality that treats NaN as equal to itself and the two nulls as one (RESP3 encodes both
/// as `_`).
fn same(a: &Frame, b: &Frame) -> bool {
    match (a, b) {
        (Frame::Double(x), Frame::Double(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Frame::Null | Frame::NullArray, Frame::Null | Frame::NullArray) => true,
        // The encoder turns line breaks in error texts into spaces.
        (Frame::Error(x), Frame::Error(y)) => {
            x.replace(['\r', '\n'], " ") == y.replace(['\r', '\n'], " ")
        }
        (Frame::Array(x), Frame::Array(y))
        | (Frame::Set(x), Frame::Set(y))
        | (Frame::Push(x), Frame::Push(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Frame::Map(x), Frame::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| same(ka, kb) && same(va, vb))
        }
        _ => a == b,
    }
}

/// `resp_decode`: no panic; a frame decodes the same however the input is split; re-encoding
/// a decoded frame decodes to the same frame; the same for client requests.
pub fn check_resp_decode(data: &[u8]) {
    let limits = fuzz_limits();
    let whole = resp::decode_frame(data, &limits);
    for cut in split_points(data.len()) {
        let part = resp::decode_frame(&data[..cut], &limits);
        match (&whole, &part) {
            (Ok(Some((frame, used))), Ok(Some((pframe, pused)))) => {
                assert!(
                    cut >= *used,
                    "a prefix decoded a frame the whole did not end at"
                );
                assert!(
                    same(frame, pframe) && used == pused,
                    "split at {cut} changed the frame"
                );
            }
            (Ok(Some((_, used))), Ok(None)) => assert!(cut < *used),
            (Ok(Some((_, used))), Err(e)) => {
                panic!("prefix of {cut} bytes (frame needs {used}) is an error: {e}")
            }
            // A prefix of an input that needs more bytes needs more bytes too.
            (Ok(None), part) => assert_eq!(part, &Ok(None), "prefix {cut} of an incomplete frame"),
            (Err(_), _) => {}
        }
    }
    if let Ok(Some((frame, _))) = &whole {
        let mut encoded = Vec::new();
        resp::encode(frame, Protocol::Resp3, &mut encoded);
        let limits = Limits {
            bulk_len_max: usize::MAX / 4,
            multibulk_len_max: usize::MAX / 4,
            inline_len_max: usize::MAX / 4,
            ..limits
        };
        let (again, used) = resp::decode_frame(&encoded, &limits)
            .expect("re-encoded frame decodes")
            .expect("re-encoded frame is complete");
        assert_eq!(used, encoded.len());
        assert!(same(frame, &again), "{frame:?} re-encoded as {again:?}");
    }
    let request = resp::decode_request(data, &limits);
    // Fed through one incremental parser, growing prefixes end in the same request.
    let mut parser = resp::RequestParser::default();
    for cut in split_points(data.len()).into_iter().chain([data.len()]) {
        match parser.parse(&data[..cut], &limits) {
            Ok(None) => continue,
            Ok(Some(found)) => {
                assert_eq!(
                    Ok(Some(found)),
                    request.clone(),
                    "incremental parse at {cut}"
                );
                break;
            }
            Err(e) => {
                assert!(request.is_err(), "incremental parse failed at {cut}: {e}");
                break;
            }
        }
    }
    for cut in split_points(data.len()) {
        let part = resp::decode_request(&data[..cut], &limits);
        if let (Ok(Some((args, used))), Ok(Some((pargs, pused)))) = (&request, &part) {
            assert_eq!((args, used), (pargs, pused), "request split at {cut}");
        }
        if let (Ok(Some((_, used))), Err(e)) = (&request, &part) {
            assert!(
                *used > cut,
                "prefix {cut} of a complete request is an error: {e}"
            );
            panic!("a prefix of a valid request must need more bytes, not fail: {e}");
        }
    }
}

fn split_points(len: usize) -> Vec<usize> {
    if len <= 64 {
        (0..len).collect()
    } else {
        (0..64).map(|i| i * len / 64).collect()
    }
}

/// A tiny deterministic generator for the WAL scenario.
struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
    fn next_u16(&mut self) -> u16 {
        u16::from_le_bytes([self.next(), self.next()])
    }
}

/// `wal_recovery`: a segment gets records, a prefix of them synced; a crash keeps any prefix
/// of the unsynced bytes (optionally followed by zeros), and bytes may be flipped. Recovery
/// never panics; without flips it keeps every synced record and never errors; with flips it
/// never returns a damaged record, reports damage followed by an intact record as an error,
/// and drops records only where the damage is.
pub fn check_wal_recovery(data: &[u8]) {
    let mut input = Bytes { data, at: 0 };
    let count = (input.next() % 24) as usize;
    let synced = if count == 0 {
        0
    } else {
        input.next() as usize % (count + 1)
    };
    let mut segment = encode_header(1).to_vec();
    let mut starts = Vec::new();
    let mut payloads = Vec::new();
    for i in 0..count {
        let len = 1 + (input.next() as usize % 200);
        let payload: Vec<u8> = (0..len)
            .map(|j| (i * 31 + j * 7) as u8 ^ input.next())
            .collect();
        starts.push(segment.len());
        encode_frame(&payload, segment.len() as u64, &mut segment);
        payloads.push(payload);
    }
    let synced_len = starts.get(synced).copied().unwrap_or(segment.len());
    // The crash keeps a prefix of the unsynced bytes.
    let unsynced = segment.len() - synced_len;
    let kept = if unsynced == 0 {
        0
    } else {
        input.next_u16() as usize % (unsynced + 1)
    };
    segment.truncate(synced_len + kept);
    if input.next().is_multiple_of(4) {
        segment.extend(std::iter::repeat_n(0u8, input.next() as usize * 8));
    }
    let flips = input.next() % 4;
    let before_flips = segment.clone();
    for _ in 0..flips {
        let at = input.next_u16() as usize;
        let mask = input.next() | 1;
        if segment.len() > HEADER_BYTES {
            let at = HEADER_BYTES + at % (segment.len() - HEADER_BYTES);
            segment[at] ^= mask;
        }
    }
    // The damage is where the bytes differ: two flips of one byte may cancel out.
    let flipped: Vec<usize> = (0..segment.len())
        .filter(|&i| segment[i] != before_flips[i])
        .collect();
    // Any bytes at all: no panic.
    let _ = scan_segment(data, true);
    let _ = scan_segment(data, false);
    let result = scan_segment(&segment, true);
    let record_end = |i: usize| starts[i] + 8 + payloads[i].len();
    match result {
        Ok(scan) => {
            for (i, range) in scan.records.iter().enumerate() {
                assert_eq!(
                    &segment[range.clone()],
                    &payloads[i][..],
                    "record {i} came back changed"
                );
            }
            if flipped.is_empty() {
                assert!(
                    scan.records.len() >= synced,
                    "lost a synced record without any flip"
                );
            } else if scan.records.len() < synced {
                let first_dropped = starts[scan.records.len()];
                assert!(
                    flipped.iter().all(|&at| at >= first_dropped),
                    "dropped synced records before the damage"
                );
                // Damage followed by an intact synced record must be an error, not a cut.
                let last_flip = *flipped.iter().max().unwrap();
                let intact_after = (scan.records.len()..synced)
                    .any(|i| starts[i] > last_flip && record_end(i) <= segment.len());
                assert!(!intact_after, "cut damage that an intact record follows");
            }
        }
        Err((offset, kind)) => {
            assert!(
                !flipped.is_empty() || offset >= synced_len,
                "error without damage: {kind}"
            );
            assert!(
                !flipped.is_empty(),
                "a crash alone must never look like corruption: {kind} at {offset}"
            );
        }
    }
}

/// What a peer connection's reader makes of a byte stream: the payloads of its whole frames,
/// then the error that closes the connection (if any), then how many bytes wait for more.
type PeerStream = (Vec<Vec<u8>>, Option<String>, usize);

/// Feeds `data` to the peer frame splitter in pieces cut at `cuts`, as reads would bring it.
fn split_peer_frames(data: &[u8], cuts: &[usize]) -> PeerStream {
    let mut buf = bytes::BytesMut::new();
    let mut payloads = Vec::new();
    let mut from = 0;
    for &to in cuts.iter().chain([&data.len()]) {
        buf.extend_from_slice(&data[from..to.max(from)]);
        from = to.max(from);
        loop {
            match codec::take_peer_frame(&mut buf) {
                Ok(Some(payload)) => payloads.push(payload.to_vec()),
                Ok(None) => break,
                Err(error) => return (payloads, Some(error), 0),
            }
        }
    }
    (payloads, None, buf.len())
}

/// `peer_decode`: the peer port's decoders, on any bytes. The frame splitter never panics
/// and yields the same frames and the same closing error however the bytes arrive. Each
/// payload (and the input itself, so that the fuzzer reaches the decoders without forging
/// checksums) goes through the handshake and message decoders: no panic; the fast decoder of
/// appends agrees with postcard's, value for value; a decoded message re-encodes, by both
/// encoders, to the same bytes, which decode to it again; so does a decoded handshake.
pub fn check_peer_decode(data: &[u8]) {
    let whole = split_peer_frames(data, &[]);
    for cut in split_points(data.len()) {
        assert_eq!(split_peer_frames(data, &[cut]), whole, "cut at {cut}");
    }
    let byte_by_byte: Vec<usize> = (1..data.len().min(4096)).collect();
    assert_eq!(
        split_peer_frames(data, &byte_by_byte),
        whole,
        "byte by byte"
    );
    for payload in whole.0.iter().map(Vec::as_slice).chain([data]) {
        check_peer_payload(payload);
    }
}

fn check_peer_payload(payload: &[u8]) {
    if let Ok(handshake) = codec::decode_handshake(payload) {
        let again = codec::decode_handshake(&codec::encode_handshake(&handshake));
        assert_eq!(again, Ok(handshake));
    }
    let fast = codec::decode_message(payload);
    let reference = postcard::from_bytes::<Message>(payload);
    match (&fast, &reference) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the fast decoder and postcard disagree"),
        (Err(_), Err(_)) => {}
        _ => panic!("the fast decoder says {fast:?}, postcard {reference:?}"),
    }
    let Ok(message) = fast else { return };
    let encoded = codec::encode_message(&message);
    let mut frame = Vec::new();
    codec::encode_message_frame(&message, &mut frame);
    let (payloads, error, left) = split_peer_frames(&frame, &[]);
    assert_eq!(
        (payloads.as_slice(), error, left),
        (&[encoded.clone()][..], None, 0)
    );
    assert_eq!(codec::decode_message(&encoded), Ok(message));
}

/// `core_schedule`: an in-memory cluster of the core under a fault schedule the fuzzer
/// writes (crashes, restarts, partitions, one-way cuts, message loss and duplication, slow
/// disks, clock skew, leader transfers, each in a 10 ms slice of its choosing), with clients
/// doing GET/SET/DEL/INCR. The first byte chooses 3 or 5 replicas, the next 8 the seed of
/// message timing and the workload, and the rest the faults. Every step is checked (election
/// safety, log matching, committed entries never change, leader completeness, state-machine
/// safety, the core's own invariants); then the cluster heals and must answer every request,
/// keep every acknowledged write, and have given linearizable answers.
#[cfg(any(test, feature = "testing"))]
pub fn check_core_schedule(data: &[u8]) {
    if let Some((replicas, seed, Err(violation))) = run_core_schedule(data) {
        panic!("{replicas} replicas, seed {seed}: {violation:?}");
    }
}

/// Runs a `core_schedule` input: its replica count, seed, and what the run found; `None` if
/// the input is too short to name a seed.
#[cfg(any(test, feature = "testing"))]
pub fn run_core_schedule(
    data: &[u8],
) -> Option<(
    usize,
    u64,
    Result<crate::testing::workload::ScenarioReport, crate::invariants::Violation>,
)> {
    let (&shape, rest) = data.split_first()?;
    let (seed, schedule) = rest.split_first_chunk::<8>()?;
    let replicas = if shape & 1 == 0 { 3 } else { 5 };
    let mut config = ScenarioConfig::new(replicas, u64::from_le_bytes(*seed));
    // At most 3 simulated seconds of faults (300 slices), so that an input runs in well
    // under a second.
    config.safety_ms = 3_000;
    Some((replicas, config.seed, run_scripted(&config, schedule)))
}
