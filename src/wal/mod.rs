//! The write-ahead log: segment files of checksummed records, reached through [`Disk`].
//!
//! `record` (framing) and `recovery` (the decision table) are pure; this module does the I/O:
//! opening and recovering a directory, appending, syncing, starting new segments, and the
//! `check-wal` report and fix.
//!
//! Durability rules kept here: a new segment is created whole and durable (temp file, fsync,
//! rename, fsync the directory) before any record goes into it; a segment is fsynced and cut
//! to its last record before the next one is started, so only the last segment can have a
//! torn tail; a failed append is taken back so nothing half-written is ever followed by good
//! records; a failed fsync is reported as fatal and never retried.
//!
//! Preallocation: the last segment is grown ahead of the records in zero-filled chunks
//! ([`WalOptions::prealloc_bytes`]). Overwriting blocks that already exist lets `fdatasync` skip the
//! file-size metadata update that an append needs, which makes every group commit cheaper
//! (measured about 1.7x on this machine's ext4). Recovery reads the zeros after the last
//! record as the "zero-filled tail" row of its decision table and keeps them as free space.

pub mod disk;
pub mod record;
pub mod recovery;

use crate::codec::{self, DecodeError};
use crate::log::WalRecord;
pub use disk::{Disk, DiskFile, FsDisk};
use recovery::{Corruption, SegmentImage, TornTail};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

pub const SEGMENT_SUFFIX: &str = ".wal";
/// Written (durably) in the WAL directory before recovery cuts a damaged tail, and removed by
/// the node once it no longer needs to know: in a cluster, once it has caught up with a leader
/// (the cut may have held acknowledged entries, so until then it must not vote). Written before
/// the cut, so that a crash between the two cannot hide the cut.
pub const TAIL_CUT_MARKER: &str = "TAIL_CUT";

#[derive(Clone, Copy, Debug)]
pub struct WalOptions {
    /// A segment that has grown past this size is closed after its next sync.
    pub segment_bytes_max: u64,
    /// How far the last segment is grown ahead of its records, in bytes of zeros.
    pub prealloc_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes_max: 64 * 1024 * 1024,
            prealloc_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, Error)]
pub enum WalError {
    #[error("WAL I/O error on {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error(transparent)]
    Corruption(#[from] Corruption),
    #[error(
        "WAL record in {file} at byte offset {offset} has a valid checksum but does not decode ({error}); it was written by an incompatible version, or corrupted before it was checksummed"
    )]
    Decode {
        file: String,
        offset: usize,
        error: DecodeError,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What happened to an append.
#[derive(Debug, Error)]
pub enum AppendError {
    /// Nothing was added (the file was cut back): e.g. the disk is full. Safe to go on.
    #[error("the WAL append failed and was taken back: {0}")]
    Rejected(io::Error),
    /// The file may hold a partial append that could not be taken back: stop.
    #[error("the WAL append failed and could not be taken back: {0}")]
    Fatal(io::Error),
}

/// What recovery found, for the log and for `check-wal`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    pub records: usize,
    /// The torn tail cut from the last segment: file, offset, bytes dropped, why.
    pub truncated: Option<(String, u64, u64, TornTail)>,
}

pub fn segment_name(seq: u64) -> String {
    format!("{seq:016x}{SEGMENT_SUFFIX}")
}

/// An open WAL, positioned at the end of its last segment.
pub struct Wal {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    options: WalOptions,
    file: Box<dyn DiskFile>,
    seq: u64,
    /// Where the records of the current segment end.
    len: u64,
    /// The size of the current segment's file: records, then preallocated zeros.
    allocated: u64,
    bytes_total: u64,
}

/// The segments of a directory, read into memory and scanned.
struct Scanned {
    names: Vec<String>,
    contents: Vec<Vec<u8>>,
    scans: Result<Vec<recovery::SegmentScan>, Corruption>,
}

/// The names of the WAL's segment files, in log order.
fn segment_names(disk: &dyn Disk, dir: &Path) -> Result<Vec<String>, WalError> {
    let mut names: Vec<String> = disk
        .list(dir)
        .map_err(io_error(dir))?
        .into_iter()
        .filter(|n| n.ends_with(SEGMENT_SUFFIX))
        .collect();
    names.sort();
    Ok(names)
}

