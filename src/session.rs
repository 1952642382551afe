//! A client connection's state and the commands that concern only the connection: PING, ECHO,
//! HELLO, SELECT, QUIT, AUTH, and MULTI/EXEC/DISCARD/WATCH/UNWATCH queuing. Pure: it turns a
//! request's arguments into an [`Action`] and never touches I/O. Keyspace commands become
//! requests for the replica core; server commands (INFO, CONFIG, CLIENT, ...) go to the node.

use crate::command::{Command, CommandId, Route, wrong_arity};
use crate::keyspace::{DB_COUNT, parse_int};
use crate::log::WatchedKey;
use crate::replica::{ClientId, Op, Request, Response, ping_reply};
use crate::resp::{Frame, Protocol};
use bytes::Bytes;

/// What to do with one request.
#[derive(Debug)]
pub enum Action {
    /// Answer at once.
    Reply(Frame),
    /// Send to the replica core; its response comes back through [`Session::on_response`].
    Core(Request),
    /// A server command, for the node to answer with its own state.
    Server(Command),
    /// Answer, then close the connection (QUIT).
    ReplyAndClose(Frame),
}

#[derive(Debug, Default)]
struct Multi {
    queued: Vec<(u8, Command)>,
    /// A command failed to queue: EXEC must refuse (EXECABORT).
    failed: bool,
}

/// The server facts HELLO reports.
#[derive(Clone, Debug)]
pub struct HelloInfo {
    pub server: &'static str,
    pub version: &'static str,
    pub mode: &'static str,
    pub role: &'static str,
}

#[derive(Debug)]
pub struct Session {
    pub id: ClientId,
    pub db: u8,
    pub protocol: Protocol,
    pub name: Option<Bytes>,
    /// The name of the last command run (CLIENT LIST's `cmd`).
    pub last_command: &'static str,
    next_request_id: u64,
    multi: Option<Multi>,
    watched: Vec<WatchedKey>,
    /// The node's `requirepass`, if any, and whether this connection has passed it.
    requirepass: Option<std::sync::Arc<str>>,
    authenticated: bool,
}

const NOAUTH: &str = "NOAUTH Authentication required.";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

impl Session {
    /// A connection to a node that requires `requirepass` (if set) before any command.
    pub fn with_password(id: ClientId, requirepass: Option<std::sync::Arc<str>>) -> Session {
        Session {
            authenticated: requirepass.is_none(),
            requirepass,
            ..Session::new(id)
        }
    }

    pub fn new(id: ClientId) -> Session {
        Session {
            requirepass: None,
            authenticated: true,
            id,
            db: 0,
            protocol: Protocol::Resp2,
            name: None,
            last_command: "NULL",
            next_request_id: 0,
            multi: None,
            watched: Vec::new(),
        }
    }

    pub fn in_multi(&self) -> bool {
        self.multi.is_some()
    }

    pub fn watched_keys(&self) -> usize {
        self.watched.len()
    }

    fn request(&mut self, op: Op) -> Action {
        self.next_request_id += 1;
        Action::Core(Request {
            client: self.id,
            id: self.next_request_id,
            op,
        })
    }

