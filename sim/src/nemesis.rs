//! The nemesis: a seeded schedule of faults against the running nodes, each undone after a
//! seeded while, and the healing that ends the safety phase.

use crate::disk::SimDisk;
use crate::world::{MessageFaults, World};
use madsim::net::NetSim;
use madsim::runtime::Handle;
use madsim::task::NodeId as SimNodeId;
use quorum::rng::Rng;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A fault to undo later.
#[derive(Debug)]
enum Undo {
    Restart(usize),
    Resume(usize),
    Unclog(usize),
    UnclogLinks(Vec<(usize, usize)>),
    CalmMessages,
    FastDisk(usize),
}

pub struct Nemesis {
    world: Arc<World>,
    handle: Handle,
    net: Arc<NetSim>,
    ids: Vec<SimNodeId>,
    rng: Rng,
    down: Vec<bool>,
    paused: Vec<bool>,
    /// (due at, in virtual ms since the start; what to undo).
    undo: Vec<(u64, Undo)>,
    /// Set by `heal`: a swizzle still cutting links stops.
    healed: Arc<AtomicBool>,
}

fn now_ms() -> u64 {
    crate::world::virtual_ns() / 1_000_000
}

impl Nemesis {
    pub fn new(world: Arc<World>, ids: Vec<SimNodeId>) -> Nemesis {
        let nodes = ids.len();
        Nemesis {
            rng: Rng::new(world.seed ^ 0x004e_454d_4553_4953),
            world,
            handle: Handle::current(),
            net: NetSim::current(),
            ids,
            down: vec![false; nodes],
            paused: vec![false; nodes],
            undo: Vec::new(),
            healed: Arc::default(),
        }
    }

    fn later(&mut self, min_ms: u64, max_ms: u64, undo: Undo) {
        let at = now_ms() + min_ms + self.rng.below(max_ms - min_ms + 1);
        self.undo.push((at, undo));
    }

    fn pick_node(&mut self) -> usize {
        self.rng.below(self.ids.len() as u64) as usize
    }

    /// Injects faults until `until_ms`: one every 250 ms on average.
    pub async fn run(&mut self, until_ms: u64) {
        while now_ms() < until_ms {
            tokio::time::sleep(Duration::from_millis(10)).await;
            self.reap_fatal();
            self.undo_due(now_ms());
            if self.rng.below(25) == 0 {
                self.inject().await;
            }
            if self.world.violation().is_some() {
                return;
            }
        }
    }

    /// A node that met a fatal error must stop: the harness takes it down (a crash) and
    /// starts it again later.
    pub fn reap_fatal(&mut self) {
        for node in 0..self.ids.len() {
            let fatal = self.world.lock().fatal[node].take();
            if fatal.is_some() && !self.down[node] {
                self.crash(node);
                self.later(100, 1000, Undo::Restart(node));
            }
        }
    }

    fn crash(&mut self, node: usize) {
        let damage = {
            let mut state = self.world.lock();
            let corruptible = self.world.corruptible[node];
            let mut disk = self.world.disks[node].lock().unwrap();
            disk.crash(&mut state.rng, corruptible)
        };
        tracing::info!(node = node + 1, ?damage, "nemesis crashes the node");
        let mut state = self.world.lock();
        *state.faults.entry("unsynced writes lost").or_default() +=
            damage.unsynced_writes_lost as u64;
        *state.faults.entry("torn write").or_default() += damage.torn_writes as u64;
        *state.faults.entry("bit flip").or_default() += damage.bit_flips as u64;
        *state.faults.entry("disk wiped").or_default() += u64::from(damage.wiped);
        drop(state);
        if self.paused[node] {
            self.handle.resume(self.ids[node]);
            self.paused[node] = false;
        }
        self.handle.kill(self.ids[node]);
        self.down[node] = true;
        self.world.trace(&[10, node as u64]);
    }

    fn restart(&mut self, node: usize) {
        if self.down[node] {
            self.handle.restart(self.ids[node]);
            self.down[node] = false;
            self.world.trace(&[11, node as u64]);
        }
    }

