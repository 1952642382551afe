//! RESP2/RESP3 frames: a decoder and an encoder, pure functions over byte buffers.
//!
//! The decoder tells "need more bytes" (`Ok(None)`) apart from "malformed" (`Err`), returns
//! how many bytes a frame used, and enforces its limits (bulk length, aggregate count,
//! nesting depth, inline and header line length) before it allocates anything: no buffer is
//! ever sized from a declared length before the bytes themselves have arrived.
//!
//! Two decoders share the framing rules:
//! - [`decode_request`] reads what a client sends a server: a multibulk of bulk strings, or an
//!   inline command line (as `redis-cli` and telnet users type), with Redis's error texts.
//! - [`decode_frame`] reads any RESP2/RESP3 frame (what a server sends back); tests, the fuzzer
//!   and clients use it.

use bytes::Bytes;
use thiserror::Error;

/// The protocol a connection speaks, chosen with `HELLO 2|3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

/// One RESP value. RESP3-only types are downgraded by the encoder on a RESP2 connection, the
/// way Redis does it (maps become flat arrays, doubles become bulk strings, and so on).
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Bytes),
    /// The null reply: `$-1` in RESP2, `_` in RESP3.
    Null,
    /// The null array: `*-1` in RESP2 (EXEC after a failed WATCH, BLPOP timeouts), `_` in RESP3.
    NullArray,
    Array(Vec<Frame>),
    Map(Vec<(Frame, Frame)>),
    Set(Vec<Frame>),
    Double(f64),
    Boolean(bool),
    BigNumber(String),
    Verbatim {
        format: [u8; 3],
        text: Bytes,
    },
    Push(Vec<Frame>),
    BulkError(Bytes),
}

impl Frame {
    pub fn ok() -> Frame {
        Frame::Simple("OK".to_owned())
    }
    pub fn simple(s: &str) -> Frame {
        Frame::Simple(s.to_owned())
    }
    /// An error reply; `text` starts with its code (`ERR`, `WRONGTYPE`, ...).
    pub fn error(text: impl Into<String>) -> Frame {
        Frame::Error(text.into())
    }
    pub fn bulk(b: impl Into<Bytes>) -> Frame {
        Frame::Bulk(b.into())
    }
    pub fn bulk_str(s: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }
    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_) | Frame::BulkError(_))
    }
}

/// Limits the decoder enforces before allocating.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest bulk string accepted (`proto-max-bulk-len`, 512 MB by default as in Redis).
    pub bulk_len_max: usize,
    /// Largest multibulk element count (Redis refuses more than `INT_MAX`).
    pub multibulk_len_max: usize,
    /// Deepest nesting of aggregates in [`decode_frame`].
    pub depth_max: usize,
    /// Longest inline command or header line (Redis's `PROTO_INLINE_MAX_SIZE`, 64 KB).
    pub inline_len_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            bulk_len_max: 512 * 1024 * 1024,
            multibulk_len_max: i32::MAX as usize,
            depth_max: 128,
            inline_len_max: 64 * 1024,
        }
    }
}

/// Why a buffer is not RESP. The texts follow Redis's `Protocol error: ...` replies.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("invalid bulk length")]
    InvalidBulkLength,
    #[error("expected '$', got '{0}'")]
    ExpectedBulk(char),
    #[error("too big inline request")]
    InlineTooBig,
    #[error("too big mbulk count string")]
    MultibulkHeaderTooBig,
    #[error("too big bulk count string")]
    BulkHeaderTooBig,
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("invalid frame type byte '{0}'")]
    InvalidType(char),
    #[error("invalid integer")]
    InvalidInteger,
    #[error("invalid double")]
    InvalidDouble,
    #[error("missing CRLF after bulk data")]
    MissingCrlf,
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
    #[error("invalid simple string")]
    InvalidSimple,
}

/// A client request: its arguments and the number of buffer bytes it used.
pub type Request = (Vec<Bytes>, usize);