    /// Handles one request. An empty request (`*0`, a blank inline line) gets no reply; the
    /// caller skips it before calling this.
    pub fn handle(&mut self, argv: Vec<Bytes>, hello: &HelloInfo) -> Action {
        let cmd = match Command::parse(argv) {
            Ok(cmd) => cmd,
            Err(error) => {
                if let Some(multi) = &mut self.multi {
                    multi.failed = true;
                }
                return Action::Reply(error);
            }
        };
        self.last_command = cmd.spec.name;
        if !self.authenticated
            && !matches!(
                cmd.id(),
                CommandId::Auth | CommandId::Hello | CommandId::Quit
            )
        {
            return Action::Reply(Frame::error(NOAUTH));
        }
        if self.multi.is_some() {
            return self.handle_in_multi(cmd);
        }
        match cmd.id() {
            CommandId::Ping => Action::Reply(match cmd.argv.len() {
                1 | 2 => ping_reply(&cmd.argv),
                _ => wrong_arity("ping"),
            }),
            CommandId::Echo => Action::Reply(Frame::Bulk(cmd.argv[1].clone())),
            CommandId::Select => Action::Reply(self.select(&cmd.argv[1])),
            CommandId::Quit => Action::ReplyAndClose(Frame::ok()),
            CommandId::Hello => Action::Reply(self.hello(&cmd.argv, hello)),
            CommandId::Auth => Action::Reply(self.auth(&cmd.argv)),
            CommandId::Multi => {
                self.multi = Some(Multi::default());
                Action::Reply(Frame::ok())
            }
            CommandId::Exec => Action::Reply(Frame::error("ERR EXEC without MULTI")),
            CommandId::Discard => Action::Reply(Frame::error("ERR DISCARD without MULTI")),
            CommandId::Watch => {
                let keys = cmd.argv[1..].to_vec();
                let db = self.db;
                self.request(Op::Watch { db, keys })
            }
            CommandId::Unwatch => {
                self.watched.clear();
                Action::Reply(Frame::ok())
            }
            CommandId::Wait => {
                let parsed = crate::keyspace::parse_int(&cmd.argv[1])
                    .and_then(|replicas| Ok((replicas, crate::keyspace::parse_int(&cmd.argv[2])?)));
                match parsed {
                    Err(error) => Action::Reply(error),
                    Ok((_, timeout_ms)) if timeout_ms < 0 => {
                        Action::Reply(Frame::error("ERR timeout is negative"))
                    }
                    Ok((replicas, timeout_ms)) => self.request(Op::Wait {
                        replicas: replicas.max(0) as u64,
                        timeout_ms: timeout_ms as u64,
                    }),
                }
            }
            _ => match cmd.spec.route {
                Route::Read | Route::Write => {
                    let db = self.db;
                    self.request(Op::Command { db, cmd })
                }
                Route::Server => Action::Server(cmd),
                Route::Connection => unreachable!("{} is handled above", cmd.spec.name),
            },
        }
    }

    fn handle_in_multi(&mut self, cmd: Command) -> Action {
        let multi = self.multi.as_mut().expect("in MULTI");
        match cmd.id() {
            CommandId::Multi => Action::Reply(Frame::error("ERR MULTI calls can not be nested")),
            CommandId::Watch => {
                Action::Reply(Frame::error("ERR WATCH inside MULTI is not allowed"))
            }
            CommandId::Discard => {
                self.multi = None;
                self.watched.clear();
                Action::Reply(Frame::ok())
            }
            CommandId::Quit => Action::ReplyAndClose(Frame::ok()),
            CommandId::Exec => {
                let multi = self.multi.take().unwrap();
                let watches = std::mem::take(&mut self.watched);
                if multi.failed {
                    return Action::Reply(Frame::error(
                        "EXECABORT Transaction discarded because of previous errors.",
                    ));
                }
                self.request(Op::Transaction {
                    commands: multi.queued,
                    watches,
                })
            }
            CommandId::Ping | CommandId::Echo => {
                multi.queued.push((self.db, cmd));
                Action::Reply(Frame::simple("QUEUED"))
            }
            _ if matches!(cmd.spec.route, Route::Read | Route::Write) => {
                multi.queued.push((self.db, cmd));
                Action::Reply(Frame::simple("QUEUED"))
            }
            _ => {
                multi.failed = true;
                Action::Reply(Frame::error(format!(
                    "ERR Command not allowed inside a transaction: '{}'",
                    cmd.spec.name
                )))
            }
        }
    }

    /// Turns the core's response into the reply frame, keeping WATCH's versions.
    pub fn on_response(&mut self, response: Response) -> Frame {
        match response {
            Response::Frame(frame) => frame,
            Response::Watched(keys) => {
                for key in keys {
                    if !self
                        .watched
                        .iter()
                        .any(|w| w.db == key.db && w.key == key.key)
                    {
                        self.watched.push(key);
                    }
                }
                Frame::ok()
            }
        }
    }

    fn select(&mut self, arg: &[u8]) -> Frame {
        match parse_int(arg) {
            Err(error) => error,
            Ok(db) if (0..DB_COUNT as i64).contains(&db) => {
                self.db = db as u8;
                Frame::ok()
            }
            Ok(_) => Frame::error("ERR DB index is out of range"),
        }
    }

