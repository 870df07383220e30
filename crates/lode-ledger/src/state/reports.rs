//! Report credits: the ledger side of browser nodes' scam/phishing reports.
//!
//! A gateway aggregates signed reports with k-anonymity (`lode-gateway`'s
//! `data` module) and, when a domain is confirmed, writes one
//! [`ReportCredit`] per Sybil group that reported it. Here a credit is checked
//! and counted like a work receipt's weight: `amount × weight(report)` joins the
//! node's epoch weight, so it is paid at the epoch close by the same pro-rata
//! rule, multiplier and penalties as compute. Invariants:
//!
//! * a (domain, node) pair is credited at most once, ever (`report_credits`);
//! * the node is registered (its operator is paid) and the genesis weighs
//!   [`ContributionKind::Report`];
//! * `1 ≤ amount ≤ MAX_REPORT_CREDIT`, and the detail text is bounded.
//!
//! A report later judged benign is an ordinary `Penalty` (`BenignReport`) with
//! its evidence.

use super::{EntryCtx, EventKind, State, text_ok};
use crate::entry::{ContributionKind, MAX_REPORT_CREDIT, ReportCredit};
use crate::error::EntryError;
use lode_proto::{Did, Hash32};

impl State {
    /// Whether `node`'s report of `domain` (its SHA-256) was credited.
    pub fn is_report_credited(&self, domain: &Hash32, node: &Did) -> bool {
        self.report_credits
            .contains_key(&(*domain, *node.public_key_bytes()))
    }

    /// Number of report credits ever written.
    pub fn report_credits_len(&self) -> usize {
        self.report_credits.len()
    }

    pub(super) fn apply_report_credit(
        &mut self,
        r: &ReportCredit,
        ctx: &EntryCtx,
    ) -> Result<(), EntryError> {
        text_ok("detail", &r.detail)?;
        if r.amount == 0 || r.amount > MAX_REPORT_CREDIT {
            return Err(EntryError::ReportAmount(r.amount));
        }
        let mut node = self.node_record(&r.node)?;
        let (w, node_work, epoch_weight) =
            self.weigh(&r.node, ContributionKind::Report, r.amount)?;
        let key = (r.domain, *r.node.public_key_bytes());
        if self.report_credits.contains_key(&key) {
            return Err(EntryError::ReportAlreadyCredited {
                domain: r.domain,
                node: r.node,
            });
        }
        // All checks passed; mutate.
        self.report_credits.insert(key, ctx.height);
        if w > 0 {
            self.work.insert(r.node, node_work);
        }
        self.totals.epoch_weight = epoch_weight;
        node.receipts += 1;
        let operator = node.operator;
        self.nodes.insert(r.node, node);
        let kind = EventKind::ReportCredited {
            node: r.node,
            domain: r.domain,
            amount: r.amount,
            weight: w,
            detail: r.detail.clone(),
        };
        self.push_node_event(ctx, r.node, operator, kind);
        Ok(())
    }
}