fn scan_dir(disk: &dyn Disk, dir: &Path) -> Result<Scanned, WalError> {
    let names = segment_names(disk, dir)?;
    let mut contents = Vec::with_capacity(names.len());
    for name in &names {
        let path = dir.join(name);
        contents.push(disk.read(&path).map_err(io_error(&path))?);
    }
    let images: Vec<SegmentImage> = names
        .iter()
        .zip(&contents)
        .map(|(name, bytes)| SegmentImage {
            name: dir.join(name).display().to_string(),
            bytes,
        })
        .collect();
    let scans = recovery::scan_all(&images);
    Ok(Scanned {
        names,
        contents,
        scans,
    })
}

/// The log entries `from..=to` that `records` (a WAL's, in order) leave, replayed as recovery
/// replays them: an entry replaces the log from its index on. Keeps only what is asked for
/// in memory, and stops short of `to` where the entries kept would pass `bytes_max` (by
/// [`LogEntry::memory_bytes`]; always at least the first two). Pure.
///
/// [`LogEntry::memory_bytes`]: crate::log::LogEntry::memory_bytes
pub fn entries_between(
    records: impl IntoIterator<Item = WalRecord>,
    from: u64,
    to: u64,
    bytes_max: usize,
) -> Vec<crate::log::LogEntry> {
    let mut replay = EntriesBetween::new(from, to, bytes_max);
    for record in records {
        if let WalRecord::Entry(entry) = record {
            replay.push(entry);
        }
    }
    replay.kept
}

struct EntriesBetween {
    from: u64,
    /// Lowered to where `bytes_max` stopped the entries kept.
    to: u64,
    bytes_max: usize,
    kept: Vec<crate::log::LogEntry>,
    bytes: usize,
}

#[derive(PartialEq)]
enum Needs {
    Nothing,
    Entry,
}

/// How many entries a read keeps whatever their size: a caller that asks from the entry
/// before those it needs (for its term) gets at least one of those.
const ENTRIES_KEPT_MIN: usize = 2;

impl EntriesBetween {
    fn new(from: u64, to: u64, bytes_max: usize) -> Self {
        assert!(from >= 1, "log indexes start at 1");
        EntriesBetween {
            from,
            to,
            bytes_max,
            kept: Vec::new(),
            bytes: 0,
        }
    }

    /// What an entry at `index` does to what is kept: entries from its index on are
    /// replaced, and only one in `from..=to` needs decoding (the reader skips the others).
    fn replaces_from(&mut self, index: u64) -> Needs {
        let position = index.saturating_sub(self.from) as usize;
        for replaced in self.kept.drain(position.min(self.kept.len())..) {
            self.bytes -= replaced.memory_bytes();
        }
        if index < self.from || index > self.to || position != self.kept.len() {
            Needs::Nothing
        } else {
            Needs::Entry
        }
    }

    fn push(&mut self, entry: crate::log::LogEntry) {
        if self.replaces_from(entry.index) == Needs::Nothing {
            return;
        }
        let bytes = entry.memory_bytes();
        if self.kept.len() >= ENTRIES_KEPT_MIN && self.bytes + bytes > self.bytes_max {
            self.to = entry.index - 1;
            return;
        }
        self.bytes += bytes;
        self.kept.push(entry);
    }
}

/// The entry indexes each closed segment holds (lowest and highest; `None`: none), learned by
/// [`read_entries`], so that later reads skip the segments that hold none they want. Only
/// segments followed by two others are recorded: those never change again (the one just
/// before the last may still be the writer's, should starting the last one have failed
/// halfway).
#[derive(Debug, Default)]
pub struct SegmentIndexes(BTreeMap<String, Option<(u64, u64)>>);

impl SegmentIndexes {
    /// Whether a read of `from..=to` can skip the segment `name`. One whose entries all come
    /// after `to` changes nothing a read keeps. One whose entries all come before `from` only
    /// replaces entries from theirs on: given that the log the WAL holds reaches `to` (see
    /// [`read_entries`]), every entry a read keeps has its last version after any such
    /// replacement, and that version replaces whatever was kept for it before.
    fn skips(&self, name: &str, from: u64, to: u64) -> bool {
        match self.0.get(name) {
            None => false,
            Some(None) => true,
            Some(Some((lowest, highest))) => *highest < from || *lowest > to,
        }
    }
}