/// Decodes one client request from the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, `Ok(Some((args, used)))` when a request is
/// complete (`args` may be empty: Redis ignores `*0` and blank inline lines, and so does the
/// caller), and `Err` when the bytes can never become a valid request.
pub fn decode_request(buf: &[u8], limits: &Limits) -> Result<Option<Request>, ProtocolError> {
    RequestParser::default().parse(buf, limits)
}

/// Decodes client requests incrementally: a multibulk that arrives over many reads is parsed
/// once, each call resuming where the previous one stopped, instead of from its first byte
/// (which would make a large request cost quadratic time, stalling every other client).
#[derive(Debug, Default)]
pub struct RequestParser {
    partial: Option<Partial>,
    /// The argument ranges of the last request, kept (small) for the next one: one allocation
    /// less per request.
    spare_ranges: Vec<std::ops::Range<usize>>,
}

/// Most argument ranges [`RequestParser`] keeps between requests; a larger request's list is
/// dropped with it.
const SPARE_RANGES_MAX: usize = 64;

/// The largest request whose arguments share one copy. Above it every argument has a buffer
/// of its own, which the keyspace keeps as it is.
pub(crate) const SHARED_REQUEST_BYTES_MAX: usize = 1024;

/// How far an incomplete multibulk was parsed.
#[derive(Debug)]
struct Partial {
    count: usize,
    ranges: Vec<std::ops::Range<usize>>,
    pos: usize,
}

