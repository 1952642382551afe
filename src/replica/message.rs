//! The messages replicas exchange. The core produces and consumes them as values; the adapter
//! carries them (encoded by `codec`, versioned) and may lose, delay, reorder or duplicate
//! them: every handler tolerates all four.

use crate::log::{EntryPayload, LogEntry, Origin};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A replica's identity in the cluster.
pub type NodeId = u64;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// "Would you vote for me in `term`?" Sent before a real election, without changing the
    /// sender's term, so a replica cut off from the cluster does not inflate terms.
    PreVote {
        term: u64,
        last_index: u64,
        last_term: u64,
    },
    PreVoteReply {
        term: u64,
        granted: bool,
    },
    /// A candidate's request for a vote in `term`. `transfer` is set when the leader asked for
    /// this election (leader transfer): voters then ignore their recent contact with it.
    Vote {
        term: u64,
        last_index: u64,
        last_term: u64,
        transfer: bool,
    },
    VoteReply {
        term: u64,
        granted: bool,
    },
    /// The leader's entries after (`prev_index`, `prev_term`), possibly none (a heartbeat).
    /// `read_round` is the newest read-index round the leader started; replies echo it.
    Append {
        term: u64,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Arc<LogEntry>>,
        commit: u64,
        read_round: u64,
        /// Every replica holds the log durably up to here: a follower may drop the entries
        /// it has applied up to here from memory.
        held_by_all: u64,
    },
    AppendReply {
        term: u64,
        outcome: AppendOutcome,
        read_round: u64,
    },
    /// Leader transfer: "start an election now".
    TimeoutNow {
        term: u64,
    },
    /// A follower asks the leader for a read index (for the reads it batched under `ctx`).
    ReadIndex {
        term: u64,
        ctx: u64,
    },
    /// The leader's answer: reads may be served once the asker applied `index`; `None` if the
    /// receiver is not (or no longer) the leader.
    ReadIndexReply {
        term: u64,
        ctx: u64,
        index: Option<u64>,
    },
    /// A follower hands client writes to the leader. Sending one again is harmless: the state
    /// machine applies each origin once.
    Forward {
        term: u64,
        proposals: Vec<Proposal>,
    },
    /// A replica whose WAL tail was cut asks what the others hold (see `Recovery`). Answered
    /// by anyone, whatever its role; changes no one's term.
    Probe {
        term: u64,
    },
    /// The answer: the replier's term, its last entry's index and term, and whether it is
    /// recovering too (its log may lack what it acknowledged).
    ProbeReply {
        term: u64,
        last_index: u64,
        last_term: u64,
        recovering: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AppendOutcome {
    /// The follower's log matches the leader's up to `match_index`, durably.
    Accepted { match_index: u64 },
    /// The follower has no entry (`prev_index`, `prev_term`); the leader should try again from
    /// `hint_index` (fast back-off: the first index of the conflicting term, or the end of
    /// the follower's log).
    Rejected { prev_index: u64, hint_index: u64 },
    /// The append came from an older term than the follower's (the reply's term): its sender
    /// must step down. A leader of the reply's term (the same replica, elected again since)
    /// ignores it.
    StaleTerm,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub origin: Origin,
    pub payload: Arc<EntryPayload>,
}

impl Message {
    /// The sender's term.
    pub fn term(&self) -> u64 {
        match self {
            Message::PreVote { term, .. }
            | Message::PreVoteReply { term, .. }
            | Message::Vote { term, .. }
            | Message::VoteReply { term, .. }
            | Message::Append { term, .. }
            | Message::AppendReply { term, .. }
            | Message::TimeoutNow { term }
            | Message::ReadIndex { term, .. }
            | Message::ReadIndexReply { term, .. }
            | Message::Forward { term, .. }
            | Message::Probe { term }
            | Message::ProbeReply { term, .. } => *term,
        }
    }
}
