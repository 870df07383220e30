//! Prometheus text-format metrics (exposition format 0.0.4), from plain atomics.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Writes one metric family in Prometheus text format.
pub fn write_metric(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format() {
        let c = Counter::default();
        c.inc();
        c.add(2);
        let mut s = String::new();
        write_metric(
            &mut s,
            "lode_units_verified_total",
            "counter",
            "Units verified.",
            c.get(),
        );
        assert_eq!(
            s,
            "# HELP lode_units_verified_total Units verified.\n# TYPE lode_units_verified_total counter\nlode_units_verified_total 3\n"
        );
    }
}

/// The gateway's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    pub jobs_submitted: Counter,
    pub jobs_finished: Counter,
    pub units_submitted: Counter,
    pub units_assigned: Counter,
    pub units_verified: Counter,
    pub units_failed: Counter,
    pub results_received: Counter,
    pub leases_lost: Counter,
    pub flags_raised: Counter,
    pub results_rejected: Counter,
    /// Proven-fault slashes submitted after a referee run.
    pub slashes: Counter,
    pub blocks_sealed: Counter,
    /// Entries a validators' block made inapplicable (replicated chains).
    pub entries_dropped: Counter,
    /// Gateway batches sent to validators and refused by them.
    pub batches_refused: Counter,
    pub requests_rejected: Counter,
    pub nodes_online: Gauge,
    pub ledger_height: Gauge,
    /// Jobs set aside at start-up because their record could not be resumed.
    pub jobs_quarantined: Counter,
    /// Jobs read at the last start (open work only).
    pub recovery_jobs_loaded: Gauge,
    /// Unit outcomes read at the last start (those of open jobs only).
    pub recovery_outcomes_loaded: Gauge,
    /// Modules removed by the clean-up (unreferenced past their grace period).
    pub modules_collected: Counter,
    /// Connections closed at accept (per-address or total cap reached).
    pub connections_refused: Counter,
    /// Requests refused because the gateway's body-memory budget was in use.
    pub bodies_refused: Counter,
    /// Browser nodes' reports accepted (new ones; duplicates not counted).
    pub data_reports: Counter,
}

impl Metrics {
    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let c = "counter";
        let g = "gauge";
        write_metric(
            &mut s,
            "lode_jobs_submitted_total",
            c,
            "Jobs accepted.",
            self.jobs_submitted.get(),
        );
        write_metric(
            &mut s,
            "lode_jobs_quarantined_total",
            c,
            "Jobs set aside at start-up (record could not be resumed; escrow refunded).",
            self.jobs_quarantined.get(),
        );
        write_metric(
            &mut s,
            "lode_recovery_jobs_loaded",
            g,
            "Jobs read at the last start (open work only).",
            self.recovery_jobs_loaded.get(),
        );
        write_metric(
            &mut s,
            "lode_recovery_outcomes_loaded",
            g,
            "Unit outcomes read at the last start.",
            self.recovery_outcomes_loaded.get(),
        );
        write_metric(
            &mut s,
            "lode_connections_refused_total",
            c,
            "Connections closed at accept (per-address or total cap).",
            self.connections_refused.get(),
        );
        write_metric(
            &mut s,
            "lode_bodies_refused_total",
            c,
            "Requests refused while the request-body memory budget was in use.",
            self.bodies_refused.get(),
        );
        write_metric(
            &mut s,
            "lode_data_reports_total",
            c,
            "Scam/phishing reports accepted from browser nodes.",
            self.data_reports.get(),
        );
        write_metric(
            &mut s,
            "lode_modules_collected_total",
            c,
            "Unreferenced modules removed.",
            self.modules_collected.get(),
        );
        write_metric(
            &mut s,
            "lode_jobs_finished_total",
            c,
            "Jobs finished or cancelled and settled.",
            self.jobs_finished.get(),
        );
        write_metric(
            &mut s,
            "lode_units_submitted_total",
            c,
            "Work units accepted.",
            self.units_submitted.get(),
        );
        write_metric(
            &mut s,
            "lode_units_assigned_total",
            c,
            "Replicas handed to nodes.",
            self.units_assigned.get(),
        );
        write_metric(
            &mut s,
            "lode_units_verified_total",
            c,
            "Units whose result was accepted.",
            self.units_verified.get(),
        );
        write_metric(
            &mut s,
            "lode_units_failed_total",
            c,
            "Units that could not be verified.",
            self.units_failed.get(),
        );
        write_metric(
            &mut s,
            "lode_results_received_total",
            c,
            "Results reported by nodes.",
            self.results_received.get(),
        );
        write_metric(
            &mut s,
            "lode_leases_lost_total",
            c,
            "Replicas lost (expired, node gone, node error).",
            self.leases_lost.get(),
        );
        write_metric(
            &mut s,
            "lode_flags_raised_total",
            c,
            "Behaviour flags raised against nodes.",
            self.flags_raised.get(),
        );
        write_metric(
            &mut s,
            "lode_results_rejected_total",
            c,
            "Results that disagreed with the accepted one (never credited, penalized).",
            self.results_rejected.get(),
        );
        write_metric(
            &mut s,
            "lode_slashes_total",
            c,
            "Proven-fault slashes of nodes' stake submitted after a referee run.",
            self.slashes.get(),
        );
        write_metric(
            &mut s,
            "lode_ledger_blocks_sealed_total",
            c,
            "Ledger blocks sealed.",
            self.blocks_sealed.get(),
        );
        write_metric(
            &mut s,
            "lode_ledger_entries_dropped_total",
            c,
            "Entries dropped because a block decided by the validators made them inapplicable.",
            self.entries_dropped.get(),
        );
        write_metric(
            &mut s,
            "lode_ledger_batches_refused_total",
            c,
            "Gateway batches a validator refused.",
            self.batches_refused.get(),
        );
        write_metric(
            &mut s,
            "lode_requests_rejected_total",
            c,
            "Requests refused with an error.",
            self.requests_rejected.get(),
        );
        write_metric(
            &mut s,
            "lode_nodes_online",
            g,
            "Nodes with a live session.",
            self.nodes_online.get(),
        );
        write_metric(
            &mut s,
            "lode_ledger_height",
            g,
            "Height of the last sealed ledger block.",
            self.ledger_height.get(),
        );
        s
    }
}
