//! Every binary encoding quorum writes, in one place: WAL records and peer messages as
//! postcard, whose wire format is stable and documented. Formats are versioned: a WAL
//! segment header carries [`WAL_FORMAT_VERSION`], and new enum variants are only ever added
//! at the end, so old records keep decoding. Log entries (and appends, which carry them) have
//! a hand-written encoder and decoder to the same specification, for speed; the tests hold
//! them byte for byte to postcard's serde implementation, which everything else goes through.

use crate::log::{LogEntry, WalRecord};
use bytes::{Buf, BytesMut};
use thiserror::Error;

/// The version of the record payloads in a WAL segment (see `wal::record`).
///
/// Version 2 (issue 3) added entry origins and hard-state records; version 1 segments are
/// refused with a clear error (no release ever wrote them).
pub const WAL_FORMAT_VERSION: u32 = 2;

#[derive(Debug, Error)]
#[error("cannot decode a WAL record: {0}")]
pub struct DecodeError(#[from] postcard::Error);

pub fn encode_wal_record(record: &WalRecord) -> Vec<u8> {
    postcard::to_allocvec(record).expect("encoding to a Vec cannot fail")
}

/// Appends the encoding of `WalRecord::Entry(entry)` to `out`.
pub fn encode_entry_record_into(entry: &LogEntry, out: &mut Vec<u8>) {
    put_varint(out, WAL_RECORD_ENTRY);
    put_entry(entry, out);
}

// Entries are the bulk of what every node encodes (into its WAL, and on a leader into every
// append): they have an encoder of their own, written to postcard's specification (varints
// for integers and lengths, a raw byte for `u8`, a varint variant index, fields in order)
// and checked byte for byte against postcard's serde encoder by the tests below. postcard
// through serde pushed to the buffer once per field and per length, with a capacity check
// and a call each time: 8% of a leader's event loop under cluster SET -P 16.

/// The variant index of `WalRecord::Entry`.
const WAL_RECORD_ENTRY: u64 = 0;
/// The variant index of `Message::Append`.
const MESSAGE_APPEND: u64 = 4;

#[inline]
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_argv(out: &mut Vec<u8>, argv: &[bytes::Bytes]) {
    put_varint(out, argv.len() as u64);
    for arg in argv {
        put_bytes(out, arg);
    }
}

/// Appends `entry` as postcard encodes a `LogEntry`.
fn put_entry(entry: &LogEntry, out: &mut Vec<u8>) {
    use crate::log::EntryPayload;
    let payload_bytes: usize = match &*entry.payload {
        EntryPayload::Command { argv, .. } => argv.iter().map(|a| a.len() + 5).sum(),
        _ => 0,
    };
    out.reserve(48 + payload_bytes);
    put_varint(out, entry.index);
    put_varint(out, entry.term);
    put_varint(out, entry.ts_ms);
    match &entry.origin {
        None => out.push(0),
        Some(origin) => {
            out.push(1);
            put_varint(out, origin.node);
            put_varint(out, origin.incarnation);
            put_varint(out, origin.seq);
        }
    }
    match &*entry.payload {
        EntryPayload::Noop => put_varint(out, 0),
        EntryPayload::Command { db, argv } => {
            put_varint(out, 1);
            out.push(*db);
            put_argv(out, argv);
        }
        EntryPayload::Transaction { watches, commands } => {
            put_varint(out, 2);
            put_varint(out, watches.len() as u64);
            for watch in watches {
                out.push(watch.db);
                put_bytes(out, &watch.key);
                match watch.version {
                    None => out.push(0),
                    Some(version) => {
                        out.push(1);
                        put_varint(out, version);
                    }
                }
            }
            put_varint(out, commands.len() as u64);
            for (db, argv) in commands {
                out.push(*db);
                put_argv(out, argv);
            }
        }
        EntryPayload::Expire { keys } => {
            put_varint(out, 3);
            put_varint(out, keys.len() as u64);
            for (db, key) in keys {
                out.push(*db);
                put_bytes(out, key);
            }
        }
    }
}

pub fn decode_wal_record(bytes: &[u8]) -> Result<WalRecord, DecodeError> {
    let mut input = Input { bytes, at: 0 };
    if input.varint_u32() == Ok(WAL_RECORD_ENTRY as u32)
        && let Ok(entry) = input.entry()
    {
        return Ok(WalRecord::Entry(entry));
    }
    // Anything else, and anything the fast path refuses, postcard decides: it is the
    // reference (a variant added to `EntryPayload` and not yet to `Input` still decodes).
    Ok(postcard::from_bytes(bytes)?)
}

/// The index of the entry a WAL record holds, read without decoding the rest; `None` for a
/// record of another kind (or one that does not begin like an entry).
pub fn entry_record_index(bytes: &[u8]) -> Option<u64> {
    let mut input = Input { bytes, at: 0 };
    if input.varint_u32() != Ok(WAL_RECORD_ENTRY as u32) {
        return None;
    }
    input.varint().ok()
}

/// The entry decoder, to the same specification as [`put_entry`]: it accepts exactly what
/// postcard's serde decoder accepts and decodes it to the same value (trailing bytes
/// ignored, as `postcard::from_bytes` does; a test compares both on arbitrary bytes). It
/// never sizes memory from a declared length before the bytes are there. Each argument gets a
/// buffer of its own, as postcard's decoder gives it: an argument the keyspace keeps (a key,
/// a value) must not hold the memory of its neighbours, such as a large value since
/// overwritten. postcard through serde cost a follower a tenth of its event loop, in visitor
/// calls per field.
struct Input<'a> {
    bytes: &'a [u8],
    at: usize,
}