    /// AUTH [username] password: only the `default` user exists, as in Redis with
    /// `requirepass`.
    fn auth(&mut self, argv: &[Bytes]) -> Frame {
        let (user, password) = match argv.len() {
            2 => (&b"default"[..], &argv[1]),
            3 => (&argv[1][..], &argv[2]),
            _ => return Frame::error("ERR syntax error"),
        };
        let Some(required) = self.requirepass.clone() else {
            if argv.len() == 3 {
                // The `default` user is `nopass` without requirepass: any password is fine.
                return if user == b"default" {
                    Frame::ok()
                } else {
                    Frame::error(WRONGPASS)
                };
            }
            return Frame::error(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            );
        };
        if user == b"default" && password_matches(&required, password) {
            self.authenticated = true;
            Frame::ok()
        } else {
            Frame::error(WRONGPASS)
        }
    }

    fn hello(&mut self, argv: &[Bytes], info: &HelloInfo) -> Frame {
        let mut protocol = self.protocol;
        let mut name = None;
        let mut authenticates = false;
        if let Some(version) = argv.get(1) {
            match parse_int(version) {
                Ok(2) => protocol = Protocol::Resp2,
                Ok(3) => protocol = Protocol::Resp3,
                Ok(_) => return Frame::error("NOPROTO unsupported protocol version"),
                Err(_) => {
                    return Frame::error("ERR Protocol version is not an integer or out of range");
                }
            }
            let mut i = 2;
            while i < argv.len() {
                let option = &argv[i];
                if option.eq_ignore_ascii_case(b"auth") && i + 2 < argv.len() {
                    // Only the `default` user exists. Without requirepass it is `nopass`, as
                    // in Redis: any password is accepted for it.
                    let user_ok = argv[i + 1].as_ref() == b"default";
                    let password_ok = self
                        .requirepass
                        .as_deref()
                        .is_none_or(|required| password_matches(required, &argv[i + 2]));
                    if !(user_ok && password_ok) {
                        return Frame::error(WRONGPASS);
                    }
                    authenticates = true;
                    i += 3;
                } else if option.eq_ignore_ascii_case(b"setname") && i + 1 < argv.len() {
                    if let Err(error) = check_client_name(&argv[i + 1]) {
                        return error;
                    }
                    name = Some(argv[i + 1].clone());
                    i += 2;
                } else {
                    return Frame::error(format!(
                        "ERR Syntax error in HELLO option '{}'",
                        String::from_utf8_lossy(option)
                    ));
                }
            }
        }
        if !self.authenticated && !authenticates {
            return Frame::error(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
            );
        }
        self.authenticated = true;
        self.protocol = protocol;
        if name.is_some() {
            self.name = name;
        }
        Frame::Map(vec![
            (Frame::bulk_str("server"), Frame::bulk_str(info.server)),
            (Frame::bulk_str("version"), Frame::bulk_str(info.version)),
            (
                Frame::bulk_str("proto"),
                Frame::Integer(if protocol == Protocol::Resp3 { 3 } else { 2 }),
            ),
            (Frame::bulk_str("id"), Frame::Integer(self.id as i64)),
            (Frame::bulk_str("mode"), Frame::bulk_str(info.mode)),
            (Frame::bulk_str("role"), Frame::bulk_str(info.role)),
            (Frame::bulk_str("modules"), Frame::Array(vec![])),
        ])
    }
}

/// Redis refuses client names with spaces or special characters.
pub fn check_client_name(name: &[u8]) -> Result<(), Frame> {
    if name.iter().all(|&c| (b'!'..=b'~').contains(&c)) {
        Ok(())
    } else {
        Err(Frame::error(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ))
    }
}