impl RequestParser {
    /// [`decode_request`]'s contract. Between calls `buf` must keep its start and only grow,
    /// until a request completes (the caller then consumes it) or an error ends the stream.
    pub fn parse(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<Request>, ProtocolError> {
        let partial = self.partial.take();
        match buf.first() {
            None => Ok(None),
            Some(b'*') => decode_multibulk_request(
                buf,
                limits,
                partial,
                &mut self.partial,
                &mut self.spare_ranges,
            ),
            Some(_) => decode_inline_request(buf, limits),
        }
    }
}

fn decode_multibulk_request(
    buf: &[u8],
    limits: &Limits,
    resume: Option<Partial>,
    save: &mut Option<Partial>,
    spare_ranges: &mut Vec<std::ops::Range<usize>>,
) -> Result<Option<Request>, ProtocolError> {
    let Partial {
        count,
        mut ranges,
        mut pos,
    } = match resume {
        Some(partial) => partial,
        None => {
            let Some((line, pos)) = read_line(buf, 1, limits.inline_len_max)
                .map_err(|_| ProtocolError::MultibulkHeaderTooBig)?
            else {
                return Ok(None);
            };
            let count = parse_i64(line).ok_or(ProtocolError::InvalidMultibulkLength)?;
            if count > limits.multibulk_len_max as i64 {
                return Err(ProtocolError::InvalidMultibulkLength);
            }
            if count <= 0 {
                return Ok(Some((Vec::new(), pos)));
            }
            // Never trust the declared count for the allocation: it is a claim, not bytes.
            let mut ranges = std::mem::take(spare_ranges);
            ranges.clear();
            ranges.reserve((count as usize).min(SPARE_RANGES_MAX));
            Partial {
                count: count as usize,
                ranges,
                pos,
            }
        }
    };
    while ranges.len() < count {
        let Some(&kind) = buf.get(pos) else {
            *save = Some(Partial { count, ranges, pos });
            return Ok(None);
        };
        if kind != b'$' {
            return Err(ProtocolError::ExpectedBulk(kind as char));
        }
        let Some((line, after)) = read_line(buf, pos + 1, limits.inline_len_max)
            .map_err(|_| ProtocolError::BulkHeaderTooBig)?
        else {
            *save = Some(Partial { count, ranges, pos });
            return Ok(None);
        };
        let len = parse_i64(line).ok_or(ProtocolError::InvalidBulkLength)?;
        if len < 0 || len as u64 > limits.bulk_len_max as u64 {
            return Err(ProtocolError::InvalidBulkLength);
        }
        let len = len as usize;
        let end = after + len;
        if buf.len() < end + 2 {
            *save = Some(Partial { count, ranges, pos });
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(ProtocolError::MissingCrlf);
        }
        ranges.push(after..end);
        pos = end + 2;
    }
    // A small request is copied once and sliced into its arguments: one allocation instead of
    // one per argument, and most arguments (a command name, a key to read) are dropped with
    // the request. The keyspace copies what it keeps of one (`keyspace::kept`). A larger
    // request's arguments are copied one by one, so that a large value is kept without
    // another copy, and a kept key never holds it.
    let args = if pos <= SHARED_REQUEST_BYTES_MAX {
        let whole = Bytes::copy_from_slice(&buf[..pos]);
        ranges.iter().map(|r| whole.slice(r.clone())).collect()
    } else {
        ranges
            .iter()
            .map(|r| Bytes::copy_from_slice(&buf[r.clone()]))
            .collect()
    };
    if ranges.capacity() <= SPARE_RANGES_MAX {
        *spare_ranges = ranges;
    }
    Ok(Some((args, pos)))
}

fn decode_inline_request(buf: &[u8], limits: &Limits) -> Result<Option<Request>, ProtocolError> {
    // Look no further than the longest line allowed: a long buffer is not scanned again and again.
    let window = &buf[..buf.len().min(limits.inline_len_max + 1)];
    let Some(newline) = window.iter().position(|&b| b == b'\n') else {
        if buf.len() > limits.inline_len_max {
            return Err(ProtocolError::InlineTooBig);
        }
        return Ok(None);
    };
    if newline > limits.inline_len_max {
        return Err(ProtocolError::InlineTooBig);
    }
    let mut line = &buf[..newline];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    let args = split_inline_args(line).ok_or(ProtocolError::UnbalancedQuotes)?;
    Ok(Some((args, newline + 1)))
}

/// Splits an inline command line into arguments with Redis's quoting rules (`sdssplitargs`):
/// double quotes with `\n \r \t \b \a \\ \" \xHH` escapes, single quotes with `\'`, and a
/// closing quote must be followed by a space or the end. `None` means unbalanced quotes.
pub fn split_inline_args(line: &[u8]) -> Option<Vec<Bytes>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            return Some(args);
        }
        let mut current = Vec::new();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            if in_double {
                let c = *line.get(i)?;
                let hex = (c == b'\\' && i + 3 < line.len() && line[i + 1] == b'x')
                    .then(|| hex_value(line[i + 2]).zip(hex_value(line[i + 3])))
                    .flatten();
                if let Some((h, l)) = hex {
                    current.push(h * 16 + l);
                    i += 4;
                    continue;
                }
                if c == b'\\' && i + 1 < line.len() {
                    current.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                    i += 2;
                } else if c == b'"' {
                    if i + 1 < line.len() && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    current.push(c);
                    i += 1;
                }
            } else if in_single {
                let c = *line.get(i)?;
                if c == b'\\' && i + 1 < line.len() && line[i + 1] == b'\'' {
                    current.push(b'\'');
                    i += 2;
                } else if c == b'\'' {
                    if i + 1 < line.len() && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    current.push(c);
                    i += 1;
                }
            } else {
                match line.get(i) {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(&c) => current.push(c),
                }
                i += 1;
            }
        }
        args.push(Bytes::from(current));
    }
}

fn hex_value(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Finds the `\r\n`-terminated line that starts at `start`. `Ok(None)`: not complete yet;
/// `Err(())`: longer than `line_max` without a terminator.
#[allow(clippy::result_unit_err)]
fn read_line(buf: &[u8], start: usize, line_max: usize) -> Result<Option<(&[u8], usize)>, ()> {
    let rest = buf.get(start..).unwrap_or(&[]);
    let window = &rest[..rest.len().min(line_max.saturating_add(2))];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(end) if end > line_max => Err(()),
        Some(end) => Ok(Some((&rest[..end], start + end + 2))),
        None if rest.len() > line_max => Err(()),
        None => Ok(None),
    }
}