type Decoded<T> = Result<T, postcard::Error>;

/// The most elements a declared count reserves room for up front; more grow as they decode.
const PREALLOCATED_MAX: usize = 1024;

impl<'a> Input<'a> {
    fn byte(&mut self) -> Decoded<u8> {
        let byte = *self
            .bytes
            .get(self.at)
            .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
        self.at += 1;
        Ok(byte)
    }

    /// A varint of at most `max_bytes`, whose last byte holds at most `last_max`.
    fn varint_bounded(&mut self, max_bytes: usize, last_max: u8) -> Decoded<u64> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let byte = self.byte()?;
            value |= ((byte & 0x7f) as u64) << (7 * i);
            if byte & 0x80 == 0 {
                if i == max_bytes - 1 && byte > last_max {
                    return Err(postcard::Error::DeserializeBadVarint);
                }
                return Ok(value);
            }
        }
        Err(postcard::Error::DeserializeBadVarint)
    }

    fn varint(&mut self) -> Decoded<u64> {
        self.varint_bounded(10, 1)
    }

    fn varint_u32(&mut self) -> Decoded<u32> {
        Ok(self.varint_bounded(5, 0x0f)? as u32)
    }

    /// A length of things that take at least one byte each: more than what is left cannot
    /// be right (postcard would run out of input too).
    fn len(&mut self) -> Decoded<usize> {
        let len = self.varint()?;
        if len > (self.bytes.len() - self.at) as u64 {
            return Err(postcard::Error::DeserializeUnexpectedEnd);
        }
        Ok(len as usize)
    }

    fn slice(&mut self) -> Decoded<&'a [u8]> {
        let len = self.len()?;
        let slice = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(slice)
    }

    fn option_tag(&mut self) -> Decoded<bool> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(postcard::Error::DeserializeBadOption),
        }
    }

    fn argv_copied(&mut self) -> Decoded<Vec<bytes::Bytes>> {
        let count = self.len()?;
        let mut argv = Vec::with_capacity(count.min(PREALLOCATED_MAX));
        for _ in 0..count {
            argv.push(bytes::Bytes::copy_from_slice(self.slice()?));
        }
        Ok(argv)
    }

    fn entry(&mut self) -> Decoded<LogEntry> {
        use crate::log::{EntryPayload, Origin, WatchedKey};
        let index = self.varint()?;
        let term = self.varint()?;
        let ts_ms = self.varint()?;
        let origin = if self.option_tag()? {
            Some(Origin {
                node: self.varint()?,
                incarnation: self.varint()?,
                seq: self.varint()?,
            })
        } else {
            None
        };
        let payload = match self.varint_u32()? {
            0 => EntryPayload::Noop,
            1 => EntryPayload::Command {
                db: self.byte()?,
                argv: self.argv_copied()?,
            },
            2 => {
                let mut watches = Vec::new();
                for _ in 0..self.len()? {
                    let db = self.byte()?;
                    let key = bytes::Bytes::copy_from_slice(self.slice()?);
                    let version = if self.option_tag()? {
                        Some(self.varint()?)
                    } else {
                        None
                    };
                    watches.push(WatchedKey { db, key, version });
                }
                let mut commands = Vec::new();
                for _ in 0..self.len()? {
                    commands.push((self.byte()?, self.argv_copied()?));
                }
                EntryPayload::Transaction { watches, commands }
            }
            3 => {
                let mut keys = Vec::new();
                for _ in 0..self.len()? {
                    keys.push((self.byte()?, bytes::Bytes::copy_from_slice(self.slice()?)));
                }
                EntryPayload::Expire { keys }
            }
            _ => return Err(postcard::Error::DeserializeBadEnum),
        };
        Ok(LogEntry {
            index,
            term,
            ts_ms,
            origin,
            payload: std::sync::Arc::new(payload),
        })
    }

    /// The fields of `Message::Append` after its variant index.
    fn append(&mut self) -> Decoded<crate::replica::Message> {
        let term = self.varint()?;
        let prev_index = self.varint()?;
        let prev_term = self.varint()?;
        let count = self.len()?;
        let mut entries = Vec::with_capacity(count.min(PREALLOCATED_MAX));
        for _ in 0..count {
            entries.push(std::sync::Arc::new(self.entry()?));
        }
        Ok(crate::replica::Message::Append {
            term,
            prev_index,
            prev_term,
            entries,
            commit: self.varint()?,
            read_round: self.varint()?,
            held_by_all: self.varint()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{EntryPayload, LogEntry};
    use bytes::Bytes;

    #[test]
    fn records_round_trip() {
        let record = WalRecord::Entry(LogEntry {
            index: 7,
            term: 2,
            ts_ms: 1_700_000_000_123,
            origin: Some(crate::log::Origin {
                node: 2,
                incarnation: 99,
                seq: 5,
            }),
            payload: std::sync::Arc::new(EntryPayload::Command {
                db: 3,
                argv: vec![Bytes::from("SET"), Bytes::from("k"), Bytes::from("v")],
            }),
        });
        let bytes = encode_wal_record(&record);
        assert_eq!(decode_wal_record(&bytes).unwrap(), record);
        let WalRecord::Entry(entry) = &record else {
            unreachable!()
        };
        let mut by_ref = Vec::new();
        encode_entry_record_into(entry, &mut by_ref);
        assert_eq!(by_ref, bytes, "the by-reference encoding is the same");
        assert!(decode_wal_record(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn the_encoding_is_stable() {
        // A golden encoding: if this changes, old WALs stop reading. Bump the version instead.
        let record = WalRecord::Entry(LogEntry {
            index: 1,
            term: 1,
            ts_ms: 2,
            origin: None,
            payload: std::sync::Arc::new(EntryPayload::Noop),
        });
        assert_eq!(encode_wal_record(&record), vec![0, 1, 1, 2, 0, 0]);
        let hard_state = WalRecord::HardState(crate::log::HardState {
            term: 3,
            vote: Some(2),
        });
        assert_eq!(encode_wal_record(&hard_state), vec![1, 3, 1, 2]);
    }
}

/// The version of the peer protocol (handshake and messages). A node refuses a peer that
/// speaks another, with a log line naming both.
/// Version 2 added the recovery probe (`Probe`, `ProbeReply`); version 3, `held_by_all` in
/// appends (followers drop the entries every replica holds from memory).
pub const PEER_PROTOCOL_VERSION: u32 = 3;

/// The first bytes on every peer connection, before the version.
pub const PEER_MAGIC: &[u8; 8] = b"QRMPEER\0";

/// The most bytes one peer frame may declare; more closes the connection before anything is
/// allocated.
pub const PEER_FRAME_BYTES_MAX: usize = 1 << 30;

/// The handshake of a peer connection (see `node::peer`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Handshake {
    /// The dialing node introduces itself.
    Hello {
        cluster_id: u64,
        from: u64,
        to: u64,
        nonce: u64,
    },
    /// The accepting node's answer: its nonce, and its proof that it knows the secret (a MAC
    /// of both nonces and both ids; empty when the cluster has no secret).
    Challenge { nonce: u64, proof: Vec<u8> },
    /// The dialing node's proof.
    Proof { proof: Vec<u8> },
    /// Why the connection is refused.
    Refused { reason: String },
}

pub fn encode_handshake(handshake: &Handshake) -> Vec<u8> {
    let mut out = PEER_MAGIC.to_vec();
    out.extend_from_slice(&PEER_PROTOCOL_VERSION.to_le_bytes());
    postcard::to_extend(handshake, out).expect("encoding to a Vec cannot fail")
}

#[derive(Debug, Error, PartialEq)]
pub enum HandshakeError {
    #[error("not a quorum peer (no protocol magic)")]
    Garbage,
    #[error("the peer speaks protocol version {0}; this node speaks {PEER_PROTOCOL_VERSION}")]
    Version(u32),
    #[error("undecodable handshake: {0}")]
    Decode(String),
}

pub fn decode_handshake(bytes: &[u8]) -> Result<Handshake, HandshakeError> {
    if bytes.len() < 12 || &bytes[..8] != PEER_MAGIC {
        return Err(HandshakeError::Garbage);
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    if version != PEER_PROTOCOL_VERSION {
        return Err(HandshakeError::Version(version));
    }
    postcard::from_bytes(&bytes[12..]).map_err(|e| HandshakeError::Decode(e.to_string()))
}

pub fn encode_message(message: &crate::replica::Message) -> Vec<u8> {
    postcard::to_allocvec(message).expect("encoding to a Vec cannot fail")
}

pub fn decode_message(bytes: &[u8]) -> Result<crate::replica::Message, postcard::Error> {
    let mut input = Input { bytes, at: 0 };
    if input.varint_u32() == Ok(MESSAGE_APPEND as u32)
        && let Ok(append) = input.append()
    {
        return Ok(append);
    }
    // As for WAL records: postcard decides what the fast path refuses.
    postcard::from_bytes(bytes)
}

/// Appends `message` to `out` as one peer frame, encoding it in place (a large append is
/// neither built in a buffer of its own nor copied).
pub fn encode_message_frame(message: &crate::replica::Message, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    put_message(message, out);
    let header = peer_frame_header(&out[start + 8..]);
    out[start..start + 8].copy_from_slice(&header);
}

/// Appends `message` as postcard encodes it; appends through the entry encoder.
fn put_message(message: &crate::replica::Message, out: &mut Vec<u8>) {
    use crate::replica::Message;
    match message {
        Message::Append {
            term,
            prev_index,
            prev_term,
            entries,
            commit,
            read_round,
            held_by_all,
        } => {
            put_varint(out, MESSAGE_APPEND);
            put_varint(out, *term);
            put_varint(out, *prev_index);
            put_varint(out, *prev_term);
            put_varint(out, entries.len() as u64);
            for entry in entries {
                put_entry(entry, out);
            }
            put_varint(out, *commit);
            put_varint(out, *read_round);
            put_varint(out, *held_by_all);
        }
        other => {
            *out = postcard::to_extend(other, std::mem::take(out))
                .expect("encoding to a Vec cannot fail");
        }
    }
}

/// Frames a peer payload: `len u32 LE | crc32 u32 LE | payload`.
pub fn encode_peer_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&peer_frame_header(payload));
    out.extend_from_slice(payload);
}

/// Splits the first whole frame off `buf` and returns its payload, checksum verified; `None`
/// until all of it has arrived. A declared length over the limit is refused at once.
pub fn take_peer_frame(buf: &mut BytesMut) -> Result<Option<BytesMut>, String> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap());
    if len > PEER_FRAME_BYTES_MAX {
        return Err(format!(
            "frame of {len} bytes is over the limit of {PEER_FRAME_BYTES_MAX}"
        ));
    }
    if buf.len() < 8 + len {
        return Ok(None);
    }
    buf.advance(8);
    let payload = buf.split_to(len);
    if crc32fast::hash(&payload) != crc {
        return Err("frame checksum mismatch".to_string());
    }
    Ok(Some(payload))
}

/// A peer frame's header: `len u32 LE | crc32 u32 LE` of its payload.
fn peer_frame_header(payload: &[u8]) -> [u8; 8] {
    let mut header = [0; 8];
    header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[4..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    header
}

#[cfg(test)]
mod peer_tests {
    use super::*;
    use crate::replica::{AppendOutcome, Message};

    #[test]
    fn handshakes_and_messages_round_trip_and_refuse_strangers() {
        let hello = Handshake::Hello {
            cluster_id: 9,
            from: 1,
            to: 2,
            nonce: 77,
        };
        let bytes = encode_handshake(&hello);
        assert_eq!(decode_handshake(&bytes), Ok(hello));
        let mut other_version = bytes.clone();
        other_version[8] = 9;
        assert_eq!(
            decode_handshake(&other_version),
            Err(HandshakeError::Version(9))
        );
        assert_eq!(
            decode_handshake(b"GET / HTTP/1.1\r\n"),
            Err(HandshakeError::Garbage)
        );
        let message = Message::AppendReply {
            term: 3,
            outcome: AppendOutcome::Accepted { match_index: 12 },
            read_round: 4,
        };
        assert_eq!(decode_message(&encode_message(&message)).unwrap(), message);
    }

    #[test]
    fn a_message_framed_in_place_is_the_frame_of_its_encoding() {
        let first = Message::AppendReply {
            term: 3,
            outcome: AppendOutcome::Accepted { match_index: 12 },
            read_round: 4,
        };
        let second = Message::ReadIndex { term: 3, ctx: 99 };
        let mut expected = Vec::new();
        encode_peer_frame(&encode_message(&first), &mut expected);
        encode_peer_frame(&encode_message(&second), &mut expected);
        let mut out = Vec::new();
        encode_message_frame(&first, &mut out);
        encode_message_frame(&second, &mut out);
        assert_eq!(out, expected);
    }
}

#[cfg(test)]
mod entry_encoder_tests {
    use super::*;
    use crate::log::{EntryPayload, Origin, WatchedKey};
    use crate::replica::Message;
    use bytes::Bytes;
    use proptest::prelude::*;
    use std::sync::Arc;

    /// Integers with every varint length, not only small ones.
    fn int() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..300,
            any::<u64>(),
            (0u32..64).prop_map(|bits| 1u64 << bits)
        ]
    }

    fn blob() -> impl Strategy<Value = Bytes> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..20),
            proptest::collection::vec(any::<u8>(), 120..200),
        ]
        .prop_map(Bytes::from)
    }

    fn argv() -> impl Strategy<Value = Vec<Bytes>> {
        proptest::collection::vec(blob(), 0..5)
    }

    fn payload() -> impl Strategy<Value = EntryPayload> {
        prop_oneof![
            Just(EntryPayload::Noop),
            (any::<u8>(), argv()).prop_map(|(db, argv)| EntryPayload::Command { db, argv }),
            (
                proptest::collection::vec(
                    (any::<u8>(), blob(), proptest::option::of(int()))
                        .prop_map(|(db, key, version)| WatchedKey { db, key, version }),
                    0..3
                ),
                proptest::collection::vec((any::<u8>(), argv()), 0..3),
            )
                .prop_map(|(watches, commands)| EntryPayload::Transaction { watches, commands }),
            proptest::collection::vec((any::<u8>(), blob()), 0..4)
                .prop_map(|keys| EntryPayload::Expire { keys }),
        ]
    }

    fn entry() -> impl Strategy<Value = LogEntry> {
        (
            int(),
            int(),
            int(),
            proptest::option::of((int(), int(), int())),
            payload(),
        )
            .prop_map(|(index, term, ts_ms, origin, payload)| LogEntry {
                index,
                term,
                ts_ms,
                origin: origin.map(|(node, incarnation, seq)| Origin {
                    node,
                    incarnation,
                    seq,
                }),
                payload: std::sync::Arc::new(payload),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// The hand-written encoder writes exactly what postcard's serde encoder writes, for
        /// WAL records and for appends (so neither the WAL nor the peer format changed).
        #[test]
        fn entries_encode_as_postcard_does(
            entries in proptest::collection::vec(entry(), 0..4),
            term in int(), prev_index in int(), prev_term in int(),
            commit in int(), read_round in int(), held_by_all in int(),
        ) {
            for entry in &entries {
                let mut ours = vec![7];
                encode_entry_record_into(entry, &mut ours);
                let mut theirs = vec![7];
                theirs.extend(encode_wal_record(&WalRecord::Entry(entry.clone())));
                prop_assert_eq!(ours, theirs);
            }
            let append = Message::Append {
                term,
                prev_index,
                prev_term,
                entries: entries.into_iter().map(Arc::new).collect(),
                commit,
                read_round,
                held_by_all,
            };
            let mut ours = vec![1, 2];
            encode_message_frame(&append, &mut ours);
            let mut theirs = vec![1, 2];
            encode_peer_frame(&encode_message(&append), &mut theirs);
            prop_assert_eq!(&ours, &theirs);
            prop_assert_eq!(decode_message(&ours[10..]).unwrap(), append);
        }
    }

    proptest! {
        // A flipped option tag or length is one byte among hundreds: many cases (a quarter
        // of a second in a release build).
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// The hand-written decoder agrees with postcard's on damaged encodings too: the
        /// same value or an error from both (every byte flipped, cut or inserted somewhere
        /// in a valid append or WAL record).
        #[test]
        fn damaged_bytes_decode_as_postcard_decodes_them(
            entries in proptest::collection::vec(entry(), 1..3),
            damage in proptest::collection::vec((0usize..1000, any::<u8>(), 0u8..4), 1..4),
            as_wal_record in any::<bool>(),
        ) {
            let mut bytes = if as_wal_record {
                encode_wal_record(&WalRecord::Entry(entries[0].clone()))
            } else {
                encode_message(&Message::Append {
                    term: 3,
                    prev_index: 9,
                    prev_term: 2,
                    entries: entries.into_iter().map(Arc::new).collect(),
                    commit: 8,
                    read_round: 1,
                    held_by_all: 7,
                })
            };
            for (at, byte, how) in damage {
                let at = at % (bytes.len() + 1);
                match how {
                    0 if at < bytes.len() => bytes[at] ^= byte | 1,
                    // Small values, where tags and lengths have their edges.
                    1 if at < bytes.len() => bytes[at] = byte % 4,
                    2 => bytes.truncate(at),
                    _ => bytes.insert(at, byte),
                }
            }
            if as_wal_record {
                let ours = decode_wal_record(&bytes).ok();
                let theirs: Option<WalRecord> = postcard::from_bytes(&bytes).ok();
                prop_assert_eq!(ours, theirs);
            } else {
                let ours = decode_message(&bytes).ok();
                let theirs: Option<Message> = postcard::from_bytes(&bytes).ok();
                prop_assert_eq!(ours, theirs);
            }
        }
    }

    #[test]
    fn varints_past_their_width_are_refused_as_postcard_refuses_them() {
        let entry_of = |index_bytes: &[u8]| {
            let mut bytes = vec![0];
            bytes.extend_from_slice(index_bytes);
            bytes.extend_from_slice(&[1, 2, 0, 0]);
            bytes
        };
        for index in [
            vec![0x80, 0x00],
            vec![0xff; 9].into_iter().chain([0x01]).collect(),
            vec![0xff; 9].into_iter().chain([0x02]).collect(),
            vec![0xff; 10],
        ] {
            let bytes = entry_of(&index);
            let ours = decode_wal_record(&bytes).ok();
            let theirs: Option<WalRecord> = postcard::from_bytes(&bytes).ok();
            assert_eq!(ours, theirs, "{index:x?}");
        }
    }
}
