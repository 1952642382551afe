//! The command table: one row per command (name, arity, flags, key positions, docs), and
//! [`Command::parse`], which turns a request's arguments into a command or into the exact error
//! Redis would reply. An unknown command is a value ([`Frame::Error`]), never a Rust error.

use crate::resp::Frame;
use bytes::Bytes;

/// Where a command is carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Reads the keyspace; served at a linearizable point of the log.
    Read,
    /// Changes the keyspace; goes through the replicated log.
    Write,
    /// Concerns only the client's connection (PING, SELECT, MULTI, ...).
    Connection,
    /// Reports or changes the server itself (INFO, CONFIG, CLIENT, TIME, ...).
    Server,
}

macro_rules! commands {
    ($( $id:ident $name:literal $arity:literal $route:ident [$($flag:literal),*] $first:literal $last:literal $step:literal $group:literal $since:literal $summary:literal ;)*) => {
        /// Every command quorum knows, by name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum CommandId { $($id),* }

        /// The table, in the order of [`CommandId`].
        pub static COMMANDS: &[CommandSpec] = &[
            $(CommandSpec {
                id: CommandId::$id,
                name: $name,
                arity: $arity,
                route: Route::$route,
                flags: &[$($flag),*],
                first_key: $first,
                last_key: $last,
                key_step: $step,
                group: $group,
                since: $since,
                summary: $summary,
            }),*
        ];
    };
}

/// One row of the command table. `arity` follows Redis: positive is exact (the name counts),
/// negative is a minimum.
#[derive(Debug)]
pub struct CommandSpec {
    pub id: CommandId,
    pub name: &'static str,
    pub arity: i32,
    pub route: Route,
    pub flags: &'static [&'static str],
    pub first_key: i32,
    pub last_key: i32,
    pub key_step: i32,
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
}

