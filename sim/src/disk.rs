//! The simulated disk behind the WAL's `Disk` trait. madsim's own file system neither loses
//! unsynced writes nor tears them, so this one keeps, per file, the durable bytes and the
//! writes since the last fsync, and decides at a crash what survives:
//!
//! - a seed-chosen prefix of the unsynced writes, the last of them possibly cut short (a torn
//!   write), and the rest of that sector possibly garbage;
//! - on the nodes the run marked corruptible (always a minority), a flipped bit in a record
//!   that had been fsynced, or the whole disk lost (wiped);
//! - an fsync that fails (once armed): the writes it covered are dropped, as a kernel may drop
//!   dirty pages after a failed writeback, and the node must stop.
//!
//! The state lives outside the node (in the run's `World`), so it survives madsim's
//! kill/restart. Each node life holds a handle stamped with its incarnation: writes from a
//! killed life (madsim runs destructors lazily) are refused.

use quorum::rng::Rng;
use quorum::wal::{Disk, DiskFile};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const SECTOR_BYTES: usize = 512;

#[derive(Default)]
struct File {
    durable: Vec<u8>,
    /// Writes since the last fsync, in order: (offset, bytes).
    pending: Vec<(u64, Vec<u8>)>,
}

fn write_into(target: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let offset = offset as usize;
    if target.len() < offset + bytes.len() {
        target.resize(offset + bytes.len(), 0);
    }
    target[offset..offset + bytes.len()].copy_from_slice(bytes);
}

impl File {
    fn current(&self) -> Vec<u8> {
        let mut bytes = self.durable.clone();
        for (offset, data) in &self.pending {
            write_into(&mut bytes, *offset, data);
        }
        bytes
    }

    fn sync(&mut self) {
        for (offset, data) in std::mem::take(&mut self.pending) {
            write_into(&mut self.durable, offset, &data);
        }
    }
}

/// What a crash did to a disk, for the run's fault counts.
#[derive(Debug, Default, Clone, Copy)]
pub struct CrashDamage {
    pub unsynced_writes_lost: usize,
    pub torn_writes: usize,
    pub bit_flips: usize,
    pub wiped: bool,
}

#[derive(Default)]
pub struct DiskState {
    files: BTreeMap<PathBuf, File>,
    /// The node life allowed to write; bumped at every crash.
    incarnation: u64,
    /// The next fsync fails.
    fail_next_sync: bool,
    /// The life whose fsync failed: it must write nothing more.
    failed_life: Option<u64>,
    /// Writes or fsyncs a life attempted after its fsync failed (must stay 0).
    pub writes_after_failed_sync: u64,
    /// Wiped at the last crash: the node's next start is the operator's `--rejoin`.
    pub wiped: bool,
    /// Fsyncs that failed (an armed failure is counted only when it happens).
    pub failed_fsyncs: u64,
}

impl DiskState {
    /// The node crashed: keep the durable bytes, a random prefix of the unsynced writes (the
    /// last kept one possibly torn, the rest of its sector possibly garbage), and on a
    /// corruptible disk maybe flip a bit in an fsynced record. Later writes of the dead life are
    /// refused.
    pub fn crash(&mut self, rng: &mut Rng, corruptible: bool) -> CrashDamage {
        let mut damage = CrashDamage::default();
        self.incarnation += 1;
        self.fail_next_sync = false;
        for file in self.files.values_mut() {
            let pending = std::mem::take(&mut file.pending);
            if pending.is_empty() {
                continue;
            }
            let kept = rng.below(pending.len() as u64 + 1) as usize;
            damage.unsynced_writes_lost += pending.len() - kept;
            for (offset, data) in &pending[..kept] {
                write_into(&mut file.durable, *offset, data);
            }
            if let Some((offset, data)) = pending.get(kept)
                && rng.below(2) == 0
            {
                // A torn write: part of it landed.
                let cut = rng.below(data.len() as u64) as usize;
                let mut torn = data[..cut].to_vec();
                if rng.below(2) == 0 {
                    // The sector it was cut in holds garbage past the cut.
                    let sector_end = (*offset as usize + cut).div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
                    let garbage = sector_end.saturating_sub(*offset as usize + cut).min(64);
                    torn.extend((0..garbage).map(|_| rng.next_u64() as u8));
                }
                write_into(&mut file.durable, *offset, &torn);
                damage.torn_writes += 1;
            }
        }
        if corruptible && rng.below(4) == 0 && self.flip_a_bit(rng) {
            damage.bit_flips += 1;
        }
        if corruptible && rng.below(10) == 0 {
            // The disk was replaced: the node restarts with nothing.
            self.files.clear();
            damage.wiped = true;
            self.wiped = true;
        }
        damage
    }