/// Reads the entries `from..=to` of the log the WAL in `dir` holds, changing nothing: for a
/// follower that lacks entries its leader no longer keeps in memory. Safe while a writer
/// appends: what it reads past the last complete record is left out, as a torn tail would be.
/// One segment is in memory at a time, only the entries kept are decoded, and segments that
/// `indexes` shows hold none of them are not read: a read costs the segments that hold the
/// entries asked for, and the last one. Stops short of `to` where the entries would pass
/// `bytes_max` (see [`entries_between`]): a follower far behind is sent its gap a piece at a
/// time. `to` must not be past the end of the log the WAL holds (a leader reads entries it
/// has fsynced): the segments skipped rely on it.
pub fn read_entries(
    disk: &dyn Disk,
    dir: &Path,
    from: u64,
    to: u64,
    bytes_max: usize,
    indexes: &mut SegmentIndexes,
) -> Result<Vec<crate::log::LogEntry>, WalError> {
    let names = segment_names(disk, dir)?;
    let mut replay = EntriesBetween::new(from, to, bytes_max);
    let mut previous = None;
    for (i, name) in names.iter().enumerate() {
        let closed = i + 2 < names.len();
        if closed && indexes.skips(name, from, replay.to) {
            // The next segment's sequence number is not checked against a skipped one's.
            previous = None;
            continue;
        }
        let mut held: Option<(u64, u64)> = None;
        let path = dir.join(name);
        let bytes = disk.read(&path).map_err(io_error(&path))?;
        let image = SegmentImage {
            name: path.display().to_string(),
            bytes: &bytes,
        };
        let scan = recovery::scan_after(previous.as_ref(), &image, i + 1 == names.len())?;
        for range in &scan.records {
            let payload = &bytes[range.clone()];
            let index = codec::entry_record_index(payload);
            if let Some(index) = index {
                held = Some(held.map_or((index, index), |(lo, hi)| (lo.min(index), hi.max(index))));
            }
            // An entry outside what is kept is not decoded (only its index counts).
            if index.is_some_and(|index| replay.replaces_from(index) == Needs::Nothing) {
                continue;
            }
            match codec::decode_wal_record(payload) {
                Ok(WalRecord::Entry(entry)) => replay.push(entry),
                Ok(WalRecord::HardState(_)) => {}
                Err(error) => {
                    return Err(WalError::Decode {
                        file: path.display().to_string(),
                        offset: range.start - record::FRAME_HEADER_BYTES,
                        error,
                    });
                }
            }
        }
        if closed {
            indexes.0.insert(name.clone(), held);
        }
        previous = Some(scan);
    }
    Ok(replay.kept)
}

/// Decodes every record the scans accepted, in order, and hands each to `each`.
fn decode_records(
    dir: &Path,
    (names, contents): (&[String], &[Vec<u8>]),
    scans: &[recovery::SegmentScan],
    mut each: impl FnMut(WalRecord),
) -> Result<(), WalError> {
    for ((scan, name), bytes) in scans.iter().zip(names).zip(contents) {
        for range in &scan.records {
            let record = codec::decode_wal_record(&bytes[range.clone()]).map_err(|error| {
                WalError::Decode {
                    file: dir.join(name).display().to_string(),
                    offset: range.start - record::FRAME_HEADER_BYTES,
                    error,
                }
            })?;
            each(record);
        }
    }
    Ok(())
}