/// Compares a password without an early exit on the first differing byte, so that the time
/// taken says nothing about how much of it matched.
fn password_matches(required: &str, given: &[u8]) -> bool {
    let required = required.as_bytes();
    let mut difference = required.len() ^ given.len();
    for (i, byte) in given.iter().enumerate() {
        difference |= (required
            .get(i % required.len().max(1))
            .copied()
            .unwrap_or(0)
            ^ byte) as usize;
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> HelloInfo {
        HelloInfo {
            server: "quorum",
            version: "7.0.0",
            mode: "standalone",
            role: "master",
        }
    }

    fn run(s: &mut Session, words: &[&str]) -> Action {
        s.handle(
            words
                .iter()
                .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                .collect(),
            &info(),
        )
    }

    fn reply(action: Action) -> Frame {
        match action {
            Action::Reply(f) | Action::ReplyAndClose(f) => f,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn connection_commands_answer_locally() {
        let mut s = Session::new(7);
        assert_eq!(reply(run(&mut s, &["PING"])), Frame::simple("PONG"));
        assert_eq!(reply(run(&mut s, &["PING", "hi"])), Frame::bulk_str("hi"));
        assert_eq!(
            reply(run(&mut s, &["PING", "a", "b"])),
            Frame::error("ERR wrong number of arguments for 'ping' command")
        );
        assert_eq!(reply(run(&mut s, &["SELECT", "3"])), Frame::ok());
        assert_eq!(s.db, 3);
        assert_eq!(
            reply(run(&mut s, &["SELECT", "16"])),
            Frame::error("ERR DB index is out of range")
        );
        assert!(matches!(run(&mut s, &["QUIT"]), Action::ReplyAndClose(_)));
        assert!(matches!(run(&mut s, &["INFO"]), Action::Server(_)));
        let Action::Core(req) = run(&mut s, &["GET", "k"]) else {
            panic!()
        };
        assert!(matches!(req.op, Op::Command { db: 3, .. }));
    }

    #[test]
    fn hello_switches_protocol() {
        let mut s = Session::new(1);
        let Frame::Map(fields) = reply(run(&mut s, &["HELLO", "3", "SETNAME", "me"])) else {
            panic!()
        };
        assert_eq!(s.protocol, Protocol::Resp3);
        assert_eq!(s.name, Some(Bytes::from("me")));
        assert!(fields.contains(&(Frame::bulk_str("proto"), Frame::Integer(3))));
        assert_eq!(
            reply(run(&mut s, &["HELLO", "4"])),
            Frame::error("NOPROTO unsupported protocol version")
        );
        assert_eq!(s.protocol, Protocol::Resp3);
    }

    #[test]
    fn multi_queues_and_exec_sends_one_transaction() {
        let mut s = Session::new(1);
        assert_eq!(reply(run(&mut s, &["MULTI"])), Frame::ok());
        assert_eq!(
            reply(run(&mut s, &["MULTI"])),
            Frame::error("ERR MULTI calls can not be nested")
        );
        assert_eq!(
            reply(run(&mut s, &["SET", "a", "1"])),
            Frame::simple("QUEUED")
        );
        assert_eq!(reply(run(&mut s, &["INCR", "a"])), Frame::simple("QUEUED"));
        let Action::Core(req) = run(&mut s, &["EXEC"]) else {
            panic!()
        };
        let Op::Transaction { commands, .. } = req.op else {
            panic!()
        };
        assert_eq!(commands.len(), 2);
        assert!(!s.in_multi());
    }

    #[test]
    fn a_queuing_error_aborts_exec() {
        let mut s = Session::new(1);
        run(&mut s, &["MULTI"]);
        assert_eq!(
            reply(run(&mut s, &["GET"])),
            Frame::error("ERR wrong number of arguments for 'get' command")
        );
        assert_eq!(
            reply(run(&mut s, &["EXEC"])),
            Frame::error("EXECABORT Transaction discarded because of previous errors.")
        );
        assert_eq!(
            reply(run(&mut s, &["EXEC"])),
            Frame::error("ERR EXEC without MULTI")
        );
        assert_eq!(
            reply(run(&mut s, &["DISCARD"])),
            Frame::error("ERR DISCARD without MULTI")
        );
    }

    #[test]
    fn watch_versions_travel_with_exec_and_are_then_cleared() {
        let mut s = Session::new(1);
        let Action::Core(_) = run(&mut s, &["WATCH", "k"]) else {
            panic!()
        };
        let watched = vec![WatchedKey {
            db: 0,
            key: Bytes::from("k"),
            version: Some(4),
        }];
        assert_eq!(
            s.on_response(Response::Watched(watched.clone())),
            Frame::ok()
        );
        run(&mut s, &["MULTI"]);
        assert_eq!(
            reply(run(&mut s, &["WATCH", "x"])),
            Frame::error("ERR WATCH inside MULTI is not allowed")
        );
        let Action::Core(req) = run(&mut s, &["EXEC"]) else {
            panic!()
        };
        let Op::Transaction { watches, .. } = req.op else {
            panic!()
        };
        assert_eq!(watches, watched);
        assert_eq!(s.watched_keys(), 0);
    }
}