commands! {
    // connection
    Ping "ping" -1 Connection ["fast"] 0 0 0 "connection" "1.0.0" "Returns the server's liveliness response.";
    Echo "echo" 2 Connection ["fast"] 0 0 0 "connection" "1.0.0" "Returns the given string.";
    Hello "hello" -1 Connection ["noscript", "loading", "stale", "fast", "no_auth"] 0 0 0 "connection" "6.0.0" "Handshakes with the Redis server.";
    Select "select" 2 Connection ["loading", "stale", "fast"] 0 0 0 "connection" "1.0.0" "Changes the selected database.";
    Quit "quit" -1 Connection ["noscript", "loading", "stale", "fast", "no_auth"] 0 0 0 "connection" "1.0.0" "Closes the connection.";
    Auth "auth" -2 Connection ["noscript", "loading", "stale", "fast", "no_auth"] 0 0 0 "connection" "1.0.0" "Authenticates the connection.";
    Client "client" -2 Server ["noscript", "loading", "stale"] 0 0 0 "connection" "2.4.0" "A container for client connection commands.";
    Multi "multi" 1 Connection ["noscript", "loading", "stale", "fast"] 0 0 0 "transactions" "1.2.0" "Starts a transaction.";
    Exec "exec" 1 Connection ["noscript", "loading", "stale", "skip_slowlog"] 0 0 0 "transactions" "1.2.0" "Executes all commands in a transaction.";
    Discard "discard" 1 Connection ["noscript", "loading", "stale", "fast"] 0 0 0 "transactions" "2.0.0" "Discards a transaction.";
    Watch "watch" -2 Connection ["noscript", "loading", "stale", "fast"] 1 -1 1 "transactions" "2.2.0" "Monitors changes to keys to determine the execution of a transaction.";
    Unwatch "unwatch" 1 Connection ["noscript", "loading", "stale", "fast"] 0 0 0 "transactions" "2.2.0" "Forgets about watched keys of a transaction.";
    Wait "wait" 3 Connection ["noscript"] 0 0 0 "generic" "3.0.0" "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.";
    // server
    Info "info" -1 Server ["loading", "stale"] 0 0 0 "server" "1.0.0" "Returns information and statistics about the server.";
    Dbsize "dbsize" 1 Read ["readonly", "fast"] 0 0 0 "server" "1.0.0" "Returns the number of keys in the database.";
    Flushdb "flushdb" -1 Write ["write"] 0 0 0 "server" "1.0.0" "Removes all keys from the current database.";
    Flushall "flushall" -1 Write ["write"] 0 0 0 "server" "1.0.0" "Removes all keys from all databases.";
    Role "role" 1 Server ["noscript", "loading", "stale", "fast"] 0 0 0 "server" "2.8.12" "Returns the replication role.";
    Time "time" 1 Server ["loading", "stale", "fast"] 0 0 0 "server" "2.6.0" "Returns the server time.";
    Command "command" -1 Server ["loading", "stale"] 0 0 0 "server" "2.8.13" "Returns detailed information about all commands.";
    Config "config" -2 Server ["admin", "noscript", "loading", "stale"] 0 0 0 "server" "2.0.0" "A container for server configuration commands.";
    // strings
    Get "get" 2 Read ["readonly", "fast"] 1 1 1 "string" "1.0.0" "Returns the string value of a key.";
    Set "set" -3 Write ["write", "denyoom"] 1 1 1 "string" "1.0.0" "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.";
    Setnx "setnx" 3 Write ["write", "denyoom", "fast"] 1 1 1 "string" "1.0.0" "Set the string value of a key only when the key doesn't exist.";
    Setex "setex" 4 Write ["write", "denyoom"] 1 1 1 "string" "2.0.0" "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.";
    Psetex "psetex" 4 Write ["write", "denyoom"] 1 1 1 "string" "2.6.0" "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.";
    Mget "mget" -2 Read ["readonly", "fast"] 1 -1 1 "string" "1.0.0" "Atomically returns the string values of one or more keys.";
    Mset "mset" -3 Write ["write", "denyoom"] 1 -1 2 "string" "1.0.1" "Atomically creates or modifies the string values of one or more keys.";
    Msetnx "msetnx" -3 Write ["write", "denyoom"] 1 -1 2 "string" "1.0.1" "Atomically modifies the string values of one or more keys only when all keys don't exist.";
    Getset "getset" 3 Write ["write", "denyoom", "fast"] 1 1 1 "string" "1.0.0" "Returns the previous string value of a key after setting it to a new value.";
    Getdel "getdel" 2 Write ["write", "fast"] 1 1 1 "string" "6.2.0" "Returns the string value of a key after deleting the key.";
    Getex "getex" -2 Write ["write", "fast"] 1 1 1 "string" "6.2.0" "Returns the string value of a key after setting its expiration time.";
    Append "append" 3 Write ["write", "denyoom", "fast"] 1 1 1 "string" "2.0.0" "Appends a string to the value of a key. Creates the key if it doesn't exist.";
    Strlen "strlen" 2 Read ["readonly", "fast"] 1 1 1 "string" "2.2.0" "Returns the length of a string value.";
    Incr "incr" 2 Write ["write", "denyoom", "fast"] 1 1 1 "string" "1.0.0" "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.";
    Decr "decr" 2 Write ["write", "denyoom", "fast"] 1 1 1 "string" "1.0.0" "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.";
    Incrby "incrby" 3 Write ["write", "denyoom", "fast"] 1 1 1 "string" "1.0.0" "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.";
    Decrby "decrby" 3 Write ["write", "denyoom", "fast"] 1 1 1 "string" "1.0.0" "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.";
    Incrbyfloat "incrbyfloat" 3 Write ["write", "denyoom", "fast"] 1 1 1 "string" "2.6.0" "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.";
    Getrange "getrange" 4 Read ["readonly"] 1 1 1 "string" "2.4.0" "Returns a substring of the string stored at a key.";
    Setrange "setrange" 4 Write ["write", "denyoom"] 1 1 1 "string" "2.2.0" "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.";
    // keys
    Del "del" -2 Write ["write"] 1 -1 1 "generic" "1.0.0" "Deletes one or more keys.";
    Unlink "unlink" -2 Write ["write", "fast"] 1 -1 1 "generic" "4.0.0" "Asynchronously deletes one or more keys.";
    Exists "exists" -2 Read ["readonly", "fast"] 1 -1 1 "generic" "1.0.0" "Determines whether one or more keys exist.";
    Type "type" 2 Read ["readonly", "fast"] 1 1 1 "generic" "1.0.0" "Determines the type of value stored at a key.";
    Expire "expire" -3 Write ["write", "fast"] 1 1 1 "generic" "1.0.0" "Sets the expiration time of a key in seconds.";
    Pexpire "pexpire" -3 Write ["write", "fast"] 1 1 1 "generic" "2.6.0" "Sets the expiration time of a key in milliseconds.";
    Expireat "expireat" -3 Write ["write", "fast"] 1 1 1 "generic" "1.2.0" "Sets the expiration time of a key to a Unix timestamp.";
    Pexpireat "pexpireat" -3 Write ["write", "fast"] 1 1 1 "generic" "2.6.0" "Sets the expiration time of a key to a Unix milliseconds timestamp.";
    Ttl "ttl" 2 Read ["readonly", "fast"] 1 1 1 "generic" "1.0.0" "Returns the expiration time in seconds of a key.";
    Pttl "pttl" 2 Read ["readonly", "fast"] 1 1 1 "generic" "2.6.0" "Returns the expiration time in milliseconds of a key.";
    Expiretime "expiretime" 2 Read ["readonly", "fast"] 1 1 1 "generic" "7.0.0" "Returns the expiration time of a key as a Unix timestamp.";
    Pexpiretime "pexpiretime" 2 Read ["readonly", "fast"] 1 1 1 "generic" "7.0.0" "Returns the expiration time of a key as a Unix milliseconds timestamp.";
    Persist "persist" 2 Write ["write", "fast"] 1 1 1 "generic" "2.2.0" "Removes the expiration time of a key.";
    Keys "keys" 2 Read ["readonly"] 0 0 0 "generic" "1.0.0" "Returns all key names that match a pattern.";
    Scan "scan" -2 Read ["readonly"] 0 0 0 "generic" "2.8.0" "Iterates over the key names in the database.";
    Rename "rename" 3 Write ["write"] 1 2 1 "generic" "1.0.0" "Renames a key and overwrites the destination.";
    Renamenx "renamenx" 3 Write ["write", "fast"] 1 2 1 "generic" "1.0.0" "Renames a key only when the target key name doesn't exist.";
    Randomkey "randomkey" 1 Read ["readonly"] 0 0 0 "generic" "1.0.0" "Returns a random key name from the database.";
    Copy "copy" -3 Write ["write", "denyoom"] 1 2 1 "generic" "6.2.0" "Copies the value of a key to a new key.";
    // lists
    Lpush "lpush" -3 Write ["write", "denyoom", "fast"] 1 1 1 "list" "1.0.0" "Prepends one or more elements to a list. Creates the key if it doesn't exist.";
    Rpush "rpush" -3 Write ["write", "denyoom", "fast"] 1 1 1 "list" "1.0.0" "Appends one or more elements to a list. Creates the key if it doesn't exist.";
    Lpushx "lpushx" -3 Write ["write", "denyoom", "fast"] 1 1 1 "list" "2.2.0" "Prepends one or more elements to a list only when the list exists.";
    Rpushx "rpushx" -3 Write ["write", "denyoom", "fast"] 1 1 1 "list" "2.2.0" "Appends an element to a list only when the list exists.";
    Lpop "lpop" -2 Write ["write", "fast"] 1 1 1 "list" "1.0.0" "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.";
    Rpop "rpop" -2 Write ["write", "fast"] 1 1 1 "list" "1.0.0" "Returns and removes the last elements of a list. Deletes the list if the last element was popped.";
    Llen "llen" 2 Read ["readonly", "fast"] 1 1 1 "list" "1.0.0" "Returns the length of a list.";
    Lrange "lrange" 4 Read ["readonly"] 1 1 1 "list" "1.0.0" "Returns a range of elements from a list.";
    Lindex "lindex" 3 Read ["readonly"] 1 1 1 "list" "1.0.0" "Returns an element from a list by its index.";
    Lset "lset" 4 Write ["write", "denyoom"] 1 1 1 "list" "1.0.0" "Sets the value of an element in a list by its index.";
    Lrem "lrem" 4 Write ["write"] 1 1 1 "list" "1.0.0" "Removes elements from a list. Deletes the list if the last element was removed.";
    Ltrim "ltrim" 4 Write ["write"] 1 1 1 "list" "1.0.0" "Removes elements from both ends a list. Deletes the list if all elements were trimmed.";
    Linsert "linsert" 5 Write ["write", "denyoom"] 1 1 1 "list" "2.2.0" "Inserts an element before or after another element in a list.";
    Lpos "lpos" -3 Read ["readonly"] 1 1 1 "list" "6.0.6" "Returns the index of matching elements in a list.";
    Lmove "lmove" 5 Write ["write", "denyoom"] 1 2 1 "list" "6.2.0" "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved.";
    Rpoplpush "rpoplpush" 3 Write ["write", "denyoom"] 1 2 1 "list" "1.2.0" "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped.";
    // hashes
    Hset "hset" -4 Write ["write", "denyoom", "fast"] 1 1 1 "hash" "2.0.0" "Creates or modifies the value of a field in a hash.";
    Hsetnx "hsetnx" 4 Write ["write", "denyoom", "fast"] 1 1 1 "hash" "2.0.0" "Sets the value of a field in a hash only when the field doesn't exist.";
    Hget "hget" 3 Read ["readonly", "fast"] 1 1 1 "hash" "2.0.0" "Returns the value of a field in a hash.";
    Hmget "hmget" -3 Read ["readonly", "fast"] 1 1 1 "hash" "2.0.0" "Returns the values of all fields in a hash.";
    Hmset "hmset" -4 Write ["write", "denyoom", "fast"] 1 1 1 "hash" "2.0.0" "Sets the values of multiple fields.";
    Hdel "hdel" -3 Write ["write", "fast"] 1 1 1 "hash" "2.0.0" "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.";
    Hlen "hlen" 2 Read ["readonly", "fast"] 1 1 1 "hash" "2.0.0" "Returns the number of fields in a hash.";
    Hexists "hexists" 3 Read ["readonly", "fast"] 1 1 1 "hash" "2.0.0" "Determines whether a field exists in a hash.";
    Hkeys "hkeys" 2 Read ["readonly"] 1 1 1 "hash" "2.0.0" "Returns all fields in a hash.";
    Hvals "hvals" 2 Read ["readonly"] 1 1 1 "hash" "2.0.0" "Returns all values in a hash.";
    Hgetall "hgetall" 2 Read ["readonly"] 1 1 1 "hash" "2.0.0" "Returns all fields and values in a hash.";
    Hincrby "hincrby" 4 Write ["write", "denyoom", "fast"] 1 1 1 "hash" "2.0.0" "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.";
    Hincrbyfloat "hincrbyfloat" 4 Write ["write", "denyoom", "fast"] 1 1 1 "hash" "2.6.0" "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist.";
    Hstrlen "hstrlen" 3 Read ["readonly", "fast"] 1 1 1 "hash" "3.2.0" "Returns the length of the value of a field.";
    Hscan "hscan" -3 Read ["readonly"] 1 1 1 "hash" "2.8.0" "Iterates over fields and values of a hash.";
    Hrandfield "hrandfield" -2 Read ["readonly"] 1 1 1 "hash" "6.2.0" "Returns one or more random fields from a hash.";
    // sets
    Sadd "sadd" -3 Write ["write", "denyoom", "fast"] 1 1 1 "set" "1.0.0" "Adds one or more members to a set. Creates the key if it doesn't exist.";
    Srem "srem" -3 Write ["write", "fast"] 1 1 1 "set" "1.0.0" "Removes one or more members from a set. Deletes the set if the last member was removed.";
    Smembers "smembers" 2 Read ["readonly"] 1 1 1 "set" "1.0.0" "Returns all members of a set.";
    Sismember "sismember" 3 Read ["readonly", "fast"] 1 1 1 "set" "1.0.0" "Determines whether a member belongs to a set.";
    Smismember "smismember" -3 Read ["readonly", "fast"] 1 1 1 "set" "6.2.0" "Determines whether multiple members belong to a set.";
    Scard "scard" 2 Read ["readonly", "fast"] 1 1 1 "set" "1.0.0" "Returns the number of members in a set.";
    Spop "spop" -2 Write ["write", "fast"] 1 1 1 "set" "1.0.0" "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.";
    Srandmember "srandmember" -2 Read ["readonly"] 1 1 1 "set" "1.0.0" "Get one or multiple random members from a set";
    Smove "smove" 4 Write ["write", "fast"] 1 2 1 "set" "1.0.0" "Moves a member from one set to another.";
    Sinter "sinter" -2 Read ["readonly"] 1 -1 1 "set" "1.0.0" "Returns the intersect of multiple sets.";
    Sinterstore "sinterstore" -3 Write ["write", "denyoom"] 1 -1 1 "set" "1.0.0" "Stores the intersect of multiple sets in a key.";
    Sintercard "sintercard" -3 Read ["readonly", "movablekeys"] 0 0 0 "set" "7.0.0" "Returns the number of members of the intersect of multiple sets.";
    Sunion "sunion" -2 Read ["readonly"] 1 -1 1 "set" "1.0.0" "Returns the union of multiple sets.";
    Sunionstore "sunionstore" -3 Write ["write", "denyoom"] 1 -1 1 "set" "1.0.0" "Stores the union of multiple sets in a key.";
    Sdiff "sdiff" -2 Read ["readonly"] 1 -1 1 "set" "1.0.0" "Returns the difference of multiple sets.";
    Sdiffstore "sdiffstore" -3 Write ["write", "denyoom"] 1 -1 1 "set" "1.0.0" "Stores the difference of multiple sets in a key.";
    Sscan "sscan" -3 Read ["readonly"] 1 1 1 "set" "2.8.0" "Iterates over members of a set.";
}