impl Wal {
    /// Opens (or creates) the WAL in `dir`, recovers it per the decision table in
    /// [`recovery`], cuts a torn tail of the last segment (logged), and returns every record.
    pub fn open(
        disk: Arc<dyn Disk>,
        dir: &Path,
        options: WalOptions,
    ) -> Result<(Wal, Vec<WalRecord>, RecoveryReport), WalError> {
        disk.create_dir_all(dir).map_err(io_error(dir))?;
        // Leftovers of a segment creation that crashed before its rename: never part of the log.
        for name in disk.list(dir).map_err(io_error(dir))? {
            if name.ends_with(".wal.tmp") {
                let path = dir.join(&name);
                disk.remove(&path).map_err(io_error(&path))?;
            }
        }
        let scanned = scan_dir(disk.as_ref(), dir)?;
        let scans = scanned.scans?;
        let mut report = RecoveryReport {
            segments: scans.len(),
            ..RecoveryReport::default()
        };
        let mut records = Vec::new();
        let segments = (&scanned.names[..], &scanned.contents[..]);
        decode_records(dir, segments, &scans, |record| records.push(record))?;
        report.records = records.len();
        let records_bytes: u64 = scans.iter().map(|s| s.valid_len as u64).sum();
        let (seq, len, allocated) = match scans.last() {
            None => {
                let path = dir.join(segment_name(0));
                disk.create_durable(&path, &record::encode_header(0))
                    .map_err(io_error(&path))?;
                (0, record::HEADER_BYTES as u64, record::HEADER_BYTES as u64)
            }
            Some(last) => {
                let name = scanned.names.last().unwrap();
                let path = dir.join(name);
                let file_len = scanned.contents.last().unwrap().len() as u64;
                let mut allocated = file_len;
                if last.torn == Some(TornTail::ZeroFill) {
                    // Preallocated space, or a file grown before its data landed: either way
                    // only zeros, which the next appends overwrite.
                    tracing::debug!(file = %path.display(), free_bytes = file_len - last.valid_len as u64, "WAL: zero-filled space after the last record");
                } else if let Some(why) = last.torn {
                    let valid = last.valid_len as u64;
                    tracing::warn!(
                        file = %path.display(),
                        offset = valid,
                        dropped_bytes = file_len - valid,
                        ?why,
                        "WAL: truncating a torn tail (records written after the last fsync; none of them was acknowledged)"
                    );
                    let marker = dir.join(TAIL_CUT_MARKER);
                    disk.create_durable(&marker, format!("{}\n", path.display()).as_bytes())
                        .map_err(io_error(&marker))?;
                    disk.truncate(&path, valid).map_err(io_error(&path))?;
                    report.truncated =
                        Some((path.display().to_string(), valid, file_len - valid, why));
                    allocated = valid;
                }
                (last.seq, last.valid_len as u64, allocated)
            }
        };
        // The files' sizes: every segment's records, and the last one's preallocated space
        // (a new WAL: its header).
        let bytes_total = match scans.last() {
            None => allocated,
            Some(_) => records_bytes + (allocated - len),
        };
        let path = dir.join(segment_name(seq));
        let file = disk.open_write(&path).map_err(io_error(&path))?;
        let wal = Wal {
            disk,
            dir: dir.to_path_buf(),
            options,
            file,
            seq,
            len,
            allocated,
            bytes_total,
        };
        Ok((wal, records, report))
    }

    /// Appends whole frames (see [`record::encode_frame`]). On failure nothing is left
    /// behind: growth is cut back, and a partial write into preallocated space is zeroed.
    pub fn append(&mut self, frames: &[u8]) -> Result<(), AppendError> {
        let end = self.len + frames.len() as u64;
        if end > self.allocated {
            let target = end.max(self.allocated + self.options.prealloc_bytes);
            if let Err(error) = write_zeros(self.file.as_mut(), self.allocated..target) {
                // A full disk lands here: give back whatever part of the growth happened.
                return match self.file.truncate(self.allocated) {
                    Ok(()) => Err(AppendError::Rejected(error)),
                    Err(_) => Err(AppendError::Fatal(error)),
                };
            }
            self.bytes_total += target - self.allocated;
            self.allocated = target;
        }
        if let Err(error) = self.file.write_at(self.len, frames) {
            return match write_zeros(self.file.as_mut(), self.len..end) {
                Ok(()) => Err(AppendError::Rejected(error)),
                Err(_) => Err(AppendError::Fatal(error)),
            };
        }
        // Within the preallocated space: the files are no larger than before.
        self.len = end;
        Ok(())
    }

