//! Finished units waiting to be told to the gateway, batched into polls.
//!
//! Invariants:
//! * a report or hand-back leaves the outbox only inside a [`Batch`]; a batch whose
//!   poll failed goes back to the *front* with [`Outbox::restore`], so nothing is lost
//!   and order is kept;
//! * a batch holds at most `max_reports` reports and at most `max_bytes` of report
//!   payload, but always at least one report when any is waiting (a single report
//!   larger than `max_bytes` still goes out, alone);
//! * a unit the gateway cancelled is dropped from the outbox ("report nothing").

use crate::outcome::outcome_size;
use lode_proto::wire::{UnitRef, UnitReport};
use std::collections::VecDeque;

/// What one poll carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub reports: Vec<UnitReport>,
    pub handed_back: Vec<UnitRef>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.reports.is_empty() && self.handed_back.is_empty()
    }
}

/// Pending reports and hand-backs.
#[derive(Debug, Default)]
pub struct Outbox {
    reports: VecDeque<UnitReport>,
    handed_back: VecDeque<UnitRef>,
}

impl Outbox {
    pub fn push_report(&mut self, r: UnitReport) {
        self.reports.push_back(r);
    }

    pub fn push_hand_back(&mut self, u: UnitRef) {
        if !self.handed_back.contains(&u) {
            self.handed_back.push_back(u);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.reports.is_empty() && self.handed_back.is_empty()
    }

    pub fn pending_reports(&self) -> usize {
        self.reports.len()
    }

    pub fn pending_hand_backs(&self) -> usize {
        self.handed_back.len()
    }

    /// Takes the next batch (see the module invariants). Hand-backs are small and
    /// all go out at once.
    pub fn take(&mut self, max_reports: usize, max_bytes: usize) -> Batch {
        let mut batch = Batch {
            reports: Vec::new(),
            handed_back: self.handed_back.drain(..).collect(),
        };
        let mut bytes = 0usize;
        while let Some(next) = self.reports.front() {
            let size = outcome_size(&next.outcome);
            if batch.reports.len() >= max_reports.max(1)
                || (!batch.reports.is_empty() && bytes.saturating_add(size) > max_bytes)
            {
                break;
            }
            bytes = bytes.saturating_add(size);
            if let Some(r) = self.reports.pop_front() {
                batch.reports.push(r);
            }
        }
        batch
    }

    /// Puts a batch whose poll failed back in front, in its original order.
    pub fn restore(&mut self, batch: Batch) {
        for r in batch.reports.into_iter().rev() {
            self.reports.push_front(r);
        }
        for u in batch.handed_back.into_iter().rev() {
            if !self.handed_back.contains(&u) {
                self.handed_back.push_front(u);
            }
        }
    }

    /// Forgets everything about a unit the gateway no longer wants.
    pub fn cancel(&mut self, unit: &UnitRef) {
        self.reports.retain(|r| r.unit != *unit);
        self.handed_back.retain(|u| u != unit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_proto::Hash32;
    use lode_proto::wire::UnitOutcome;

    fn unit(i: u32) -> UnitRef {
        UnitRef {
            job: Hash32::sha256(b"j"),
            unit: i,
        }
    }

    fn report(i: u32, out: usize) -> UnitReport {
        UnitReport {
            unit: unit(i),
            outcome: UnitOutcome::Completed {
                exit_code: 0,
                fuel_used: 1,
                stdout: vec![b'x'; out],
            },
            elapsed_ms: 1,
            claim: None,
        }
    }

    #[test]
    fn batches_by_count_and_bytes_and_keeps_order() {
        let mut o = Outbox::default();
        for i in 0..10 {
            o.push_report(report(i, 1000));
        }
        o.push_hand_back(unit(100));
        o.push_hand_back(unit(100));
        let b = o.take(4, usize::MAX);
        assert_eq!(b.reports.len(), 4);
        assert_eq!(b.handed_back, vec![unit(100)], "deduplicated");
        assert_eq!(b.reports[0].unit, unit(0));
        // ~1096 bytes each: 3 fit under 3500.
        let b2 = o.take(100, 3500);
        assert_eq!(
            b2.reports.iter().map(|r| r.unit.unit).collect::<Vec<_>>(),
            vec![4, 5, 6]
        );
        assert!(b2.handed_back.is_empty());
        // A failed poll puts its batch back in front.
        o.restore(b2);
        o.restore(b);
        let all = o.take(100, usize::MAX);
        assert_eq!(
            all.reports.iter().map(|r| r.unit.unit).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(all.handed_back, vec![unit(100)]);
        assert!(o.is_empty());
    }

    #[test]
    fn an_oversized_report_still_goes_alone() {
        let mut o = Outbox::default();
        o.push_report(report(0, 10_000));
        o.push_report(report(1, 10));
        let b = o.take(10, 100);
        assert_eq!(b.reports.len(), 1);
        assert_eq!(o.pending_reports(), 1);
        assert!(o.take(0, 0).reports.len() == 1, "max_reports 0 means 1");
    }

    #[test]
    fn cancel_drops_pending_reports_and_hand_backs() {
        let mut o = Outbox::default();
        o.push_report(report(1, 1));
        o.push_report(report(2, 1));
        o.push_hand_back(unit(1));
        o.cancel(&unit(1));
        let b = o.take(10, usize::MAX);
        assert_eq!(b.reports.len(), 1);
        assert_eq!(b.reports[0].unit, unit(2));
        assert!(b.handed_back.is_empty());
        assert!(Batch::default().is_empty());
    }
}