impl CommandSpec {
    /// Looks a command up by name, in any letter case. This runs for every request, so it is
    /// a hash of length and end letters into a small table: usually one comparison.
    pub fn find(name: &[u8]) -> Option<&'static CommandSpec> {
        if name.is_empty() || name.len() > 16 {
            return None;
        }
        let mut lower = [0u8; 16];
        for (dst, src) in lower.iter_mut().zip(name) {
            *dst = src.to_ascii_lowercase();
        }
        let lower = &lower[..name.len()];
        by_name()[name_slot(lower)]
            .iter()
            .find(|spec| spec.name.as_bytes() == lower)
            .copied()
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let arity = self.arity;
        if arity >= 0 {
            argc == arity as usize
        } else {
            argc >= (-arity) as usize
        }
    }

    /// `COMMAND INFO`'s reply for this command, in Redis 7's shape.
    pub fn info_frame(&self) -> Frame {
        let flags = self.flags.iter().map(|f| Frame::simple(f)).collect();
        let category = match self.route {
            Route::Read => "@read",
            Route::Write => "@write",
            Route::Connection => "@connection",
            Route::Server => "@admin",
        };
        Frame::Array(vec![
            Frame::bulk_str(self.name),
            Frame::Integer(self.arity as i64),
            Frame::Set(flags),
            Frame::Integer(self.first_key as i64),
            Frame::Integer(self.last_key as i64),
            Frame::Integer(self.key_step as i64),
            Frame::Set(vec![
                Frame::simple(category),
                Frame::Simple(format!("@{}", self.group)),
            ]),
            Frame::Array(vec![]),
            Frame::Array(vec![]),
            Frame::Array(vec![]),
        ])
    }

    /// `COMMAND DOCS`'s reply for this command: summary, since, group, complexity and the
    /// argument tree redis-cli builds its hints from (see [`crate::command_docs`]).
    pub fn docs_frame(&self) -> Frame {
        let mut map = vec![
            (Frame::bulk_str("summary"), Frame::bulk_str(self.summary)),
            (Frame::bulk_str("since"), Frame::bulk_str(self.since)),
            (Frame::bulk_str("group"), Frame::bulk_str(self.group)),
        ];
        if let Some((complexity, _)) = crate::command_docs::find(self.name) {
            map.push((Frame::bulk_str("complexity"), Frame::bulk_str(complexity)));
        }
        // A unit test parses every command's usage line, so an error cannot happen here; were
        // it to, the command would only lose its hints. Like Redis, no arguments, no field.
        match crate::command_docs::arguments(self.name) {
            Ok(args) if !args.is_empty() => map.push((
                Frame::bulk_str("arguments"),
                crate::command_docs::arguments_frame(&args),
            )),
            _ => {}
        }
        Frame::Map(map)
    }

    /// The positions of the keys in `argv`, following first/last/step.
    pub fn key_positions(&self, argc: usize) -> impl Iterator<Item = usize> {
        let first = self.first_key.max(0) as usize;
        let last = if self.last_key < 0 {
            (argc as i32 + self.last_key).max(0) as usize
        } else {
            (self.last_key as usize).min(argc.saturating_sub(1))
        };
        let step = self.key_step.max(1) as usize;
        let enabled = self.first_key > 0;
        (first..=last).step_by(step).filter(move |_| enabled)
    }
}