    /// Makes every append so far durable; then, if the segment is full, starts the next one.
    /// An error here is fatal to the caller: the page cache may have dropped the data.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync()?;
        if self.len >= self.options.segment_bytes_max {
            // Not being able to start a new segment (a full disk) is not a durability problem:
            // the current one simply grows past its size, and the next sync tries again.
            if let Err(error) = self.start_next_segment() {
                tracing::warn!(%error, seq = self.seq + 1, "WAL: cannot start the next segment yet; the current one keeps growing");
            }
        }
        Ok(())
    }

    fn start_next_segment(&mut self) -> io::Result<()> {
        // Closed segments end exactly at their last record (only the last segment may have a
        // zero-filled tail), so the free space is cut, durably, before the next segment exists:
        // a crash in between leaves a log that recovers cleanly.
        if self.allocated > self.len {
            self.file.truncate(self.len)?;
            self.bytes_total -= self.allocated - self.len;
            self.allocated = self.len;
        }
        let seq = self.seq + 1;
        let path = self.dir.join(segment_name(seq));
        self.disk
            .create_durable(&path, &record::encode_header(seq))?;
        let next = self.disk.open_write(&path)?;
        self.file = next;
        self.seq = seq;
        self.len = record::HEADER_BYTES as u64;
        self.allocated = self.len;
        self.bytes_total += record::HEADER_BYTES as u64;
        Ok(())
    }

    /// The size of every segment file together, preallocated space included (INFO
    /// persistence's `wal_bytes`: what the WAL takes on disk).
    pub fn bytes_total(&self) -> u64 {
        self.bytes_total
    }

    /// The file offset where the next append lands.
    pub fn end_offset(&self) -> u64 {
        self.len
    }

    pub fn segment_seq(&self) -> u64 {
        self.seq
    }
}

/// Zeros for [`write_zeros`]: one static block, so growing a segment by a megabyte neither
/// allocates a megabyte of zeros nor clears it (under cluster SET -P 16 that allocation was 2%
/// of the machine's CPU, in page clearing and memset). It lives in `.bss` and is only ever
/// read, so its pages are the kernel's shared zero page. As large as the default growth, so
/// that a growth stays one write, as the simulated disk sees (and tears) it.
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// Writes zeros over `range` of `file`.
fn write_zeros(file: &mut dyn DiskFile, range: std::ops::Range<u64>) -> io::Result<()> {
    let mut at = range.start;
    while at < range.end {
        let n = (range.end - at).min(ZEROS.len() as u64);
        file.write_at(at, &ZEROS[..n as usize])?;
        at += n;
    }
    Ok(())
}

/// Encodes `WalRecord::Entry(entry)` as one frame appended to `out`, without copying the
/// entry. `out` will be appended to the WAL at file offset `out_offset`.
pub fn frame_entry(entry: &crate::log::LogEntry, out: &mut Vec<u8>, out_offset: u64) {
    let start = out.len();
    out.extend_from_slice(&[0u8; record::FRAME_HEADER_BYTES]);
    codec::encode_entry_record_into(entry, out);
    record::seal_frame(&mut out[start..], out_offset + start as u64);
}

/// Encodes any record as one frame appended to `out` (see [`frame_entry`]).
pub fn frame_record(record: &WalRecord, out: &mut Vec<u8>, out_offset: u64) {
    let start = out.len();
    out.extend_from_slice(&[0u8; record::FRAME_HEADER_BYTES]);
    out.extend_from_slice(&codec::encode_wal_record(record));
    record::seal_frame(&mut out[start..], out_offset + start as u64);
}

/// What `quorum check-wal` found.
#[derive(Debug)]
pub struct CheckReport {
    pub lines: Vec<String>,
    /// The directory is fine to start on (possibly after cutting a torn tail).
    pub healthy: bool,
    pub torn_tail: Option<(PathBuf, u64)>,
    /// Corruption in the last segment: where the good records end. Only a human may decide to
    /// cut there (`check-wal --truncate-at-corruption`), since what follows may have been
    /// acknowledged.
    pub corrupt_last_segment: Option<(PathBuf, u64)>,
}

