//! Which units this node holds, and who decides their fate.
//!
//! A unit the node accepted is *held* until it is reported, handed back, or
//! cancelled by the gateway. Each held unit has a [`UnitCell`]: a tiny atomic state
//! machine shared between the node's event loop and the task/thread preparing or
//! running the unit.
//!
//! ```text
//!            try_start (worker)            unit finishes
//!   QUEUED ─────────────────────▶ RUNNING ───────────────▶ (Done event)
//!      │
//!      └── try_abandon (event loop) ──▶ ABANDONED   (never runs, never reported)
//! ```
//!
//! Exactly one of `try_start` and `try_abandon` succeeds, so a unit is either run
//! (and its result goes through [`Tracker::finish`]) or given up before it ran,
//! never both. The tracker is plain data: the event loop owns it, no locks.
//!
//! Invariants:
//! * the node asks for at most `free() = capacity - held` units (capacity = runner
//!   slots plus the prefetch allowance, see `docs/design/lode-node.md`) and takes
//!   at most what it asked for, so `held <= capacity` except briefly when the
//!   capacity shrank while a poll was in flight;
//! * a unit is held at most once (a duplicate assignment is ignored, not run twice);
//! * once a unit is abandoned, handed back or cancelled, any later result for it is
//!   dropped ([`Finish::Drop`]).

use lode_proto::wire::{Assignment, UnitRef};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const ABANDONED: u8 = 2;

/// Shared state of one held unit.
#[derive(Debug, Default)]
pub struct UnitCell(AtomicU8);

impl UnitCell {
    /// Claims the unit to run it (or to report an outcome decided before running).
    pub fn try_start(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Gives the unit up if it has not started.
    pub fn try_abandon(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub fn is_abandoned(&self) -> bool {
        self.0.load(Ordering::Acquire) == ABANDONED
    }

    pub fn is_running(&self) -> bool {
        self.0.load(Ordering::Acquire) == RUNNING
    }
}

#[derive(Debug)]
struct Held {
    cell: Arc<UnitCell>,
    /// Cancelled by the gateway while running: its result will be dropped.
    discard: bool,
}

/// What [`Tracker::admit`] decided for the assignments of one poll.
#[derive(Debug, Default)]
pub struct Admitted {
    /// Start these.
    pub run: Vec<(Assignment, Arc<UnitCell>)>,
    /// Give these back at once (no free slot, or the node is shutting down).
    pub hand_back: Vec<UnitRef>,
    /// Already held: ignored.
    pub duplicates: Vec<UnitRef>,
}

/// What to do with a finished unit's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Deliver,
    Drop,
}

/// What a gateway cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// Not held (already reported, never assigned): nothing to do.
    NotHeld,
    /// It had not started: given up.
    Dropped,
    /// It is running and cannot be interrupted: its result will be dropped, its
    /// slot stays busy until it ends.
    Discarding,
}

/// The units this node holds.
#[derive(Debug)]
pub struct Tracker {
    capacity: u32,
    held: HashMap<UnitRef, Held>,
}

impl Tracker {
    pub fn new(capacity: u32) -> Self {
        Self {
            capacity,
            held: HashMap::new(),
        }
    }

    /// Most units held at once.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Changes the most units held at once. Units already held above a lowered
    /// capacity are kept; nothing new is admitted until enough finish.
    pub fn set_capacity(&mut self, capacity: u32) {
        self.capacity = capacity;
    }