    /// Flips one bit somewhere in the durable bytes of a segment, past its header.
    fn flip_a_bit(&mut self, rng: &mut Rng) -> bool {
        let segments: Vec<&PathBuf> = self
            .files
            .iter()
            .filter(|(path, file)| {
                path.extension().is_some_and(|e| e == "wal") && file.durable.len() > 64
            })
            .map(|(path, _)| path)
            .collect();
        if segments.is_empty() {
            return false;
        }
        let path = segments[rng.below(segments.len() as u64) as usize].clone();
        let file = self.files.get_mut(&path).unwrap();
        // Only where records are: the first zero byte run after the header is free space.
        let used = file
            .durable
            .windows(16)
            .position(|w| w.iter().all(|b| *b == 0))
            .unwrap_or(file.durable.len())
            .max(33);
        let at = 32 + rng.below(used as u64 - 32) as usize;
        file.durable[at] ^= 1 << rng.below(8);
        true
    }

    /// Arms a failure of the next fsync.
    pub fn fail_next_sync(&mut self) {
        self.fail_next_sync = true;
    }

    /// Whether some write awaits its fsync.
    pub fn has_pending(&self) -> bool {
        self.files.values().any(|f| !f.pending.is_empty())
    }

    /// Takes back an armed fsync failure (the faults stop).
    pub fn disarm(&mut self) {
        self.fail_next_sync = false;
    }
}

/// One node life's handle on its disk.
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
    incarnation: u64,
}

impl SimDisk {
    pub fn new(state: Arc<Mutex<DiskState>>) -> SimDisk {
        let incarnation = state.lock().unwrap().incarnation;
        SimDisk { state, incarnation }
    }

    fn live(&self) -> io::Result<std::sync::MutexGuard<'_, DiskState>> {
        let state = self.state.lock().unwrap();
        if state.incarnation != self.incarnation {
            return Err(io::Error::other("this node life crashed"));
        }
        Ok(state)
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{}", path.display()))
}

struct SimFile {
    disk: SimDisk,
    path: PathBuf,
}

impl DiskFile for SimFile {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.disk.live()?;
        if state.failed_life == Some(state.incarnation) {
            state.writes_after_failed_sync += 1;
        }
        let file = state
            .files
            .get_mut(&self.path)
            .ok_or_else(|| not_found(&self.path))?;
        file.pending.push((offset, bytes.to_vec()));
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut state = self.disk.live()?;
        if state.failed_life == Some(state.incarnation) {
            state.writes_after_failed_sync += 1;
        }
        if state.fail_next_sync {
            state.fail_next_sync = false;
            state.failed_fsyncs += 1;
            state.failed_life = Some(state.incarnation);
            if let Some(file) = state.files.get_mut(&self.path) {
                file.pending.clear();
            }
            return Err(io::Error::other("simulated fsync failure (EIO)"));
        }
        if let Some(file) = state.files.get_mut(&self.path) {
            file.sync();
        }
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.disk.truncate(&self.path, len)
    }
}

impl Disk for SimDisk {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        self.live().map(|_| ())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.live()?;
        Ok(state
            .files
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let state = self.live()?;
        state
            .files
            .get(path)
            .map(File::current)
            .ok_or_else(|| not_found(path))
    }

    fn create_durable(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        let mut state = self.live()?;
        state.files.insert(
            path.to_path_buf(),
            File {
                durable: contents.to_vec(),
                pending: Vec::new(),
            },
        );
        Ok(())
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let state = self.live()?;
        if !state.files.contains_key(path) {
            return Err(not_found(path));
        }
        Ok(Box::new(SimFile {
            disk: self.clone(),
            path: path.to_path_buf(),
        }))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut state = self.live()?;
        let file = state.files.get_mut(path).ok_or_else(|| not_found(path))?;
        file.sync();
        file.durable.resize(len as usize, 0);
        Ok(())
    }

    fn copy(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.live()?;
        let contents = state
            .files
            .get(from)
            .map(File::current)
            .ok_or_else(|| not_found(from))?;
        state.files.insert(
            to.to_path_buf(),
            File {
                durable: contents,
                pending: Vec::new(),
            },
        );
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.live()?;
        state
            .files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }
}