    fn undo_due(&mut self, now: u64) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.undo)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.undo = later;
        for (_, undo) in due {
            self.apply(undo);
        }
    }

    fn apply(&mut self, undo: Undo) {
        tracing::info!(?undo, "nemesis undoes");
        match undo {
            Undo::Restart(node) => self.restart(node),
            Undo::Resume(node) => {
                if self.paused[node] {
                    self.handle.resume(self.ids[node]);
                    self.paused[node] = false;
                }
            }
            Undo::Unclog(node) => self.net.unclog_node(self.ids[node]),
            Undo::UnclogLinks(links) => {
                for (a, b) in links {
                    self.net.unclog_link(self.ids[a], self.ids[b]);
                }
            }
            Undo::CalmMessages => self.world.lock().messages = MessageFaults::default(),
            Undo::FastDisk(node) => self.world.lock().disk_delay_ms[node] = 0,
        }
    }

    async fn inject(&mut self) {
        let node = self.pick_node();
        let kind = match self.rng.below(100) {
            0..=17 => {
                if self.down[node] {
                    return;
                }
                // Mostly in the middle of a write: between a write and its fsync, where a
                // crash loses or tears it.
                if self.rng.below(3) != 0 {
                    for _ in 0..300 {
                        if self.world.disks[node].lock().unwrap().has_pending() || self.down[node] {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    if self.down[node] {
                        return;
                    }
                }
                self.crash(node);
                self.later(200, 3000, Undo::Restart(node));
                "crash"
            }
            18..=25 => {
                if self.down[node] || self.paused[node] {
                    return;
                }
                self.handle.pause(self.ids[node]);
                self.paused[node] = true;
                self.later(100, 2000, Undo::Resume(node));
                "process pause"
            }
            26..=35 => {
                if self.down[node] {
                    return;
                }
                self.net.clog_node(self.ids[node]);
                self.later(200, 3000, Undo::Unclog(node));
                "node isolated"
            }
            36..=45 => {
                let other = self.pick_node();
                if other == node {
                    return;
                }
                self.net.clog_link(self.ids[node], self.ids[other]);
                self.later(200, 3000, Undo::UnclogLinks(vec![(node, other)]));
                "one-way link cut"
            }
            46..=53 => {
                // Split the nodes in two random groups, neither empty.
                let side: Vec<bool> = (0..self.ids.len())
                    .map(|_| self.rng.below(2) == 0)
                    .collect();
                if side.iter().all(|s| *s) || side.iter().all(|s| !s) {
                    return;
                }
                let mut links = Vec::new();
                for a in 0..self.ids.len() {
                    for b in 0..self.ids.len() {
                        if side[a] != side[b] {
                            self.net.clog_link(self.ids[a], self.ids[b]);
                            links.push((a, b));
                        }
                    }
                }
                self.later(300, 3000, Undo::UnclogLinks(links));
                "partition"
            }
            54..=59 => {
                self.swizzle();
                "swizzle partition"
            }
            60..=71 => {
                let faults = MessageFaults {
                    loss_per_mille: self.rng.below(300),
                    duplicate_per_mille: self.rng.below(100),
                    delay_ms_max: self.rng.below(100),
                };
                self.world.lock().messages = faults;
                self.later(300, 3000, Undo::CalmMessages);
                "lossy network"
            }
            72..=79 => {
                let offset = self.rng.below(4001) as i64 - 2000;
                self.world.lock().clock_offset_ms[node] = offset;
                "clock skew"
            }
            80..=85 => {
                let jump = self.rng.below(12_001) as i64 - 2000;
                self.world.lock().clock_offset_ms[node] += jump;
                "clock jump"
            }
            86..=93 => {
                if self.down[node] {
                    return;
                }
                self.world.lock().disk_delay_ms[node] = 1 + self.rng.below(200);
                self.later(300, 3000, Undo::FastDisk(node));
                "slow disk"
            }
            _ => {
                if self.down[node] {
                    return;
                }
                // Counted when it happens (`DiskState::failed_fsyncs`): a crash or the healing
                // may take it back first.
                self.world.disks[node].lock().unwrap().fail_next_sync();
                return;
            }
        };
        self.world.count_fault(kind);
        tracing::info!(node = node + 1, kind, "nemesis");
        self.world.trace(&[12, node as u64, kind.len() as u64]);
    }

    /// Cuts the links between nodes one by one, then heals them in another random order.
    fn swizzle(&mut self) {
        let n = self.ids.len();
        let mut links: Vec<(usize, usize)> = (0..n)
            .flat_map(|a| (0..n).filter(move |b| *b != a).map(move |b| (a, b)))
            .collect();
        shuffle(&mut self.rng, &mut links);
        let cut = 1 + self.rng.below(links.len() as u64) as usize;
        let mut cuts: Vec<(usize, usize)> = links[..cut].to_vec();
        let step_ms = 20 + self.rng.below(200);
        let ids = self.ids.clone();
        let net = self.net.clone();
        let hold_ms = 200 + self.rng.below(2000);
        let mut heal = cuts.clone();
        shuffle(&mut self.rng, &mut heal);
        let healed = self.healed.clone();
        tokio::spawn(async move {
            for (a, b) in cuts.drain(..) {
                if healed.load(Ordering::SeqCst) {
                    return;
                }
                net.clog_link(ids[a], ids[b]);
                tokio::time::sleep(Duration::from_millis(step_ms)).await;
            }
            tokio::time::sleep(Duration::from_millis(hold_ms)).await;
            for (a, b) in heal {
                net.unclog_link(ids[a], ids[b]);
                tokio::time::sleep(Duration::from_millis(step_ms)).await;
            }
        });
    }

    /// Ends the safety phase: every node running and reachable, the network and the disks
    /// calm, nothing armed. Clocks keep their skew.
    pub fn heal(&mut self) {
        tracing::info!("nemesis heals everything");
        self.healed.store(true, Ordering::SeqCst);
        for (_, undo) in std::mem::take(&mut self.undo) {
            if !matches!(undo, Undo::Restart(_)) {
                self.apply(undo);
            }
        }
        for node in 0..self.ids.len() {
            self.world.disks[node].lock().unwrap().disarm();
            if self.paused[node] {
                self.handle.resume(self.ids[node]);
                self.paused[node] = false;
            }
            self.net.unclog_node(self.ids[node]);
            for other in 0..self.ids.len() {
                if other != node {
                    self.net.unclog_link(self.ids[node], self.ids[other]);
                }
            }
            self.world.lock().disk_delay_ms[node] = 0;
        }
        self.world.lock().messages = MessageFaults::default();
        self.reap_fatal();
        for node in 0..self.ids.len() {
            self.restart(node);
        }
    }
}

fn shuffle<T>(rng: &mut Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// The disk handle for a node's next life.
pub fn disk_for(world: &World, node: usize) -> SimDisk {
    SimDisk::new(world.disks[node].clone())
}
