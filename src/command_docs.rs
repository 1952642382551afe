//! The argument docs of every command, for `COMMAND DOCS`.
//!
//! redis-cli 7 builds its interactive hints (`SET k` → ` value [NX|XX] ...`) from the
//! `arguments` tree of `COMMAND DOCS`, so that tree has to be Redis's. Rather than spell out
//! ~100 trees by hand, each command keeps Redis's one-line usage, exactly as redis-cli renders
//! it from Redis 7.0's own `COMMAND DOCS`, and [`parse_usage`] turns it back into the tree.
//! A test renders every parsed tree again ([`render`] follows redis-cli's `cliAddArgument`)
//! and checks that the line comes back unchanged.
//!
//! The usage notation:
//! - a word in capitals is a token: alone it is a `pure-token` (`GET`); followed by a value
//!   it names that value's token (`EX seconds`);
//! - a lowercase word is a value named by it; its type comes from [`infer_type`], or from a
//!   `:type` suffix where Redis uses another type for that name (`increment:double`);
//! - `[...]` is optional; `a|b` is a `oneof` (inside brackets `|` separates whole
//!   alternatives, `EX seconds|PX milliseconds`; outside, it joins single words,
//!   `BEFORE|AFTER`); `x [x ...]` makes `x` `multiple` (`multiple_token` when the repeat
//!   repeats the token too), and several words repeated together (`field value [field value
//!   ...]`) or bracketed together (`[count [WITHVALUES]]`) form a `block`; a block whose first
//!   word is a token takes that token (`[AUTH username password]`).
//!
//! A usage line cannot name a `oneof` or a `block`: such an argument is named after its
//! children (`field_value`), unless [`GROUP_NAMES`] gives Redis's name (`condition`). Left
//! out altogether: per-argument `since`, and the command's `history` and `doc_flags`.

use crate::resp::Frame;