/// Inspects a WAL directory without changing it.
pub fn check(disk: &dyn Disk, dir: &Path) -> Result<CheckReport, WalError> {
    let scanned = scan_dir(disk, dir)?;
    let mut lines = Vec::new();
    if scanned.names.is_empty() {
        lines.push(format!("{}: no WAL segments", dir.display()));
    }
    let scans = match scanned.scans {
        Ok(scans) => scans,
        Err(corruption) => {
            lines.push(format!("CORRUPT: {corruption}"));
            let last = scanned.names.last().map(|name| dir.join(name));
            let in_last = last
                .as_ref()
                .is_some_and(|p| p.display().to_string() == corruption.file);
            let corrupt_last_segment = match (&corruption.kind, last) {
                (recovery::CorruptionKind::Header(_), _) => None,
                (_, Some(path)) if in_last => Some((path, corruption.offset as u64)),
                _ => None,
            };
            return Ok(CheckReport {
                lines,
                healthy: false,
                torn_tail: None,
                corrupt_last_segment,
            });
        }
    };
    let mut torn_tail = None;
    let mut healthy = true;
    for ((scan, name), bytes) in scans.iter().zip(&scanned.names).zip(&scanned.contents) {
        let mut undecodable = 0;
        for range in &scan.records {
            if codec::decode_wal_record(&bytes[range.clone()]).is_err() {
                undecodable += 1;
            }
        }
        lines.push(format!(
            "{name}: seq {}, {} records, {} bytes{}",
            scan.seq,
            scan.records.len(),
            bytes.len(),
            if undecodable > 0 {
                format!(", {undecodable} UNDECODABLE records")
            } else {
                String::new()
            }
        ));
        healthy &= undecodable == 0;
        if scan.torn == Some(TornTail::ZeroFill) {
            lines.push(format!(
                "{name}: {} bytes of zero-filled free space after the last record (preallocated; normal)",
                bytes.len() - scan.valid_len
            ));
        } else if let Some(why) = scan.torn {
            lines.push(format!(
                "{name}: torn tail at offset {} ({:?}, {} bytes): safe to cut, these records were never acknowledged; `quorum check-wal --fix` or starting the node cuts it",
                scan.valid_len,
                why,
                bytes.len() - scan.valid_len
            ));
            torn_tail = Some((dir.join(name), scan.valid_len as u64));
        }
    }
    if healthy {
        lines.push("OK".to_owned());
    }
    Ok(CheckReport {
        lines,
        healthy,
        torn_tail,
        corrupt_last_segment: None,
    })
}

/// `check-wal --fix`: backs up the last segment, then cuts its torn tail. Never touches
/// anything else; corruption before the tail is left for a human. Returns the backup path.
pub fn fix_torn_tail(disk: &dyn Disk, report: &CheckReport) -> Result<Option<PathBuf>, WalError> {
    match &report.torn_tail {
        None => Ok(None),
        Some((path, valid_len)) => backup_and_cut(disk, path, *valid_len).map(Some),
    }
}

/// `check-wal --truncate-at-corruption`: the operator's decision, as `redis-check-aof --fix`,
/// to drop everything from a corruption in the last segment on (records that may have been
/// acknowledged). Backs the segment up first. Corruption in an earlier segment is refused.
pub fn cut_at_corruption(
    disk: &dyn Disk,
    report: &CheckReport,
) -> Result<Option<(PathBuf, u64)>, WalError> {
    match &report.corrupt_last_segment {
        None => Ok(None),
        Some((path, offset)) => {
            let backup = backup_and_cut(disk, path, *offset)?;
            Ok(Some((backup, *offset)))
        }
    }
}

/// A cluster node's repair of a corrupt log (DESIGN's WAL rule 4: corruption is repaired
/// from peers): the log is cut where the corruption starts (the damaged segment backed up and
/// cut, every later segment moved aside as `*.wal.bak`), after the tail-cut marker is written,
/// so that the node catches up from its peers before it votes again. Returns where the cut
/// is, or `None` when the corruption is not in a record (a damaged segment header), which it
/// leaves to a human.
pub fn cut_for_repair(disk: &dyn Disk, dir: &Path) -> Result<Option<(PathBuf, u64)>, WalError> {
    let scanned = scan_dir(disk, dir)?;
    let Err(corruption) = scanned.scans else {
        return Ok(None);
    };
    // Only damage inside the records: a damaged header or a missing segment has no record
    // to cut at.
    use recovery::CorruptionKind::*;
    if matches!(corruption.kind, Header(_) | MissingSegment { .. })
        || corruption.offset < record::HEADER_BYTES
    {
        return Ok(None);
    }
    let marker = dir.join(TAIL_CUT_MARKER);
    disk.create_durable(&marker, format!("{}\n", corruption.file).as_bytes())
        .map_err(io_error(&marker))?;
    let damaged = PathBuf::from(&corruption.file);
    let mut later = false;
    for name in &scanned.names {
        let path = dir.join(name);
        if later {
            let aside = unused_backup_path(disk, &path);
            disk.copy(&path, &aside).map_err(io_error(&path))?;
            disk.remove(&path).map_err(io_error(&path))?;
        }
        later |= path == damaged;
    }
    backup_and_cut(disk, &damaged, corruption.offset as u64)?;
    Ok(Some((damaged, corruption.offset as u64)))
}