    /// Units held (preparing, queued or running, including running discarded ones).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    pub fn is_idle(&self) -> bool {
        self.held.is_empty()
    }

    /// Room for more units (`capacity - held`).
    pub fn free(&self) -> u32 {
        self.capacity
            .saturating_sub(u32::try_from(self.held.len()).unwrap_or(u32::MAX))
    }

    pub fn holds(&self, unit: &UnitRef) -> bool {
        self.held.contains_key(unit)
    }

    /// Takes up to `room` new assignments (see [`Tracker::room_for`]); the rest
    /// are to be handed back. Units already held are ignored.
    pub fn admit(&mut self, assignments: Vec<Assignment>, room: u32) -> Admitted {
        let mut out = Admitted::default();
        let mut room = room;
        for a in assignments {
            match self.held.entry(a.unit) {
                Entry::Occupied(_) => out.duplicates.push(a.unit),
                Entry::Vacant(_) if room == 0 => out.hand_back.push(a.unit),
                Entry::Vacant(slot) => {
                    room -= 1;
                    let cell = Arc::new(UnitCell::default());
                    slot.insert(Held {
                        cell: Arc::clone(&cell),
                        discard: false,
                    });
                    out.run.push((a, cell));
                }
            }
        }
        out
    }

    /// How many units of a poll answer to take: none when not `accepting`
    /// (shutting down); otherwise what the poll asked for (`want`; capacity may
    /// have shrunk since, but the node asked for them) or the free room, whichever
    /// is larger.
    pub fn room_for(&self, want: u32, accepting: bool) -> u32 {
        if accepting { want.max(self.free()) } else { 0 }
    }

    /// A unit's task or worker is done with it.
    pub fn finish(&mut self, unit: &UnitRef) -> Finish {
        match self.held.remove(unit) {
            Some(h) if !h.discard => Finish::Deliver,
            _ => Finish::Drop,
        }
    }

    /// The gateway no longer needs `unit`.
    pub fn cancel(&mut self, unit: &UnitRef) -> Cancelled {
        let Some(h) = self.held.get_mut(unit) else {
            return Cancelled::NotHeld;
        };
        if h.cell.try_abandon() {
            self.held.remove(unit);
            Cancelled::Dropped
        } else {
            h.discard = true;
            Cancelled::Discarding
        }
    }

    /// Shutdown, first step: gives up every unit that has not started. Returns
    /// them (to hand back), in a stable order.
    pub fn abandon_unstarted(&mut self) -> Vec<UnitRef> {
        let mut out: Vec<UnitRef> = self
            .held
            .iter()
            .filter(|(_, h)| h.cell.try_abandon())
            .map(|(u, _)| *u)
            .collect();
        for u in &out {
            self.held.remove(u);
        }
        out.sort();
        out
    }

    /// Shutdown, after the grace period: lets go of everything still held. Returns
    /// the units to hand back (unstarted ones and running ones the gateway still
    /// wants), in a stable order. Results that arrive later are dropped.
    pub fn abandon_all(&mut self) -> Vec<UnitRef> {
        let mut out: Vec<UnitRef> = self
            .held
            .drain()
            .filter(|(_, h)| {
                // Make sure an unstarted unit never starts; running ones are let go.
                h.cell.try_abandon();
                !h.discard
            })
            .map(|(u, _)| u)
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_proto::Hash32;
    use lode_proto::wire::{UnitInput, UnitLimits};

    fn unit(i: u32) -> UnitRef {
        UnitRef {
            job: Hash32::sha256(b"job"),
            unit: i,
        }
    }

    fn asg(i: u32) -> Assignment {
        Assignment {
            unit: unit(i),
            module: Hash32::sha256(b"m"),
            input: UnitInput::default(),
            limits: UnitLimits::default(),
            deadline_ms: 0,
        }
    }

    #[test]
    fn cell_start_and_abandon_are_exclusive() {
        let c = UnitCell::default();
        assert!(c.try_start());
        assert!(!c.try_abandon());
        assert!(c.is_running());
        let c = UnitCell::default();
        assert!(c.try_abandon());
        assert!(!c.try_start());
        assert!(c.is_abandoned());
    }

    #[test]
    fn admits_up_to_the_room_and_ignores_duplicates() {
        let mut t = Tracker::new(2);
        assert_eq!(t.free(), 2);
        let room = t.room_for(0, true);
        assert_eq!(room, 2);
        let a = t.admit(vec![asg(1), asg(2), asg(3)], room);
        assert_eq!(a.run.len(), 2);
        assert_eq!(a.hand_back, vec![unit(3)]);
        assert_eq!(t.free(), 0);
        let b = t.admit(vec![asg(1)], t.room_for(0, true));
        assert_eq!(b.duplicates, vec![unit(1)]);
        assert!(b.run.is_empty() && b.hand_back.is_empty());
        assert_eq!(t.finish(&unit(1)), Finish::Deliver);
        assert_eq!(t.free(), 1);
        assert_eq!(t.finish(&unit(1)), Finish::Drop, "only once");
        // Shutting down: nothing new is taken, whatever was asked for.
        assert_eq!(t.room_for(5, false), 0);
        let c = t.admit(vec![asg(4)], t.room_for(5, false));
        assert_eq!(c.hand_back, vec![unit(4)]);
        assert_eq!(t.held(), 1);
        // Capacity can shrink below what is held: no room until units finish...
        t.set_capacity(3);
        assert_eq!(t.admit(vec![asg(5), asg(6)], t.free()).run.len(), 2);
        t.set_capacity(1);
        assert_eq!(t.free(), 0);
        assert_eq!(
            t.admit(vec![asg(7)], t.room_for(0, true)).hand_back,
            vec![unit(7)]
        );
        // ...but what a poll asked for before it shrank is still taken.
        let d = t.admit(vec![asg(8), asg(9)], t.room_for(1, true));
        assert_eq!(d.run.len(), 1);
        assert_eq!(d.hand_back, vec![unit(9)]);
        assert_eq!(t.held(), 4);
    }

    #[test]
    fn cancel_unstarted_running_and_unknown() {
        let mut t = Tracker::new(4);
        let a = t.admit(vec![asg(1), asg(2)], 4);
        // Unit 2 starts; unit 1 is still being prepared.
        assert!(a.run[1].1.try_start());
        assert_eq!(t.cancel(&unit(1)), Cancelled::Dropped);
        assert!(
            a.run[0].1.is_abandoned(),
            "the preparing task will not start it"
        );
        assert_eq!(t.cancel(&unit(2)), Cancelled::Discarding);
        assert_eq!(t.held(), 1, "a running unit keeps its slot");
        assert_eq!(
            t.finish(&unit(2)),
            Finish::Drop,
            "result of a cancelled unit"
        );
        assert_eq!(t.cancel(&unit(9)), Cancelled::NotHeld);
        assert!(t.is_idle());
    }

    #[test]
    fn shutdown_hands_back_unstarted_then_everything_left() {
        let mut t = Tracker::new(8);
        let a = t.admit((1..=5).map(asg).collect(), 8);
        // 1 and 2 run; 3 is cancelled while running; 4 and 5 never started.
        assert!(a.run[0].1.try_start());
        assert!(a.run[1].1.try_start());
        assert!(a.run[2].1.try_start());
        t.cancel(&unit(3));
        assert_eq!(t.abandon_unstarted(), vec![unit(4), unit(5)]);
        assert!(!a.run[3].1.try_start(), "abandoned units never start");
        assert_eq!(t.held(), 3);
        // Unit 1 finishes within the grace period.
        assert_eq!(t.finish(&unit(1)), Finish::Deliver);
        // Grace over: 2 is handed back, 3 (cancelled) is not.
        assert_eq!(t.abandon_all(), vec![unit(2)]);
        assert!(t.is_idle());
        assert_eq!(t.finish(&unit(2)), Finish::Drop, "too late");
    }
}