/// Per command: its name, Redis 7.0's complexity text, and its usage line (empty when Redis
/// documents no arguments, as for the containers CLIENT, CONFIG and COMMAND, whose arguments
/// Redis documents per subcommand).
static DOCS: &[(&str, &str, &str)] = &[
    ("ping", "O(1)", "[message]"),
    ("echo", "O(1)", "message"),
    (
        "hello",
        "O(1)",
        "[protover [AUTH username password] [SETNAME clientname]]",
    ),
    ("select", "O(1)", "index"),
    ("quit", "O(1)", ""),
    (
        "auth",
        "O(N) where N is the number of passwords defined for the user",
        "[username] password",
    ),
    ("client", "Depends on subcommand.", ""),
    ("multi", "O(1)", ""),
    ("exec", "Depends on commands in the transaction", ""),
    (
        "discard",
        "O(N), when N is the number of queued commands",
        "",
    ),
    ("watch", "O(1) for every key.", "key [key ...]"),
    ("unwatch", "O(1)", ""),
    ("wait", "O(1)", "numreplicas timeout"),
    ("role", "O(1)", ""),
    ("info", "O(1)", "[section [section ...]]"),
    ("dbsize", "O(1)", ""),
    (
        "flushdb",
        "O(N) where N is the number of keys in the selected database",
        "[ASYNC|SYNC]",
    ),
    (
        "flushall",
        "O(N) where N is the total number of keys in all databases",
        "[ASYNC|SYNC]",
    ),
    ("time", "O(1)", ""),
    (
        "command",
        "O(N) where N is the total number of Redis commands",
        "",
    ),
    ("config", "Depends on subcommand.", ""),
    ("get", "O(1)", "key"),
    (
        "set",
        "O(1)",
        "key value [NX|XX] [GET] [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|KEEPTTL]",
    ),
    ("setnx", "O(1)", "key value"),
    ("setex", "O(1)", "key seconds value"),
    ("psetex", "O(1)", "key milliseconds value"),
    (
        "mget",
        "O(N) where N is the number of keys to retrieve.",
        "key [key ...]",
    ),
    (
        "mset",
        "O(N) where N is the number of keys to set.",
        "key value [key value ...]",
    ),
    (
        "msetnx",
        "O(N) where N is the number of keys to set.",
        "key value [key value ...]",
    ),
    ("getset", "O(1)", "key value"),
    ("getdel", "O(1)", "key"),
    (
        "getex",
        "O(1)",
        "key [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|PERSIST]",
    ),
    (
        "append",
        "O(1). The amortized time complexity is O(1) assuming the appended value is small and the already present value is of any size, since the dynamic string library used by Redis will double the free space available on every reallocation.",
        "key value",
    ),
    ("strlen", "O(1)", "key"),
    ("incr", "O(1)", "key"),
    ("decr", "O(1)", "key"),
    ("incrby", "O(1)", "key increment"),
    ("decrby", "O(1)", "key decrement"),
    ("incrbyfloat", "O(1)", "key increment:double"),
    (
        "getrange",
        "O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings.",
        "key start end",
    ),
    (
        "setrange",
        "O(1), not counting the time taken to copy the new string in place. Usually, this string is very small so the amortized complexity is O(1). Otherwise, complexity is O(M) with M being the length of the value argument.",
        "key offset value",
    ),
    (
        "del",
        "O(N) where N is the number of keys that will be removed. When a key to remove holds a value other than a string, the individual complexity for this key is O(M) where M is the number of elements in the list, set, sorted set or hash. Removing a single key that holds a string value is O(1).",
        "key [key ...]",
    ),
    (
        "unlink",
        "O(1) for each key removed regardless of its size. Then the command does O(N) work in a different thread in order to reclaim memory, where N is the number of allocations the deleted objects where composed of.",
        "key [key ...]",
    ),
    (
        "exists",
        "O(N) where N is the number of keys to check.",
        "key [key ...]",
    ),
    ("type", "O(1)", "key"),
    ("expire", "O(1)", "key seconds [NX|XX|GT|LT]"),
    ("pexpire", "O(1)", "key milliseconds [NX|XX|GT|LT]"),
    ("expireat", "O(1)", "key unix-time-seconds [NX|XX|GT|LT]"),
    (
        "pexpireat",
        "O(1)",
        "key unix-time-milliseconds [NX|XX|GT|LT]",
    ),
    ("ttl", "O(1)", "key"),
    ("pttl", "O(1)", "key"),
    ("expiretime", "O(1)", "key"),
    ("pexpiretime", "O(1)", "key"),
    ("persist", "O(1)", "key"),
    (
        "keys",
        "O(N) with N being the number of keys in the database, under the assumption that the key names in the database and the given pattern have limited length.",
        "pattern",
    ),
    (
        "scan",
        "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.",
        "cursor [MATCH pattern] [COUNT count] [TYPE type]",
    ),
    ("rename", "O(1)", "key newkey"),
    ("renamenx", "O(1)", "key newkey"),
    ("randomkey", "O(1)", ""),
    (
        "copy",
        "O(N) worst case for collections, where N is the number of nested items. O(1) for string values.",
        "source destination [DB destination-db] [REPLACE]",
    ),
    (
        "lpush",
        "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.",
        "key element [element ...]",
    ),
    (
        "rpush",
        "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.",
        "key element [element ...]",
    ),
    (
        "lpushx",
        "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.",
        "key element [element ...]",
    ),
    (
        "rpushx",
        "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.",
        "key element [element ...]",
    ),
    (
        "lpop",
        "O(N) where N is the number of elements returned",
        "key [count]",
    ),
    (
        "rpop",
        "O(N) where N is the number of elements returned",
        "key [count]",
    ),
    ("llen", "O(1)", "key"),
    (
        "lrange",
        "O(S+N) where S is the distance of start offset from HEAD for small lists, from nearest end (HEAD or TAIL) for large lists; and N is the number of elements in the specified range.",
        "key start stop",
    ),
    (
        "lindex",
        "O(N) where N is the number of elements to traverse to get to the element at index. This makes asking for the first or the last element of the list O(1).",
        "key index",
    ),
    (
        "lset",
        "O(N) where N is the length of the list. Setting either the first or the last element of the list is O(1).",
        "key index element",
    ),
    (
        "lrem",
        "O(N+M) where N is the length of the list and M is the number of elements removed.",
        "key count element",
    ),
    (
        "ltrim",
        "O(N) where N is the number of elements to be removed by the operation.",
        "key start stop",
    ),
    (
        "linsert",
        "O(N) where N is the number of elements to traverse before seeing the value pivot. This means that inserting somewhere on the left end on the list (head) can be considered O(1) and inserting somewhere on the right end (tail) is O(N).",
        "key BEFORE|AFTER pivot element",
    ),
    (
        "lpos",
        "O(N) where N is the number of elements in the list, for the average case. When searching for elements near the head or the tail of the list, or when the MAXLEN option is provided, the command may run in constant time.",
        "key element [RANK rank] [COUNT num-matches] [MAXLEN len]",
    ),
    ("lmove", "O(1)", "source destination LEFT|RIGHT LEFT|RIGHT"),
    ("rpoplpush", "O(1)", "source destination"),
    (
        "hset",
        "O(1) for each field/value pair added, so O(N) to add N field/value pairs when the command is called with multiple field/value pairs.",
        "key field value [field value ...]",
    ),
    ("hsetnx", "O(1)", "key field value"),
    ("hget", "O(1)", "key field"),
    (
        "hmget",
        "O(N) where N is the number of fields being requested.",
        "key field [field ...]",
    ),
    (
        "hmset",
        "O(N) where N is the number of fields being set.",
        "key field value [field value ...]",
    ),
    (
        "hdel",
        "O(N) where N is the number of fields to be removed.",
        "key field [field ...]",
    ),
    ("hlen", "O(1)", "key"),
    ("hexists", "O(1)", "key field"),
    ("hkeys", "O(N) where N is the size of the hash.", "key"),
    ("hvals", "O(N) where N is the size of the hash.", "key"),
    ("hgetall", "O(N) where N is the size of the hash.", "key"),
    ("hincrby", "O(1)", "key field increment"),
    ("hincrbyfloat", "O(1)", "key field increment:double"),
    ("hstrlen", "O(1)", "key field"),
    (
        "hscan",
        "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection..",
        "key cursor [MATCH pattern] [COUNT count]",
    ),
    (
        "hrandfield",
        "O(N) where N is the number of fields returned",
        "key [count [WITHVALUES]]",
    ),
    (
        "sadd",
        "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.",
        "key member [member ...]",
    ),
    (
        "srem",
        "O(N) where N is the number of members to be removed.",
        "key member [member ...]",
    ),
    ("smembers", "O(N) where N is the set cardinality.", "key"),
    ("sismember", "O(1)", "key member"),
    (
        "smismember",
        "O(N) where N is the number of elements being checked for membership",
        "key member [member ...]",
    ),
    ("scard", "O(1)", "key"),
    (
        "spop",
        "Without the count argument O(1), otherwise O(N) where N is the value of the passed count.",
        "key [count]",
    ),
    (
        "srandmember",
        "Without the count argument O(1), otherwise O(N) where N is the absolute value of the passed count.",
        "key [count]",
    ),
    ("smove", "O(1)", "source destination member"),
    (
        "sinter",
        "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.",
        "key [key ...]",
    ),
    (
        "sinterstore",
        "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.",
        "destination key [key ...]",
    ),
    (
        "sintercard",
        "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.",
        "numkeys key [key ...] [LIMIT limit]",
    ),
    (
        "sunion",
        "O(N) where N is the total number of elements in all given sets.",
        "key [key ...]",
    ),
    (
        "sunionstore",
        "O(N) where N is the total number of elements in all given sets.",
        "destination key [key ...]",
    ),
    (
        "sdiff",
        "O(N) where N is the total number of elements in all given sets.",
        "key [key ...]",
    ),
    (
        "sdiffstore",
        "O(N) where N is the total number of elements in all given sets.",
        "destination key [key ...]",
    ),
    (
        "sscan",
        "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection..",
        "key cursor [MATCH pattern] [COUNT count]",
    ),
];

