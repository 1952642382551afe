//! redis-cli against a real `quorum node`: plain commands, and the argument hints it shows
//! while one types interactively. redis-cli 7 builds those hints from `COMMAND DOCS`, so they
//! show that our docs are Redis's. The interactive test runs redis-cli in a pseudo-terminal
//! under tmux. Both tools are required: a missing tool fails the test rather than skipping it
//! (CI installs redis-tools and tmux).

mod common;

use common::{Node, bulk, temp_dir};
use quorum::resp::Frame;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Runs `tool args`, failing the test with how to install it when it is missing.
fn run(tool: &str, args: &[&str]) -> Output {
    let package = if tool == "tmux" {
        "tmux"
    } else {
        "redis-tools"
    };
    Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {tool} ({e}): install it, e.g. `sudo apt-get install {package}`")
    })
}

/// redis-cli before 7 ignores `COMMAND DOCS` and hints from a table of its own, so testing
/// with it would prove nothing about our docs.
fn require_redis_cli_7() {
    let out = run("redis-cli", &["-v"]);
    let version = String::from_utf8_lossy(&out.stdout).to_string();
    let major: u32 = version
        .trim()
        .strip_prefix("redis-cli ")
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the version of redis-cli from {version:?}"));
    assert!(
        major >= 7,
        "{} is too old: hints from COMMAND DOCS need redis-cli 7 (install redis-tools 7)",
        version.trim()
    );
}

fn cli(port: u16, args: &[&str]) -> String {
    let port = port.to_string();
    let mut all = vec!["-p", &port];
    all.extend_from_slice(args);
    let out = run("redis-cli", &all);
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn redis_cli_runs_commands() {
    let node = Node::start(&temp_dir("cli"));
    assert_eq!(cli(node.port, &["SET", "k", "v"]), "OK\n");
    assert_eq!(cli(node.port, &["GET", "k"]), "v\n");
    assert_eq!(cli(node.port, &["GET", "missing"]), "\n");
    assert_eq!(cli(node.port, &["RPUSH", "l", "a", "b", "a"]), "3\n");
    assert_eq!(cli(node.port, &["LPOS", "l", "a", "RANK", "2"]), "2\n");
}

/// A tmux server on a socket of its own (so nothing touches the user's tmux) running one
/// session; dropping it kills that server, even when the test fails.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let socket = format!(
            "quorum-cli-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let out = run(
            "tmux",
            &[
                "-L",
                &socket,
                "new-session",
                "-d",
                "-s",
                "cli",
                "-x",
                "200",
                "-y",
                "20",
                command,
            ],
        );
        assert!(out.status.success(), "tmux new-session: {out:?}");
        Tmux { socket }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let mut all = vec!["-L", &self.socket];
        all.extend_from_slice(args);
        let out = run("tmux", &all);
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Clears the input line (Ctrl-U) and types `text` without pressing Enter.
    fn retype(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "cli", "C-u"]);
        self.tmux(&["send-keys", "-t", "cli", "-l", text]);
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-t", "cli", "-p"])
    }

    /// Waits until some line of the screen, without trailing blanks, is `line`.
    fn wait_for_line(&self, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.screen();
            if screen.lines().any(|l| l.trim_end() == line) {
                return;
            }
            if Instant::now() > deadline {
                panic!("expected the line\n{line}\non the screen, which shows:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let tmux = |args: &[&str]| {
            Command::new("tmux")
                .arg("-L")
                .arg(&self.socket)
                .args(args)
                .output()
        };
        let path = tmux(&["display-message", "-p", "#{socket_path}"]);
        let _ = tmux(&["kill-server"]);
        // tmux leaves its socket file behind.
        if let Ok(path) = path {
            let path = String::from_utf8_lossy(&path.stdout).trim().to_owned();
            if path.ends_with(&self.socket) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

#[test]
fn redis_cli_shows_redis_argument_hints() {
    require_redis_cli_7();
    let node = Node::start(&temp_dir("cli-hints"));
    // The hints must come from our COMMAND DOCS, not from redis-cli's own table, which it
    // uses only when COMMAND DOCS fails.
    let mut raw = node.raw();
    raw.cmd(&["HELLO", "3"]);
    let Frame::Map(docs) = raw.cmd(&["COMMAND", "DOCS", "SET"]) else {
        panic!("COMMAND DOCS SET is not a map");
    };
    let Frame::Map(set) = &docs[0].1 else {
        panic!("COMMAND DOCS SET has no docs for set");
    };
    assert!(set.iter().any(|(k, _)| *k == bulk("arguments")));

    // No history file and no ~/.redisclirc, whose `:set nohints` would hide the hints.
    let tmux = Tmux::start(&format!(
        "env REDISCLI_HISTFILE=/dev/null REDISCLI_RCFILE=/dev/null redis-cli -p {}",
        node.port
    ));
    let prompt = format!("127.0.0.1:{}>", node.port);
    tmux.wait_for_line(&prompt);
    // Each typed line with what redis-cli 7.0.15 shows after it against Redis 7.0.15.
    let cases = [
        (
            "SET k",
            " value [NX|XX] [GET] [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|KEEPTTL]",
        ),
        (
            "LPOS mylist ",
            "element [RANK rank] [COUNT num-matches] [MAXLEN len]",
        ),
        ("HSET h f v ", "[field value ...]"),
        ("SINTERCARD 2 ", "key [key ...] [LIMIT limit]"),
        ("SCAN 0 ", "[MATCH pattern] [COUNT count] [TYPE type]"),
        ("LINSERT l ", "BEFORE|AFTER pivot element"),
        (
            "HELLO ",
            "[protover [AUTH username password] [SETNAME clientname]]",
        ),
        ("HRANDFIELD h ", "[count [WITHVALUES]]"),
    ];
    for (typed, hint) in cases {
        tmux.retype(typed);
        tmux.wait_for_line(&format!("{prompt} {typed}{hint}"));
    }
}
