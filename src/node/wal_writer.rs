//! Group commit: one writer owns the WAL, takes every batch of entries queued since its last
//! fsync, appends them with one write and covers them with one fsync, then reports the
//! durable index back to the core loop. It runs on its own OS thread in a normal build, so
//! the event loop never blocks on the disk.
//!
//! Failures: an append the disk refuses (a full disk) is taken back and reported, so the core
//! answers those writes with an error and acknowledges nothing; an fsync error, or an append
//! that could not be taken back, is fatal: the process stops, and never retries (after a
//! failed fsync the page cache may have dropped the data: "fsyncgate").

use crate::log::LogEntry;
use crate::wal::{AppendError, Wal, frame_entry};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A batch of entries to append, consecutive by index.
pub struct WriteJob {
    pub entries: Vec<Arc<LogEntry>>,
}

/// What the writer reports back.
#[derive(Debug, PartialEq)]
pub enum WriteOutcome {
    /// Everything up to `index` is durable.
    Persisted { index: u64 },
    /// Entries from `first_index` on were not written: the append was taken back.
    Failed { first_index: u64, error: String },
    /// Stop the process: durability can no longer be promised.
    Fatal { error: String },
}

/// Counters for INFO persistence, shared with the node.
#[derive(Debug, Default)]
pub struct WalStats {
    pub fsyncs: AtomicU64,
    pub last_fsync_us: AtomicU64,
    pub bytes: AtomicU64,
    pub write_errors: AtomicU64,
}

pub struct WalWriter {
    wal: Wal,
    /// The index the next appended entry must have.
    next_index: u64,
    stats: Arc<WalStats>,
    buffer: Vec<u8>,
}

impl WalWriter {
    pub fn new(wal: Wal, last_index: u64, stats: Arc<WalStats>) -> WalWriter {
        stats.bytes.store(wal.bytes_total(), Ordering::Relaxed);
        WalWriter {
            wal,
            next_index: last_index + 1,
            stats,
            buffer: Vec::new(),
        }
    }

    /// Appends every job that continues the log, fsyncs once, and says what happened. Jobs
    /// that do not continue the log (they follow a batch that failed) are refused whole.
    pub fn write_batch(&mut self, jobs: Vec<WriteJob>) -> Vec<WriteOutcome> {
        let mut outcomes = Vec::new();
        self.buffer.clear();
        let first_index = self.next_index;
        let mut last_index = None;
        for job in jobs {
            let Some(first) = job.entries.first() else {
                continue;
            };
            if first.index != self.next_index {
                // Queued behind a batch that failed: the core took these back together with
                // it (a failure takes back everything from its first index on) and may already
                // be reusing their indexes, so there is nothing to report.
                assert!(first.index > self.next_index, "jobs arrive in log order");
                continue;
            }
            for entry in &job.entries {
                assert_eq!(
                    entry.index, self.next_index,
                    "a job's entries are consecutive"
                );
                frame_entry(entry, &mut self.buffer, self.wal.end_offset());
                self.next_index += 1;
            }
            last_index = Some(self.next_index - 1);
        }
        let Some(last_index) = last_index else {
            return outcomes;
        };
        match self.wal.append(&self.buffer) {
            Ok(()) => {}
            Err(AppendError::Rejected(error)) => {
                self.next_index = first_index;
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                outcomes.insert(
                    0,
                    WriteOutcome::Failed {
                        first_index,
                        error: error.to_string(),
                    },
                );
                return outcomes;
            }
            Err(AppendError::Fatal(error)) => {
                return vec![WriteOutcome::Fatal {
                    error: format!("WAL append failed and could not be taken back: {error}"),
                }];
            }
        }
        let started = Instant::now();
        if let Err(error) = self.wal.sync() {
            return vec![WriteOutcome::Fatal {
                error: format!(
                    "WAL fsync failed: {error}; stopping without retrying, since the kernel may have dropped the unsynced data"
                ),
            }];
        }
        self.stats
            .last_fsync_us
            .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes
            .store(self.wal.bytes_total(), Ordering::Relaxed);
        outcomes.insert(0, WriteOutcome::Persisted { index: last_index });
        outcomes
    }