/// Redis's names for the `oneof` and `block` arguments of a command, in the order their
/// opening appears in its usage line, where the name made from their children is not Redis's.
static GROUP_NAMES: &[(&str, &[&str])] = &[
    ("hello", &["arguments", "username_password"]),
    ("flushdb", &["async"]),
    ("flushall", &["async"]),
    ("set", &["condition", "expiration"]),
    ("getex", &["expiration"]),
    ("expire", &["condition"]),
    ("pexpire", &["condition"]),
    ("expireat", &["condition"]),
    ("pexpireat", &["condition"]),
    ("linsert", &["where"]),
    ("lmove", &["wherefrom", "whereto"]),
    ("hrandfield", &["options"]),
];

/// The complexity text and usage line of a command, by its lowercase name.
pub fn find(name: &str) -> Option<(&'static str, &'static str)> {
    DOCS.iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, complexity, usage)| (complexity, usage))
}

/// The argument tree of a command, by its lowercase name, as Redis's `COMMAND DOCS` has it.
pub fn arguments(name: &str) -> Result<Vec<Arg>, String> {
    let (_, usage) = find(name).ok_or_else(|| format!("{name} has no usage line"))?;
    let mut args = parse_usage(usage)?;
    if let Some((_, names)) = GROUP_NAMES.iter().find(|(n, _)| *n == name) {
        let mut names = names.iter();
        rename_groups(&mut args, &mut names)?;
        if names.next().is_some() {
            return Err(format!("{name}: more group names than groups"));
        }
    }
    Ok(args)
}