/// Parses a RESP integer: an optional `-`, then decimal digits, no spaces, no `+`.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub((d - b'0') as i64)?
        } else {
            value.checked_add((d - b'0') as i64)?
        };
    }
    Some(value)
}

/// Decodes one frame of any RESP2/RESP3 type from the front of `buf`.
pub fn decode_frame(buf: &[u8], limits: &Limits) -> Result<Option<(Frame, usize)>, ProtocolError> {
    decode_at(buf, 0, limits, 0)
}

fn decode_at(
    buf: &[u8],
    pos: usize,
    limits: &Limits,
    depth: usize,
) -> Result<Option<(Frame, usize)>, ProtocolError> {
    if depth > limits.depth_max {
        return Err(ProtocolError::TooDeep(limits.depth_max));
    }
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let Some((line, after)) =
        read_line(buf, pos + 1, limits.inline_len_max).map_err(|_| ProtocolError::InlineTooBig)?
    else {
        return Ok(None);
    };
    let text = |line: &[u8]| -> Result<String, ProtocolError> {
        String::from_utf8(line.to_vec()).map_err(|_| ProtocolError::InvalidSimple)
    };
    let frame = match kind {
        b'+' => Frame::Simple(text(line)?),
        b'-' => Frame::Error(text(line)?),
        b':' => Frame::Integer(parse_i64(line).ok_or(ProtocolError::InvalidInteger)?),
        b'(' => {
            let s = text(line)?;
            let digits = s.strip_prefix('-').unwrap_or(&s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ProtocolError::InvalidInteger);
            }
            Frame::BigNumber(s)
        }
        b',' => Frame::Double(parse_double(line).ok_or(ProtocolError::InvalidDouble)?),
        b'#' => match line {
            b"t" => Frame::Boolean(true),
            b"f" => Frame::Boolean(false),
            _ => return Err(ProtocolError::InvalidSimple),
        },
        b'_' => {
            if !line.is_empty() {
                return Err(ProtocolError::InvalidSimple);
            }
            Frame::Null
        }
        b'$' | b'!' | b'=' => {
            let len = parse_i64(line).ok_or(ProtocolError::InvalidBulkLength)?;
            if kind == b'$' && len == -1 {
                return Ok(Some((Frame::Null, after)));
            }
            if len < 0 || len as u64 > limits.bulk_len_max as u64 {
                return Err(ProtocolError::InvalidBulkLength);
            }
            let end = after + len as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError::MissingCrlf);
            }
            let data = Bytes::copy_from_slice(&buf[after..end]);
            let frame = match kind {
                b'$' => Frame::Bulk(data),
                b'!' => Frame::BulkError(data),
                _ => {
                    if data.len() < 4 || data[3] != b':' {
                        return Err(ProtocolError::InvalidSimple);
                    }
                    Frame::Verbatim {
                        format: [data[0], data[1], data[2]],
                        text: data.slice(4..),
                    }
                }
            };
            return Ok(Some((frame, end + 2)));
        }
        b'*' | b'~' | b'>' | b'%' => {
            let count = parse_i64(line).ok_or(ProtocolError::InvalidMultibulkLength)?;
            if kind == b'*' && count == -1 {
                return Ok(Some((Frame::NullArray, after)));
            }
            if count < 0 || count as u64 > limits.multibulk_len_max as u64 {
                return Err(ProtocolError::InvalidMultibulkLength);
            }
            let elements = if kind == b'%' {
                (count as usize).saturating_mul(2)
            } else {
                count as usize
            };
            let mut items = Vec::with_capacity(elements.min(64));
            let mut at = after;
            for _ in 0..elements {
                match decode_at(buf, at, limits, depth + 1)? {
                    None => return Ok(None),
                    Some((item, next)) => {
                        items.push(item);
                        at = next;
                    }
                }
            }
            let frame = match kind {
                b'*' => Frame::Array(items),
                b'~' => Frame::Set(items),
                b'>' => Frame::Push(items),
                _ => {
                    let mut pairs = Vec::with_capacity(items.len() / 2);
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    Frame::Map(pairs)
                }
            };
            return Ok(Some((frame, at)));
        }
        other => return Err(ProtocolError::InvalidType(other as char)),
    };
    Ok(Some((frame, after)))
}

