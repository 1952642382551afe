//! Test support (the `testing` feature, and the crate's own unit tests): a disk with injected
//! faults.

use crate::wal::{Disk, DiskFile, FsDisk};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The real file system, with faults switched on and off by the test:
/// - while `full` is set it refuses to grow any file or create one, with ENOSPC, as a full
///   disk does (writes into space a file already has succeed);
/// - while `fail_sync` is set every fsync fails with EIO;
/// - while `stall_sync` is set every fsync waits (a stuck disk), and `syncs` counts the fsyncs
///   that completed, so a test can see whether a reply came before its fsync;
/// - every fsync takes `sync_delay_ms` more (a slow disk).
#[derive(Clone, Default)]
pub struct FaultyDisk {
    pub full: Arc<AtomicBool>,
    pub fail_sync: Arc<AtomicBool>,
    pub stall_sync: Arc<AtomicBool>,
    pub syncs: Arc<std::sync::atomic::AtomicU64>,
    pub sync_delay_ms: Arc<std::sync::atomic::AtomicU64>,
}

struct FaultyFile {
    inner: Box<dyn DiskFile>,
    path: PathBuf,
    disk: FaultyDisk,
}

fn no_space() -> io::Error {
    io::Error::from_raw_os_error(28)
}

impl DiskFile for FaultyFile {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let size = std::fs::metadata(&self.path)?.len();
        let end = offset + bytes.len() as u64;
        if self.disk.full.load(Ordering::SeqCst) && end > size {
            // Whatever fits in the existing space lands; the growth does not.
            let fits = size.saturating_sub(offset) as usize;
            self.inner
                .write_at(offset, &bytes[..fits.min(bytes.len())])?;
            return Err(no_space());
        }
        self.inner.write_at(offset, bytes)
    }
    fn sync(&mut self) -> io::Result<()> {
        if self.disk.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(5));
        }
        while self.disk.stall_sync.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let delay_ms = self.disk.sync_delay_ms.load(Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        self.inner.sync()?;
        self.disk.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }
}

impl Disk for FaultyDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        FsDisk.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        FsDisk.list(dir)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        FsDisk.read(path)
    }
    fn create_durable(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            return Err(no_space());
        }
        FsDisk.create_durable(path, contents)
    }
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        Ok(Box::new(FaultyFile {
            inner: FsDisk.open_write(path)?,
            path: path.to_path_buf(),
            disk: self.clone(),
        }))
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        FsDisk.truncate(path, len)
    }
    fn copy(&self, from: &Path, to: &Path) -> io::Result<()> {
        FsDisk.copy(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        FsDisk.remove(path)
    }
}

/// Runs a node in this process, on its own runtime thread, with its WAL on `disk`. Returns the
/// port it listens on and a sender that stops it (its runtime, tasks and WAL writer all end).
pub fn start_in_process(dir: &Path, disk: FaultyDisk) -> (u16, tokio::sync::oneshot::Sender<()>) {
    use crate::node::{NodeConfig, NodeEnv};
    let config = NodeConfig {
        port: 0,
        dir: dir.to_path_buf(),
        ..NodeConfig::default()
    };
    start_node_in_process(config, NodeEnv::real(Arc::new(disk)))
}

/// Runs a node with `config` in `env` in this process, on its own runtime thread (see
/// [`start_in_process`]). The node also stops when `env.on_fatal` returns.
pub fn start_node_in_process(
    config: crate::node::NodeConfig,
    env: crate::node::NodeEnv,
) -> (u16, tokio::sync::oneshot::Sender<()>) {
    use crate::node::run_with;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the in-process node");
        let ready = Box::new(move |addr: std::net::SocketAddr| {
            let _ = tx.send(addr.port());
        });
        let stop = Box::pin(async move {
            let _ = stop_rx.await;
        });
        let _ = runtime.block_on(run_with(config, env, ready, stop));
    });
    let port = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the in-process node starts");
    (port, stop_tx)
}

pub mod cluster;
pub mod workload;