    /// The writer's thread body: block for a job, take every job queued behind it, write
    /// them as one batch, report. Ends when the sending side is dropped or on a fatal error.
    #[cfg_attr(madsim, allow(dead_code))]
    pub fn run(mut self, jobs: std::sync::mpsc::Receiver<WriteJob>, report: impl Fn(WriteOutcome)) {
        let mut last_batch_entries = 0;
        while let Ok(job) = jobs.recv() {
            let mut batch = vec![job];
            let mut entries = batch[0].entries.len();
            // Under concurrent load (the last batch had several writes), hold the door open
            // until as many writes as last time have arrived, for at most one fsync's duration
            // (capped at 500 us): the writers answered by the last fsync are usually about to
            // come back, and one fsync covering all of them beats several covering a few each.
            // It polls in 50 us sleeps (waking for every job would cost more switches than it
            // saves). A lone writer never waits.
            if last_batch_entries > 1 {
                let last_fsync_us = self.stats.last_fsync_us.load(Ordering::Relaxed);
                let deadline =
                    Instant::now() + std::time::Duration::from_micros(last_fsync_us.clamp(50, 500));
                loop {
                    while let Ok(more) = jobs.try_recv() {
                        entries += more.entries.len();
                        batch.push(more);
                    }
                    if entries >= last_batch_entries || Instant::now() >= deadline {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
            }
            while let Ok(more) = jobs.try_recv() {
                entries += more.entries.len();
                batch.push(more);
            }
            last_batch_entries = entries;
            for outcome in self.write_batch(batch) {
                let fatal = matches!(outcome, WriteOutcome::Fatal { .. });
                report(outcome);
                if fatal {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::EntryPayload;
    use crate::testing::FaultyDisk;
    use crate::wal::{FsDisk, WalOptions};
    use std::sync::Mutex;

    fn job(first: u64, count: u64) -> WriteJob {
        WriteJob {
            entries: (first..first + count)
                .map(|index| {
                    Arc::new(LogEntry {
                        index,
                        term: 1,
                        ts_ms: 0,
                        payload: EntryPayload::Noop,
                    })
                })
                .collect(),
        }
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("quorum-writer-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn group_commit_covers_every_queued_job_with_one_fsync() {
        let dir = temp_dir("group");
        let (wal, _, _) = Wal::open(Arc::new(FsDisk), &dir, WalOptions::default()).unwrap();
        let stats = Arc::new(WalStats::default());
        let mut writer = WalWriter::new(wal, 0, stats.clone());
        let outcomes = writer.write_batch(vec![job(1, 3), job(4, 2)]);
        assert_eq!(outcomes, vec![WriteOutcome::Persisted { index: 5 }]);
        assert_eq!(stats.fsyncs.load(Ordering::Relaxed), 1);
        let (_, records, _) = Wal::open(Arc::new(FsDisk), &dir, WalOptions::default()).unwrap();
        assert_eq!(records.len(), 5);
    }

    #[test]
    fn a_full_disk_takes_the_append_back_and_later_writes_succeed() {
        let dir = temp_dir("full");
        let disk = FaultyDisk::default();
        let full = disk.full.clone();
        // No preallocation, so that every append grows the file and can meet a full disk.
        let options = WalOptions {
            prealloc_bytes: 0,
            ..WalOptions::default()
        };
        let (wal, _, _) = Wal::open(Arc::new(disk), &dir, options).unwrap();
        let mut writer = WalWriter::new(wal, 0, Arc::new(WalStats::default()));
        assert_eq!(
            writer.write_batch(vec![job(1, 2)]),
            vec![WriteOutcome::Persisted { index: 2 }]
        );
        full.store(true, Ordering::SeqCst);
        let outcomes = writer.write_batch(vec![job(3, 2), job(5, 1)]);
        assert!(matches!(
            outcomes[0],
            WriteOutcome::Failed { first_index: 3, .. }
        ));
        // A job queued behind the failure, numbered after it, is dropped without a report: the
        // core already took it back, and may reuse its index.
        assert_eq!(writer.write_batch(vec![job(5, 1)]), vec![]);
        full.store(false, Ordering::SeqCst);
        assert_eq!(
            writer.write_batch(vec![job(3, 1)]),
            vec![WriteOutcome::Persisted { index: 3 }]
        );
        // Nothing half-written was left behind: recovery sees exactly entries 1..=3.
        let (_, records, report) =
            Wal::open(Arc::new(FsDisk), &dir, WalOptions::default()).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(report.truncated, None);
    }

    #[test]
    fn a_failed_fsync_is_fatal_and_not_retried() {
        let dir = temp_dir("fsync");
        let disk = FaultyDisk::default();
        disk.fail_sync.store(true, Ordering::SeqCst);
        let (wal, _, _) = Wal::open(Arc::new(disk), &dir, WalOptions::default()).unwrap();
        let writer = WalWriter::new(wal, 0, Arc::new(WalStats::default()));
        let (tx, rx) = std::sync::mpsc::channel();
        tx.send(job(1, 1)).unwrap();
        tx.send(job(2, 1)).unwrap();
        drop(tx);
        let reports = Mutex::new(Vec::new());
        writer.run(rx, |o| reports.lock().unwrap().push(o));
        let reports = reports.into_inner().unwrap();
        assert_eq!(
            reports.len(),
            1,
            "stops at the first fsync error: {reports:?}"
        );
        assert!(matches!(&reports[0], WriteOutcome::Fatal { error } if error.contains("fsync")));
    }
}