fn parse_double(line: &[u8]) -> Option<f64> {
    match line {
        b"inf" => Some(f64::INFINITY),
        b"-inf" => Some(f64::NEG_INFINITY),
        b"nan" => Some(f64::NAN),
        _ => {
            let s = std::str::from_utf8(line).ok()?;
            // Rust's parser also takes "infinity" and "+nan"; RESP does not.
            if s.is_empty()
                || s.bytes()
                    .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E')
            {
                return None;
            }
            s.parse().ok()
        }
    }
}

/// Formats a double the way Redis does in replies (`%.17g` shortest form): integers without
/// a fractional part, `inf`/`-inf`, otherwise the shortest text that reads back the same.
pub fn format_double(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value == value.trunc() && value.abs() < 1e17 {
        return format!("{}", value as i64);
    }
    let s = format!("{value}");
    if s.contains('e') || s.len() < 24 {
        return s;
    }
    format!("{value:e}")
}

/// Appends the wire form of `frame` to `out`, in the dialect of `protocol`.
pub fn encode(frame: &Frame, protocol: Protocol, out: &mut Vec<u8>) {
    let resp3 = protocol == Protocol::Resp3;
    match frame {
        Frame::Simple(s) => line(out, b'+', s.as_bytes()),
        Frame::Error(s) => error_line(out, s.as_bytes()),
        Frame::Integer(n) => {
            out.push(b':');
            push_int(out, *n);
            out.extend_from_slice(b"\r\n");
        }
        Frame::Bulk(b) => bulk(out, b'$', b),
        Frame::Null if resp3 => out.extend_from_slice(b"_\r\n"),
        Frame::Null => out.extend_from_slice(b"$-1\r\n"),
        Frame::NullArray if resp3 => out.extend_from_slice(b"_\r\n"),
        Frame::NullArray => out.extend_from_slice(b"*-1\r\n"),
        Frame::Array(items) => aggregate(out, b'*', items, protocol),
        Frame::Set(items) => aggregate(out, if resp3 { b'~' } else { b'*' }, items, protocol),
        Frame::Push(items) => aggregate(out, if resp3 { b'>' } else { b'*' }, items, protocol),
        Frame::Map(pairs) => {
            if resp3 {
                out.push(b'%');
                push_int(out, pairs.len() as i64);
            } else {
                out.push(b'*');
                push_int(out, pairs.len() as i64 * 2);
            }
            out.extend_from_slice(b"\r\n");
            for (k, v) in pairs {
                encode(k, protocol, out);
                encode(v, protocol, out);
            }
        }
        Frame::Double(d) if resp3 => line(out, b',', format_double(*d).as_bytes()),
        Frame::Double(d) => bulk(out, b'$', format_double(*d).as_bytes()),
        Frame::Boolean(b) if resp3 => line(out, b'#', if *b { b"t" } else { b"f" }),
        Frame::Boolean(b) => line(out, b':', if *b { b"1" } else { b"0" }),
        Frame::BigNumber(s) if resp3 => line(out, b'(', s.as_bytes()),
        Frame::BigNumber(s) => bulk(out, b'$', s.as_bytes()),
        Frame::Verbatim { format, text } if resp3 => {
            let mut data = Vec::with_capacity(text.len() + 4);
            data.extend_from_slice(format);
            data.push(b':');
            data.extend_from_slice(text);
            bulk(out, b'=', &data);
        }
        Frame::Verbatim { text, .. } => bulk(out, b'$', text),
        Frame::BulkError(b) if resp3 => bulk(out, b'!', b),
        // RESP2 has no bulk errors: send a simple error.
        Frame::BulkError(b) => error_line(out, b),
    }
}

/// A simple error. Error texts may quote client input, so line breaks become spaces (as Redis
/// does): a `\r\n` inside would end the line early and desynchronize the client.
fn error_line(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'-');
    out.extend(
        text.iter()
            .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
    );
    out.extend_from_slice(b"\r\n");
}