/// `path.bak`, or `path.bak1`, `path.bak2`, ...: never an earlier backup.
fn unused_backup_path(disk: &dyn Disk, path: &Path) -> PathBuf {
    let mut backup = path.as_os_str().to_owned();
    backup.push(".bak");
    let mut backup = PathBuf::from(backup);
    let mut n = 1;
    while disk.read(&backup).is_ok() {
        backup.set_extension(format!("bak{n}"));
        n += 1;
    }
    backup
}

fn backup_and_cut(disk: &dyn Disk, path: &Path, len: u64) -> Result<PathBuf, WalError> {
    let backup = unused_backup_path(disk, path);
    disk.copy(path, &backup).map_err(io_error(path))?;
    if let Some(dir) = path.parent() {
        let marker = dir.join(TAIL_CUT_MARKER);
        disk.create_durable(&marker, format!("{}\n", path.display()).as_bytes())
            .map_err(io_error(&marker))?;
    }
    disk.truncate(path, len).map_err(io_error(path))?;
    Ok(backup)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{EntryPayload, HardState, LogEntry};

    fn entry(index: u64, term: u64) -> LogEntry {
        LogEntry {
            index,
            term,
            ts_ms: 0,
            origin: None,
            payload: std::sync::Arc::new(EntryPayload::Noop),
        }
    }

    /// A log of terms 1 1 1 1, then a leader of term 2 replacing it from index 3: 1 1 2 2 2.
    fn records_with_a_replaced_suffix() -> Vec<WalRecord> {
        let mut records: Vec<WalRecord> = (1..=4).map(|i| WalRecord::Entry(entry(i, 1))).collect();
        records.push(WalRecord::HardState(HardState {
            term: 2,
            vote: Some(2),
        }));
        records.extend((3..=5).map(|i| WalRecord::Entry(entry(i, 2))));
        records
    }

    #[test]
    fn entries_between_replays_replaced_suffixes_as_recovery_does() {
        let terms = |entries: Vec<LogEntry>| -> Vec<(u64, u64)> {
            entries.iter().map(|e| (e.index, e.term)).collect()
        };
        let records = records_with_a_replaced_suffix();
        assert_eq!(
            terms(entries_between(records.clone(), 1, 5, usize::MAX)),
            vec![(1, 1), (2, 1), (3, 2), (4, 2), (5, 2)]
        );
        assert_eq!(
            terms(entries_between(records.clone(), 2, 3, usize::MAX)),
            vec![(2, 1), (3, 2)]
        );
        assert_eq!(
            terms(entries_between(records.clone(), 4, 9, usize::MAX)),
            vec![(4, 2), (5, 2)]
        );
        assert_eq!(terms(entries_between(records, 6, 9, usize::MAX)), vec![]);
    }

    #[test]
    fn entries_between_stops_at_the_bytes_asked_for_keeping_at_least_two() {
        let terms = |entries: Vec<LogEntry>| -> Vec<(u64, u64)> {
            entries.iter().map(|e| (e.index, e.term)).collect()
        };
        let one = entry(1, 1).memory_bytes();
        let records = records_with_a_replaced_suffix();
        // Three entries' worth: entries 1 and 2 of term 1 are kept, then replaced from 3 on
        // by term 2, whose entry 3 fits and entry 4 does not.
        assert_eq!(
            terms(entries_between(records.clone(), 1, 5, 3 * one)),
            vec![(1, 1), (2, 1), (3, 2)]
        );
        // Less than one entry's worth still gives two: the first may be only the one
        // before those the caller needs (for its term).
        assert_eq!(
            terms(entries_between(records.clone(), 2, 5, 0)),
            vec![(2, 1), (3, 2)]
        );
        assert_eq!(terms(entries_between(records, 5, 9, 0)), vec![(5, 2)]);
    }

    #[test]
    fn read_entries_reads_a_live_wal_without_changing_it() {
        let dir = std::env::temp_dir().join(format!("quorum-read-entries-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let disk: Arc<dyn Disk> = Arc::new(FsDisk);
        // Small segments, so the entries span several.
        let options = WalOptions {
            segment_bytes_max: 64,
            prealloc_bytes: 1024,
        };
        let (mut wal, _, _) = Wal::open(disk.clone(), &dir, options).unwrap();
        for record in records_with_a_replaced_suffix() {
            let mut frames = Vec::new();
            frame_record(&record, &mut frames, wal.end_offset());
            wal.append(&frames).unwrap();
            wal.sync().unwrap();
        }
        let before = disk.list(&dir).unwrap();
        let read = |from, to, bytes_max, indexes: &mut SegmentIndexes| -> Vec<(u64, u64)> {
            let read = read_entries(disk.as_ref(), &dir, from, to, bytes_max, indexes).unwrap();
            read.iter().map(|e| (e.index, e.term)).collect()
        };
        let fresh = || SegmentIndexes::default();
        assert_eq!(
            read(2, 4, usize::MAX, &mut fresh()),
            vec![(2, 1), (3, 2), (4, 2)]
        );
        // A piece: entries replaced later in the WAL are read as replaced (3 and 4), and an
        // entry before `from` (3, not decoded) still replaces what was kept (4).
        assert_eq!(read(3, 5, 0, &mut fresh()), vec![(3, 2), (4, 2)]);
        assert_eq!(read(4, 5, usize::MAX, &mut fresh()), vec![(4, 2), (5, 2)]);
        // Reads that know what each closed segment holds skip those that hold none of what
        // they want, and read the same entries (for every range within the log, as a leader
        // asks, and whatever the bytes asked for).
        let mut indexes = fresh();
        assert_eq!(read(1, 5, usize::MAX, &mut indexes).len(), 5);
        let names = segment_names(disk.as_ref(), &dir).unwrap();
        // All but the last two: the one before the last may still be the writer's.
        let recorded = names.len() - 2;
        assert_eq!(indexes.0.len(), recorded, "every closed segment is known");
        let one = entry(1, 1).memory_bytes();
        for from in 1..=5 {
            for to in from..=5 {
                for bytes_max in [usize::MAX, 0, 3 * one] {
                    let skipped = (0..recorded)
                        .filter(|&i| indexes.skips(&names[i], from, to))
                        .count();
                    assert_eq!(
                        read(from, to, bytes_max, &mut indexes),
                        read(from, to, bytes_max, &mut fresh()),
                        "{from}..={to} up to {bytes_max} bytes, {skipped} segments skipped"
                    );
                }
            }
        }
        assert!(
            (0..recorded).any(|i| indexes.skips(&names[i], 5, 5)),
            "{indexes:?}"
        );
        assert_eq!(disk.list(&dir).unwrap(), before, "no file added or removed");
        assert!(before.len() > 1, "the test spans segments: {before:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bytes_total_is_what_the_segment_files_take_on_disk() {
        let dir = std::env::temp_dir().join(format!("quorum-bytes-total-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let disk: Arc<dyn Disk> = Arc::new(FsDisk);
        let on_disk = || -> u64 {
            segment_names(disk.as_ref(), &dir)
                .unwrap()
                .iter()
                .map(|name| std::fs::metadata(dir.join(name)).unwrap().len())
                .sum()
        };
        let options = WalOptions {
            segment_bytes_max: 128,
            prealloc_bytes: 100,
        };
        let (mut wal, _, _) = Wal::open(disk.clone(), &dir, options).unwrap();
        assert_eq!(wal.bytes_total(), on_disk(), "a new WAL");
        for index in 1..=30 {
            let mut frames = Vec::new();
            frame_entry(&entry(index, 1), &mut frames, wal.end_offset());
            wal.append(&frames).unwrap();
            assert_eq!(wal.bytes_total(), on_disk(), "after appending {index}");
            wal.sync().unwrap();
            assert_eq!(wal.bytes_total(), on_disk(), "after syncing {index}");
        }
        assert!(segment_names(disk.as_ref(), &dir).unwrap().len() > 2);
        let size = wal.bytes_total();
        drop(wal);
        let (wal, _, _) = Wal::open(disk.clone(), &dir, options).unwrap();
        assert_eq!(
            (wal.bytes_total(), size),
            (on_disk(), on_disk()),
            "reopened"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