const NAME_SLOTS: usize = 512;

/// Where a (lowercase, non-empty) name goes in the lookup table.
fn name_slot(name: &[u8]) -> usize {
    let (first, last) = (name[0] as usize, name[name.len() - 1] as usize);
    let second = name.get(1).copied().unwrap_or(0) as usize;
    (name.len() * 131 + first * 31 + second * 7 + last) % NAME_SLOTS
}

/// The table hashed by name, built once.
fn by_name() -> &'static [Vec<&'static CommandSpec>] {
    static BY_NAME: std::sync::OnceLock<Vec<Vec<&'static CommandSpec>>> =
        std::sync::OnceLock::new();
    BY_NAME.get_or_init(|| {
        let mut slots = vec![Vec::new(); NAME_SLOTS];
        for spec in COMMANDS {
            slots[name_slot(spec.name.as_bytes())].push(spec);
        }
        slots
    })
}

/// A parsed command: its table row and its arguments (`argv[0]` is the name as sent).
#[derive(Clone, Debug)]
pub struct Command {
    pub spec: &'static CommandSpec,
    pub argv: Vec<Bytes>,
}

impl Command {
    /// Looks up the command and checks its arity, with Redis's error texts.
    pub fn parse(argv: Vec<Bytes>) -> Result<Command, Frame> {
        let spec = Command::look_up(&argv)?;
        Ok(Command { spec, argv })
    }