fn rename_groups<'a>(
    args: &mut [Arg],
    names: &mut impl Iterator<Item = &'a &'static str>,
) -> Result<(), String> {
    for arg in args {
        if matches!(arg.kind, ArgType::Oneof | ArgType::Block) {
            let name = names.next().ok_or("fewer group names than groups")?;
            arg.name = (*name).to_owned();
        }
        rename_groups(&mut arg.children, names)?;
    }
    Ok(())
}

/// The `type` of a documented argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgType {
    Key,
    String,
    Integer,
    Double,
    Pattern,
    UnixTime,
    PureToken,
    Oneof,
    Block,
}

impl ArgType {
    pub fn as_str(self) -> &'static str {
        match self {
            ArgType::Key => "key",
            ArgType::String => "string",
            ArgType::Integer => "integer",
            ArgType::Double => "double",
            ArgType::Pattern => "pattern",
            ArgType::UnixTime => "unix-time",
            ArgType::PureToken => "pure-token",
            ArgType::Oneof => "oneof",
            ArgType::Block => "block",
        }
    }

    /// The value types a usage line may name in a `:type` suffix.
    fn from_suffix(s: &str) -> Option<ArgType> {
        Some(match s {
            "key" => ArgType::Key,
            "string" => ArgType::String,
            "integer" => ArgType::Integer,
            "double" => ArgType::Double,
            "pattern" => ArgType::Pattern,
            "unix-time" => ArgType::UnixTime,
            _ => return None,
        })
    }
}

/// The type Redis gives a value of this name. Redis names its arguments consistently
/// (`key` is always a key, `count` always an integer), so the usage lines need a `:type`
/// suffix only for the few exceptions.
pub fn infer_type(name: &str) -> ArgType {
    match name {
        "key" | "destination" | "newkey" | "source" => ArgType::Key,
        "pattern" => ArgType::Pattern,
        "unix-time-seconds" | "unix-time-milliseconds" => ArgType::UnixTime,
        "count" | "cursor" | "decrement" | "destination-db" | "end" | "increment" | "index"
        | "len" | "limit" | "milliseconds" | "num-matches" | "numkeys" | "offset" | "protover"
        | "rank" | "seconds" | "start" | "stop" => ArgType::Integer,
        _ => ArgType::String,
    }
}

/// One node of the argument tree `COMMAND DOCS` describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arg {
    pub name: String,
    pub kind: ArgType,
    pub token: Option<String>,
    pub optional: bool,
    pub multiple: bool,
    pub multiple_token: bool,
    /// For keys: which of the command's key specs describes this key (they are numbered in
    /// the order the keys appear in the usage, as in Redis).
    pub key_spec_index: Option<usize>,
    /// The alternatives of a `oneof`, the parts of a `block`.
    pub children: Vec<Arg>,
}

impl Arg {
    fn new(name: String, kind: ArgType) -> Arg {
        Arg {
            name,
            kind,
            token: None,
            optional: false,
            multiple: false,
            multiple_token: false,
            key_spec_index: None,
            children: Vec::new(),
        }
    }

    fn composite(kind: ArgType, children: Vec<Arg>) -> Arg {
        let name = children
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join("_");
        Arg {
            children,
            ..Arg::new(name, kind)
        }
    }

    fn has_flags(&self) -> bool {
        self.optional || self.multiple || self.multiple_token
    }

