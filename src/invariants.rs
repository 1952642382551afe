//! The safety properties of a cluster, one checker per property. Each returns a [`Violation`]
//! that names the property. The harness calls them after every step it drives
//! (`testing::cluster`), and at the end of a run (durability, linearizability).
//!
//! The checkers watch what replicas do rather than trust what they say: every entry any
//! replica persists goes through [`Observer::on_persist`], and every commit and apply is read
//! back from the replicas after each step.

use crate::log::LogEntry;
use crate::replica::{NodeId, Replica, Role};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub property: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated: {}", self.property, self.detail)
    }
}

fn violation(property: &'static str, detail: String) -> Result<(), Violation> {
    Err(Violation { property, detail })
}

/// What the checkers remember across steps.
#[derive(Default)]
pub struct Observer {
    /// term -> the replica that led in it.
    leaders: BTreeMap<u64, NodeId>,
    /// (index, term) -> the entry and the term of the entry before it, as first persisted.
    entries: BTreeMap<(u64, u64), (LogEntry, u64)>,
    /// index -> the entry committed there, as first seen committed.
    committed: BTreeMap<u64, LogEntry>,
    /// index -> the term of the replica that first showed it committed: it was committed in
    /// that term or an earlier one.
    committed_term: BTreeMap<u64, u64>,
    /// Per replica, how far its commit index was checked.
    commit_checked: BTreeMap<NodeId, u64>,
    /// index -> the keyspace digest after applying it, as first seen.
    digests: BTreeMap<u64, u64>,
}

impl Observer {
    /// Election safety: at most one leader per term.
    pub fn election_safety(&mut self, replica: &Replica) -> Result<(), Violation> {
        if replica.role() != Role::Leader {
            return Ok(());
        }
        let term = replica.term();
        match self.leaders.get(&term) {
            Some(&other) if other != replica.id() => violation(
                "election safety",
                format!("replicas {other} and {} both led term {term}", replica.id()),
            ),
            Some(_) => Ok(()),
            None => {
                self.leaders.insert(term, replica.id());
                Ok(())
            }
        }
    }

    /// Log matching, as entries are persisted: two entries with the same index and term are
    /// the same entry and follow entries of the same term (so, inductively, the same log).
    pub fn on_persist(
        &mut self,
        replica: NodeId,
        entry: &LogEntry,
        previous_term: u64,
    ) -> Result<(), Violation> {
        let key = (entry.index, entry.term);
        match self.entries.get(&key) {
            None => {
                self.entries.insert(key, (entry.clone(), previous_term));
                Ok(())
            }
            Some((first, first_previous)) => {
                if first != entry || *first_previous != previous_term {
                    return violation(
                        "log matching",
                        format!(
                            "replica {replica} persisted a different entry at index {} term {}: {:?} after term {previous_term}, first seen {:?} after term {first_previous}",
                            entry.index, entry.term, entry.payload, first.payload
                        ),
                    );
                }
                Ok(())
            }
        }
    }

    /// Committed entries never change: every entry a replica has committed is the one
    /// committed at that index anywhere.
    pub fn committed_entries(&mut self, replica: &Replica) -> Result<(), Violation> {
        let id = replica.id();
        let from = self.commit_checked.get(&id).copied().unwrap_or(0) + 1;
        // A restarted replica forgets its commit index: check again from what it holds.
        let from = from
            .min(replica.commit_index() + 1)
            .max(replica.first_index());
        for index in from..=replica.commit_index() {
            let Some(entry) = replica.entry(index) else {
                continue;
            };
            match self.committed.get(&index) {
                None => {
                    self.committed.insert(index, (**entry).clone());
                    self.committed_term.insert(index, replica.term());
                }
                Some(first) if first != &**entry => {
                    return violation(
                        "committed entries never change",
                        format!(
                            "replica {id} committed {:?} (term {}) at index {index}, where {:?} (term {}) was committed",
                            entry.payload, entry.term, first.payload, first.term
                        ),
                    );
                }
                Some(_) => {}
            }
        }
        self.commit_checked.insert(id, replica.commit_index());
        Ok(())
    }

    /// Leader completeness, checked once per term when its leader is first seen: the leader
    /// holds every entry committed in an earlier term. (A leader of term 3 whose election
    /// ended late may lack an entry that a leader of term 4 committed meanwhile; it steps down
    /// as soon as it hears of term 4.)
    pub fn leader_completeness(&self, replica: &Replica) -> Result<(), Violation> {
        let id = replica.id();
        {
            for (index, committed) in self.committed.range(replica.first_index()..) {
                if self.committed_term[index] >= replica.term() {
                    continue;
                }
                if replica.entry(*index).map(|e| &**e) != Some(committed) {
                    return violation(
                        "leader completeness",
                        format!(
                            "replica {id} leads term {} without committed entry {index} (term {})",
                            replica.term(),
                            committed.term
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// State-machine safety: replicas that applied the same index have the same keyspace.
    pub fn state_machine_safety(&mut self, replica: &Replica) -> Result<(), Violation> {
        let index = replica.applied_index();
        if index == 0 {
            return Ok(());
        }
        let digest = replica.keyspace().digest();
        match self.digests.get(&index) {
            None => {
                self.digests.insert(index, digest);
                Ok(())
            }
            Some(&first) if first != digest => violation(
                "state-machine safety",
                format!(
                    "replica {} has keyspace digest {digest:#x} after applying {index}; another had {first:#x}",
                    replica.id()
                ),
            ),
            Some(_) => Ok(()),
        }
    }

    /// The replica's own invariants (`Replica::check_invariants`).
    pub fn internal(replica: &Replica) -> Result<(), Violation> {
        replica.check_invariants().map_err(|detail| Violation {
            property: "replica internal invariants",
            detail: format!("replica {}: {detail}", replica.id()),
        })
    }

    /// Every per-step check, for one replica that just stepped.
    pub fn after_step(&mut self, replica: &Replica) -> Result<(), Violation> {
        Observer::internal(replica)?;
        let new_leader =
            replica.role() == Role::Leader && !self.leaders.contains_key(&replica.term());
        self.election_safety(replica)?;
        self.committed_entries(replica)?;
        if new_leader {
            self.leader_completeness(replica)?;
        }
        self.state_machine_safety(replica)
    }

    /// The entries known committed, by index.
    pub fn committed(&self) -> &BTreeMap<u64, LogEntry> {
        &self.committed
    }
}

/// Durability of acknowledged writes: every write a client saw acknowledged is in the
/// committed log. `acknowledged` holds each write's argv.
pub fn durability(
    committed: &BTreeMap<u64, LogEntry>,
    acknowledged: &[Vec<bytes::Bytes>],
) -> Result<(), Violation> {
    use crate::log::EntryPayload;
    let mut present = std::collections::BTreeSet::new();
    for entry in committed.values() {
        if let EntryPayload::Command { argv, .. } = &*entry.payload {
            present.insert(argv.clone());
        }
    }
    for argv in acknowledged {
        if !present.contains(argv) {
            let words: Vec<String> = argv
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            return violation(
                "durability of acknowledged writes",
                format!("acknowledged {words:?} is not in the committed log"),
            );
        }
    }
    Ok(())
}