fn line(out: &mut Vec<u8>, kind: u8, text: &[u8]) {
    out.push(kind);
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

fn bulk(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
    out.push(kind);
    push_int(out, data.len() as i64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

fn aggregate(out: &mut Vec<u8>, kind: u8, items: &[Frame], protocol: Protocol) {
    out.push(kind);
    push_int(out, items.len() as i64);
    out.extend_from_slice(b"\r\n");
    for item in items {
        encode(item, protocol, out);
    }
}

fn push_int(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}

/// Encodes a command as a multibulk of bulk strings, as a client sends it.
pub fn encode_request(args: &[&[u8]], out: &mut Vec<u8>) {
    out.push(b'*');
    push_int(out, args.len() as i64);
    out.extend_from_slice(b"\r\n");
    for arg in args {
        bulk(out, b'$', arg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(buf: &[u8]) -> Result<Option<Request>, ProtocolError> {
        decode_request(buf, &Limits::default())
    }

    #[test]
    fn multibulk_request_decodes_and_reports_its_length() {
        let (args, used) = req(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nextra")
            .unwrap()
            .unwrap();
        assert_eq!(args, vec![Bytes::from("GET"), Bytes::from("k")]);
        assert_eq!(used, 20);
    }

    #[test]
    fn every_strict_prefix_of_a_request_needs_more_bytes() {
        let full = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        for cut in 0..full.len() {
            assert_eq!(req(&full[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(req(full).unwrap().is_some());
    }

    #[test]
    fn limits_are_checked_before_the_bytes_arrive() {
        let limits = Limits {
            bulk_len_max: 10,
            ..Limits::default()
        };
        assert_eq!(
            decode_request(b"*1\r\n$11\r\n", &limits),
            Err(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            req(b"*99999999999\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(req(b"*1\r\n:1\r\n"), Err(ProtocolError::ExpectedBulk(':')));
        assert_eq!(req(b"*x\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(req(b"*1\r\n$-5\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(req(b"*1\r\n$3\r\nabcXY"), Err(ProtocolError::MissingCrlf));
        let long = vec![b'a'; 70 * 1024];
        assert_eq!(req(&long), Err(ProtocolError::InlineTooBig));
    }

    #[test]
    fn only_a_small_request_shares_one_copy_between_its_arguments() {
        let parse = |args: &[&[u8]]| {
            let mut bytes = Vec::new();
            encode_request(args, &mut bytes);
            let parsed = RequestParser::default().parse(&bytes, &Limits::default());
            parsed.unwrap().unwrap().0
        };
        let small = parse(&[b"SET", b"k", b"v"]);
        assert!(!small[1].is_unique(), "the key shares the request's copy");
        // SET k <big> then SET k x keeps the first key: it must not keep the big value.
        let big = vec![7u8; 4096];
        let large = parse(&[b"SET", b"k", &big]);
        assert!(large[1].is_unique() && large[2].is_unique());
        assert_eq!(&large[2][..], &big[..]);
    }

    #[test]
    fn an_incremental_parse_resumes_where_it_stopped() {
        let mut full = Vec::new();
        let args: Vec<Vec<u8>> = (0..1000).map(|i| format!("arg{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        encode_request(&refs, &mut full);
        let mut parser = RequestParser::default();
        let limits = Limits::default();
        for cut in (0..full.len()).step_by(7) {
            assert_eq!(parser.parse(&full[..cut], &limits).unwrap(), None);
        }
        let (parsed, used) = parser.parse(&full, &limits).unwrap().unwrap();
        assert_eq!(used, full.len());
        assert_eq!(parsed.len(), 1000);
        assert_eq!(parsed[999], Bytes::from("arg999"));
        assert!(parser.partial.is_none());
        // A list that large is not kept for the next request; the small ones that follow
        // (one of them split) reuse one list.
        assert!(parser.spare_ranges.capacity() <= SPARE_RANGES_MAX);
        for (i, key) in [b"k1".as_ref(), b"key2", b"third-key"].iter().enumerate() {
            let mut small = Vec::new();
            encode_request(&[b"GET", key], &mut small);
            if i == 1 {
                assert_eq!(parser.parse(&small[..small.len() - 3], &limits), Ok(None));
            }
            let (parsed, used) = parser.parse(&small, &limits).unwrap().unwrap();
            assert_eq!(
                (parsed, used),
                (
                    vec![Bytes::from("GET"), Bytes::copy_from_slice(key)],
                    small.len()
                )
            );
            assert!(
                parser.spare_ranges.capacity() >= 2,
                "the list is kept for the next request"
            );
        }
    }

    #[test]
    fn inline_requests_follow_redis_quoting() {
        let (args, used) = req(b"set k \"a b\\x41\\n\" 'it\\'s'\r\n").unwrap().unwrap();
        assert_eq!(
            args,
            vec![
                Bytes::from("set"),
                Bytes::from("k"),
                Bytes::from("a bA\n"),
                Bytes::from("it's")
            ]
        );
        assert_eq!(used, 27);
        assert_eq!(req(b"get \"k\r\n"), Err(ProtocolError::UnbalancedQuotes));
        assert_eq!(req(b"get \"k\"x\r\n"), Err(ProtocolError::UnbalancedQuotes));
        assert_eq!(req(b"\r\n").unwrap(), Some((vec![], 2)));
        assert_eq!(req(b"PING").unwrap(), None);
    }

    #[test]
    fn frames_round_trip_in_resp3() {
        let frame = Frame::Array(vec![
            Frame::Simple("OK".into()),
            Frame::Error("ERR x".into()),
            Frame::Integer(-42),
            Frame::Bulk(Bytes::from_static(b"a\r\nb")),
            Frame::Null,
            Frame::Map(vec![(Frame::bulk_str("k"), Frame::Double(1.5))]),
            Frame::Set(vec![Frame::Boolean(true)]),
            Frame::BigNumber("-123456789012345678901234567890".into()),
            Frame::Verbatim {
                format: *b"txt",
                text: Bytes::from_static(b"hi"),
            },
            Frame::Push(vec![]),
            Frame::BulkError(Bytes::from_static(b"ERR y")),
        ]);
        let mut out = Vec::new();
        encode(&frame, Protocol::Resp3, &mut out);
        let (back, used) = decode_frame(&out, &Limits::default()).unwrap().unwrap();
        assert_eq!(back, frame);
        assert_eq!(used, out.len());
    }

    #[test]
    fn resp2_downgrades_resp3_types_like_redis() {
        let mut out = Vec::new();
        encode(
            &Frame::Map(vec![(Frame::bulk_str("a"), Frame::Integer(1))]),
            Protocol::Resp2,
            &mut out,
        );
        assert_eq!(out, b"*2\r\n$1\r\na\r\n:1\r\n");
        out.clear();
        encode(&Frame::Double(3.0), Protocol::Resp2, &mut out);
        assert_eq!(out, b"$1\r\n3\r\n");
        out.clear();
        encode(
            &Frame::error("ERR unknown command 'a\r\nb'"),
            Protocol::Resp2,
            &mut out,
        );
        assert_eq!(out, b"-ERR unknown command 'a  b'\r\n");
        out.clear();
        encode(&Frame::Null, Protocol::Resp2, &mut out);
        encode(&Frame::NullArray, Protocol::Resp2, &mut out);
        assert_eq!(out, b"$-1\r\n*-1\r\n");
    }

    #[test]
    fn nesting_is_bounded() {
        let mut deep = Vec::new();
        for _ in 0..1000 {
            deep.extend_from_slice(b"*1\r\n");
        }
        assert_eq!(
            decode_frame(&deep, &Limits::default()),
            Err(ProtocolError::TooDeep(128))
        );
    }

    #[test]
    fn doubles_format_like_redis() {
        assert_eq!(format_double(10.5), "10.5");
        assert_eq!(format_double(3.0), "3");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(0.1 + 0.2), "0.30000000000000004");
    }
}
