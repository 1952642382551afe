//! Starts real `quorum node` processes for the integration tests, and talks raw RESP to them.
#![allow(dead_code)]

use quorum::resp::{self, Frame, Limits};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_quorum");

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "quorum-test-{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct Node {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    stderr: mpsc::Receiver<String>,
}

impl Node {
    /// Starts a node on a free port with data in `dir`; panics if it does not come up.
    pub fn start(dir: &Path) -> Node {
        Node::try_start(dir, &[]).unwrap_or_else(|stderr| panic!("node did not start:\n{stderr}"))
    }

    /// Starts a node; `Err` carries its stderr if it exits instead of listening.
    pub fn try_start(dir: &Path, extra: &[&str]) -> Result<Node, String> {
        Node::try_start_on(dir, 0, extra)
    }

    /// Starts a node on `port` (0: a free one); `Err` carries its stderr if it exits instead
    /// of listening.
    pub fn try_start_on(dir: &Path, port: u16, extra: &[&str]) -> Result<Node, String> {
        let mut child = Command::new(BIN)
            .args(["node", "--port", &port.to_string(), "--dir"])
            .arg(dir)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn quorum");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (err_tx, err_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = err_tx.send(line);
            }
        });
        let (port_tx, port_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("quorum node listening on ") {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let port = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
                    let _ = port_tx.send(port);
                }
            }
        });
        match port_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(port)) => Ok(Node {
                child,
                port,
                dir: dir.to_path_buf(),
                stderr: err_rx,
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                Err(err_rx.try_iter().collect::<Vec<_>>().join("\n"))
            }
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .expect("connect to quorum")
    }

    pub fn raw(&self) -> Raw {
        Raw::connect(self.port)
    }

    /// Pulls the power: SIGKILL, no chance to flush anything.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// A planned stop: SIGTERM, then wait for the process to exit; returns whether it exited
    /// successfully.
    pub fn terminate(mut self) -> bool {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Log lines the node has written to stderr so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw RESP connection: exact bytes in, decoded frames out.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends one command as a multibulk and reads its reply.
    pub fn cmd(&mut self, args: &[&str]) -> Frame {
        let mut out = Vec::new();
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        resp::encode_request(&args, &mut out);
        self.send(&out);
        self.read().expect("a reply")
    }

    /// Reads one reply frame; `None` when the server closed the connection.
    pub fn read(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = resp::decode_frame(&self.buf, &Limits::default()).unwrap()
            {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// True once the server has closed the connection (reads EOF).
    pub fn is_closed(&mut self) -> bool {
        self.read().is_none()
    }
}

pub fn bulk(s: &str) -> Frame {
    Frame::bulk_str(s)
}

pub fn err(s: &str) -> Frame {
    Frame::error(s)
}

/// Three consecutive client ports whose peer ports (+10000) are free too. Each call starts its
/// search elsewhere, so tests running in parallel do not pick the same ports. Both ports stay
/// below Linux's ephemeral range (from 32768): a node restarted on its port must not find it
/// taken by some client connection's local end.
pub fn free_cluster_ports() -> Vec<u16> {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let span = 22_700 - 12_000;
    let offset = ((std::process::id() * 11 + call * 997) % span) as u16;
    for step in (0..span as u16).step_by(3) {
        let base = 12_000 + (offset + step) % (span as u16 - 3);
        let ports: Vec<u16> = (base..base + 3).collect();
        let free = ports.iter().all(|p| {
            std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", *p + 10_000)).is_ok()
        });
        if free {
            return ports;
        }
    }
    panic!("no free ports");
}