    /// This argument in `COMMAND DOCS`'s shape, its fields in Redis's order.
    pub fn to_frame(&self) -> Frame {
        let mut map = vec![
            (Frame::bulk_str("name"), Frame::bulk_str(&self.name)),
            (Frame::bulk_str("type"), Frame::bulk_str(self.kind.as_str())),
        ];
        if let Some(index) = self.key_spec_index {
            map.push((
                Frame::bulk_str("key_spec_index"),
                Frame::Integer(index as i64),
            ));
        }
        if let Some(token) = &self.token {
            map.push((Frame::bulk_str("token"), Frame::bulk_str(token)));
        }
        // Status replies, as Redis sends them: redis-cli asserts that flags are statuses.
        let flags: Vec<Frame> = [
            (self.optional, "optional"),
            (self.multiple, "multiple"),
            (self.multiple_token, "multiple_token"),
        ]
        .into_iter()
        .filter(|(set, _)| *set)
        .map(|(_, flag)| Frame::simple(flag))
        .collect();
        if !flags.is_empty() {
            map.push((Frame::bulk_str("flags"), Frame::Set(flags)));
        }
        if !self.children.is_empty() {
            map.push((
                Frame::bulk_str("arguments"),
                arguments_frame(&self.children),
            ));
        }
        Frame::Map(map)
    }
}

/// A list of arguments in `COMMAND DOCS`'s shape.
pub fn arguments_frame(args: &[Arg]) -> Frame {
    Frame::Array(args.iter().map(Arg::to_frame).collect())
}

/// Renders arguments as redis-cli 7.0 does for its hints (`cliConcatArguments` and
/// `cliAddArgument` in redis-cli.c), so that `render(parse_usage(u)) == u` for any usage line
/// without `:type` suffixes.
pub fn render(args: &[Arg]) -> String {
    join(args, " ")
}

fn join(args: &[Arg], separator: &str) -> String {
    args.iter()
        .map(render_one)
        .collect::<Vec<_>>()
        .join(separator)
}

fn render_one(arg: &Arg) -> String {
    let repeat = match arg.kind {
        ArgType::PureToken => String::new(),
        ArgType::Oneof => join(&arg.children, "|"),
        ArgType::Block => join(&arg.children, " "),
        _ => arg.name.clone(),
    };
    let mut token = arg.token.clone().unwrap_or_default();
    if !token.is_empty() && arg.kind != ArgType::PureToken {
        token.push(' ');
    }
    let mut out = String::new();
    if arg.optional {
        out.push('[');
    }
    out.push_str(&token);
    out.push_str(&repeat);
    if arg.multiple {
        out.push_str(" [");
        if arg.multiple_token {
            out.push_str(&token);
        }
        out.push_str(&repeat);
        out.push_str(" ...]");
    }
    if arg.optional {
        out.push(']');
    }
    out
}

/// Parses a usage line (see the module docs) into the argument tree.
pub fn parse_usage(usage: &str) -> Result<Vec<Arg>, String> {
    let mut parser = Parser {
        toks: lex(usage)?,
        pos: 0,
    };
    let mut args = parser.seq(true)?;
    if parser.pos != parser.toks.len() {
        return Err(format!("unexpected {:?}", parser.toks[parser.pos]));
    }
    let mut next_key = 0;
    number_keys(&mut args, &mut next_key);
    Ok(args)
}

fn number_keys(args: &mut [Arg], next: &mut usize) {
    for arg in args {
        if arg.kind == ArgType::Key {
            arg.key_spec_index = Some(*next);
            *next += 1;
        }
        number_keys(&mut arg.children, next);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'a> {
    Open,
    Close,
    Pipe,
    Ellipsis,
    Word(&'a str),
}

fn lex(s: &str) -> Result<Vec<Tok<'_>>, String> {
    let mut toks = Vec::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        let single = match c {
            '[' => Some(Tok::Open),
            ']' => Some(Tok::Close),
            '|' => Some(Tok::Pipe),
            _ => None,
        };
        if let Some(tok) = single {
            toks.push(tok);
            rest = &rest[1..];
        } else if c == ' ' {
            rest = &rest[1..];
        } else {
            let end = rest.find([' ', '[', ']', '|']).unwrap_or(rest.len());
            let word = &rest[..end];
            if word == "..." {
                toks.push(Tok::Ellipsis);
            } else if word
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_:".contains(&b))
            {
                toks.push(Tok::Word(word));
            } else {
                return Err(format!("bad word {word:?}"));
            }
            rest = &rest[end..];
        }
    }
    Ok(toks)
}

/// A word in capitals is a token (`NX`, `PXAT`); anything else names a value.
fn is_token(word: &str) -> bool {
    word.bytes().any(|b| b.is_ascii_uppercase()) && !word.bytes().any(|b| b.is_ascii_lowercase())
}