    /// [`Command::parse`] without taking the arguments: the table row for `argv`.
    pub fn look_up(argv: &[Bytes]) -> Result<&'static CommandSpec, Frame> {
        let Some(name) = argv.first() else {
            return Err(Frame::error("ERR empty command"));
        };
        let Some(spec) = CommandSpec::find(name) else {
            return Err(unknown_command(argv));
        };
        if !spec.arity_ok(argv.len()) {
            return Err(wrong_arity(spec.name));
        }
        Ok(spec)
    }

    pub fn id(&self) -> CommandId {
        self.spec.id
    }

    pub fn keys(&self) -> impl Iterator<Item = &Bytes> {
        self.spec
            .key_positions(self.argv.len())
            .map(|i| &self.argv[i])
    }
}

/// Redis's reply to a command it does not know.
pub fn unknown_command(argv: &[Bytes]) -> Frame {
    let name = String::from_utf8_lossy(&argv[0]);
    let name: String = name.chars().take(128).collect();
    let mut args = String::new();
    for arg in &argv[1..] {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        let text = String::from_utf8_lossy(arg);
        let text: String = text.chars().take(room).collect();
        args.push_str(&format!("'{text}' "));
    }
    Frame::error(format!(
        "ERR unknown command '{name}', with args beginning with: {args}"
    ))
}