fn word_arg(word: &str) -> Result<Arg, String> {
    if is_token(word) {
        let mut arg = Arg::new(word.to_ascii_lowercase(), ArgType::PureToken);
        arg.token = Some(word.to_owned());
        return Ok(arg);
    }
    let (name, kind) = match word.split_once(':') {
        Some((name, suffix)) => (
            name,
            ArgType::from_suffix(suffix).ok_or_else(|| format!("unknown type in {word:?}"))?,
        ),
        None => (word, infer_type(word)),
    };
    if name.is_empty() || name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("bad value name {word:?}"));
    }
    Ok(Arg::new(name.to_owned(), kind))
}

struct Parser<'a> {
    toks: Vec<Tok<'a>>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Tok<'a>> {
        self.toks.get(self.pos).copied()
    }

    /// Parses arguments up to the end of the group: `]`, `...`, or (inside brackets, where
    /// `|` separates alternatives) `|`. At the top level `|` joins the single words around it.
    fn seq(&mut self, top: bool) -> Result<Vec<Arg>, String> {
        let mut items: Vec<Arg> = Vec::new();
        loop {
            match self.peek() {
                None | Some(Tok::Close) | Some(Tok::Ellipsis) => break,
                Some(Tok::Pipe) if !top => break,
                Some(Tok::Pipe) => {
                    self.pos += 1;
                    let Some(Tok::Word(word)) = self.peek() else {
                        return Err("`|` must join single words outside brackets".into());
                    };
                    self.pos += 1;
                    let next = word_arg(word)?;
                    let prev = items.pop().ok_or("`|` with nothing before it")?;
                    // Outside brackets an unflagged oneof can only come from this chain.
                    items.push(if prev.kind == ArgType::Oneof && !prev.has_flags() {
                        let mut chain = prev;
                        chain.children.push(next);
                        Arg::composite(ArgType::Oneof, chain.children)
                    } else {
                        Arg::composite(ArgType::Oneof, vec![prev, next])
                    });
                }
                Some(Tok::Open) => {
                    self.pos += 1;
                    self.bracket(&mut items)?;
                }
                Some(Tok::Word(word)) => {
                    self.pos += 1;
                    let mut arg = word_arg(word)?;
                    // `EX seconds`: the token introduces the value after it.
                    if arg.kind == ArgType::PureToken
                        && let Some(Tok::Word(next)) = self.peek()
                        && !is_token(next)
                    {
                        self.pos += 1;
                        let token = arg.token.take();
                        arg = word_arg(next)?;
                        arg.token = token;
                    }
                    items.push(arg);
                }
            }
        }
        Ok(items)
    }

    /// After a `[`: an optional argument (or oneof, or block), or the `[x ...]` that makes the
    /// items before it repeat.
    fn bracket(&mut self, items: &mut Vec<Arg>) -> Result<(), String> {
        let mut alternatives = vec![self.seq(false)?];
        while self.peek() == Some(Tok::Pipe) {
            self.pos += 1;
            alternatives.push(self.seq(false)?);
        }
        let repeat = self.peek() == Some(Tok::Ellipsis);
        if repeat {
            self.pos += 1;
        }
        if self.peek() != Some(Tok::Close) {
            return Err("missing `]`".into());
        }
        self.pos += 1;
        if repeat {
            let [repeated] = <[Vec<Arg>; 1]>::try_from(alternatives)
                .map_err(|_| "`|` in a `[x ...]` repeat".to_string())?;
            return make_multiple(items, repeated);
        }
        let mut arg = if alternatives.len() > 1 {
            let children = alternatives
                .into_iter()
                .map(group)
                .collect::<Result<_, _>>()?;
            Arg::composite(ArgType::Oneof, children)
        } else {
            group(alternatives.pop().unwrap_or_default())?
        };
        if arg.optional {
            return Err("`[[...]]`".into());
        }
        arg.optional = true;
        items.push(arg);
        Ok(())
    }
}

/// The one argument a bracketed group (or one alternative of a oneof) stands for.
fn group(mut items: Vec<Arg>) -> Result<Arg, String> {
    match items.len() {
        0 => Err("empty group".into()),
        1 => Ok(items.remove(0)),
        _ => {
            // `AUTH username password`: the token leads the whole block.
            let lead = &mut items[0];
            let token = if lead.kind != ArgType::PureToken && !lead.has_flags() {
                lead.token.take()
            } else {
                None
            };
            let mut block = Arg::composite(ArgType::Block, items);
            block.token = token;
            Ok(block)
        }
    }
}

/// `x [x ...]`: marks the items just before the repeat as `multiple` (a block when the repeat
/// holds several of them).
fn make_multiple(items: &mut Vec<Arg>, repeated: Vec<Arg>) -> Result<(), String> {
    let n = repeated.len();
    if n == 0 || items.len() < n {
        return Err("`[x ...]` repeats nothing before it".into());
    }
    let tail = items.split_off(items.len() - n);
    if tail.iter().any(Arg::has_flags) {
        return Err("`[x ...]` after a flagged argument".into());
    }
    let mut arg = if tail == repeated {
        let mut arg = if n == 1 {
            tail.into_iter().next().ok_or("empty repeat")?
        } else {
            Arg::composite(ArgType::Block, tail)
        };
        // `GET pattern [GET pattern ...]`: the token repeats too.
        arg.multiple_token = arg.token.is_some();
        arg
    } else {
        // `EX seconds [seconds ...]`: only the value repeats.
        let [arg] = <[Arg; 1]>::try_from(tail)
            .map_err(|_| "`[x ...]` does not repeat the arguments before it".to_string())?;
        let bare = Arg {
            token: None,
            ..arg.clone()
        };
        if arg.token.is_none() || repeated != [bare] {
            return Err("`[x ...]` does not repeat the argument before it".into());
        }
        arg
    };
    arg.multiple = true;
    items.push(arg);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::COMMANDS;

    fn value(name: &str, kind: ArgType) -> Arg {
        Arg::new(name.to_owned(), kind)
    }

    fn token(token: &str) -> Arg {
        Arg {
            token: Some(token.to_owned()),
            ..value(&token.to_ascii_lowercase(), ArgType::PureToken)
        }
    }

    fn with_token(arg: Arg, token: &str) -> Arg {
        Arg {
            token: Some(token.to_owned()),
            ..arg
        }
    }

    fn key(index: usize) -> Arg {
        Arg {
            key_spec_index: Some(index),
            ..value("key", ArgType::Key)
        }
    }

    fn optional(arg: Arg) -> Arg {
        Arg {
            optional: true,
            ..arg
        }
    }

    fn multiple(arg: Arg) -> Arg {
        Arg {
            multiple: true,
            ..arg
        }
    }

    fn composite(name: &str, kind: ArgType, children: Vec<Arg>) -> Arg {
        Arg {
            children,
            ..value(name, kind)
        }
    }

    #[test]
    fn set_has_tokens_oneofs_and_typed_values() {
        let set = "key value [NX|XX] [GET] [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|KEEPTTL]";
        assert_eq!(
            parse_usage(set).unwrap(),
            vec![
                key(0),
                value("value", ArgType::String),
                optional(composite(
                    "nx_xx",
                    ArgType::Oneof,
                    vec![token("NX"), token("XX")]
                )),
                optional(token("GET")),
                optional(composite(
                    "seconds_milliseconds_unix-time-seconds_unix-time-milliseconds_keepttl",
                    ArgType::Oneof,
                    vec![
                        with_token(value("seconds", ArgType::Integer), "EX"),
                        with_token(value("milliseconds", ArgType::Integer), "PX"),
                        with_token(value("unix-time-seconds", ArgType::UnixTime), "EXAT"),
                        with_token(value("unix-time-milliseconds", ArgType::UnixTime), "PXAT"),
                        token("KEEPTTL"),
                    ]
                )),
            ]
        );
    }

    #[test]
    fn hset_repeats_a_block() {
        assert_eq!(
            parse_usage("key field value [field value ...]").unwrap(),
            vec![
                key(0),
                multiple(composite(
                    "field_value",
                    ArgType::Block,
                    vec![
                        value("field", ArgType::String),
                        value("value", ArgType::String)
                    ]
                )),
            ]
        );
    }

    #[test]
    fn lpos_and_scan_have_optional_token_values() {
        assert_eq!(
            parse_usage("key element [RANK rank] [COUNT num-matches] [MAXLEN len]").unwrap(),
            vec![
                key(0),
                value("element", ArgType::String),
                optional(with_token(value("rank", ArgType::Integer), "RANK")),
                optional(with_token(value("num-matches", ArgType::Integer), "COUNT")),
                optional(with_token(value("len", ArgType::Integer), "MAXLEN")),
            ]
        );
        assert_eq!(
            parse_usage("cursor [MATCH pattern] [COUNT count] [TYPE type]").unwrap(),
            vec![
                value("cursor", ArgType::Integer),
                optional(with_token(value("pattern", ArgType::Pattern), "MATCH")),
                optional(with_token(value("count", ArgType::Integer), "COUNT")),
                optional(with_token(value("type", ArgType::String), "TYPE")),
            ]
        );
    }

    #[test]
    fn sintercard_numbers_its_keys() {
        assert_eq!(
            parse_usage("numkeys key [key ...] [LIMIT limit]").unwrap(),
            vec![
                value("numkeys", ArgType::Integer),
                multiple(key(0)),
                optional(with_token(value("limit", ArgType::Integer), "LIMIT")),
            ]
        );
        let sinterstore = parse_usage("destination key [key ...]").unwrap();
        assert_eq!(sinterstore[0].key_spec_index, Some(0));
        assert_eq!(sinterstore[1].key_spec_index, Some(1));
    }

    #[test]
    fn nested_blocks_take_their_leading_token() {
        let hello =
            parse_usage("[protover [AUTH username password] [SETNAME clientname]]").unwrap();
        assert_eq!(
            hello,
            vec![optional(composite(
                "protover_username_password_clientname",
                ArgType::Block,
                vec![
                    value("protover", ArgType::Integer),
                    optional(with_token(
                        composite(
                            "username_password",
                            ArgType::Block,
                            vec![
                                value("username", ArgType::String),
                                value("password", ArgType::String)
                            ]
                        ),
                        "AUTH"
                    )),
                    optional(with_token(value("clientname", ArgType::String), "SETNAME")),
                ]
            ))]
        );
        let lmove = parse_usage("source destination LEFT|RIGHT LEFT|RIGHT").unwrap();
        assert_eq!(lmove.len(), 4);
        assert_eq!(
            lmove[3],
            composite(
                "left_right",
                ArgType::Oneof,
                vec![token("LEFT"), token("RIGHT")]
            )
        );
    }

    #[test]
    fn repeated_tokens_and_type_suffixes() {
        let sort_get = parse_usage("[GET pattern [GET pattern ...]]").unwrap();
        let get = &sort_get[0];
        assert!(get.optional && get.multiple && get.multiple_token);
        let values_only = parse_usage("FIELDS field [field ...]").unwrap();
        assert!(values_only[0].multiple && !values_only[0].multiple_token);
        assert_eq!(
            parse_usage("key increment:double").unwrap()[1].kind,
            ArgType::Double
        );
    }

    #[test]
    fn groups_take_redis_names() {
        let set = arguments("set").unwrap();
        assert_eq!(set[2].name, "condition");
        assert_eq!(set[4].name, "expiration");
        let hello = arguments("hello").unwrap();
        assert_eq!(hello[0].name, "arguments");
        assert_eq!(hello[0].children[1].name, "username_password");
        assert_eq!(arguments("hset").unwrap()[1].name, "field_value");
    }

    #[test]
    fn malformed_usage_lines_are_errors() {
        for bad in [
            "[key",
            "key]",
            "[key ...]",
            "key [value ...]",
            "key increment:float",
            "|NX",
            "[]",
            "key [[value]]",
        ] {
            assert!(parse_usage(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn every_command_has_a_usage_line_that_renders_back_unchanged() {
        for spec in COMMANDS {
            let (_, usage) = find(spec.name)
                .unwrap_or_else(|| panic!("{} has no usage line in command_docs", spec.name));
            let args = arguments(spec.name).unwrap_or_else(|e| panic!("{}: {e}", spec.name));
            let without_types: Vec<&str> = usage
                .split(' ')
                .map(|w| w.split(':').next().unwrap_or(w))
                .collect();
            assert_eq!(render(&args), without_types.join(" "), "{}", spec.name);
        }
        for name in DOCS
            .iter()
            .map(|d| d.0)
            .chain(GROUP_NAMES.iter().map(|g| g.0))
        {
            assert!(
                COMMANDS.iter().any(|s| s.name == name),
                "{name} is documented but not in COMMANDS"
            );
        }
    }
}