pub fn wrong_arity(name: &str) -> Frame {
    Frame::error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// Redis's reply to an unknown subcommand of a container command (CLIENT, CONFIG, COMMAND).
pub fn unknown_subcommand(sub: &[u8], container: &str) -> Frame {
    Frame::error(format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        String::from_utf8_lossy(sub),
        container.to_ascii_uppercase()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn the_table_is_in_id_order_and_names_are_unique_and_lowercase() {
        for (i, spec) in COMMANDS.iter().enumerate() {
            assert_eq!(spec.id as usize, i, "{}", spec.name);
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(spec.name.len() <= 16);
        }
        let mut names: Vec<_> = COMMANDS.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), COMMANDS.len());
    }

    #[test]
    fn every_command_is_found_by_its_name() {
        for spec in COMMANDS {
            assert_eq!(
                CommandSpec::find(spec.name.as_bytes()).map(|s| s.id),
                Some(spec.id)
            );
            let upper = spec.name.to_ascii_uppercase();
            assert_eq!(
                CommandSpec::find(upper.as_bytes()).map(|s| s.id),
                Some(spec.id)
            );
        }
        assert!(CommandSpec::find(b"").is_none());
        assert!(CommandSpec::find(b"ge").is_none());
        assert!(CommandSpec::find(b"gett").is_none());
    }

    #[test]
    fn lookup_ignores_case_and_checks_arity() {
        let cmd = Command::parse(argv(&["gEt", "k"])).unwrap();
        assert_eq!(cmd.id(), CommandId::Get);
        assert_eq!(
            Command::parse(argv(&["GET"])).unwrap_err(),
            Frame::error("ERR wrong number of arguments for 'get' command")
        );
        assert_eq!(
            Command::parse(argv(&["nosuch", "a", "b"])).unwrap_err(),
            Frame::error("ERR unknown command 'nosuch', with args beginning with: 'a' 'b' ")
        );
    }

    #[test]
    fn key_positions_follow_first_last_step() {
        let mset = Command::parse(argv(&["MSET", "a", "1", "b", "2"])).unwrap();
        assert_eq!(mset.keys().collect::<Vec<_>>(), vec!["a", "b"]);
        let del = Command::parse(argv(&["DEL", "a", "b", "c"])).unwrap();
        assert_eq!(del.keys().count(), 3);
        let ping = Command::parse(argv(&["PING"])).unwrap();
        assert_eq!(ping.keys().count(), 0);
    }
}
