//! The report book: browser nodes' scam/phishing reports, aggregated with
//! k-anonymity into the community threat feed. Pure (no IO, no clock: the caller
//! passes the time and the classifier), so every rule below is unit-tested here
//! and the HTTP side (`data_api`) only validates, persists and publishes.
//!
//! ## Life of a domain
//! ```text
//!   pending ──(≥ k groups within the window)──▶ corroborated ──(classifier ≥ threshold,
//!      │                                              │          or ≥ 2k groups)──▶ confirmed
//!      └──(window passes below k)──▶ expired          └───────────(≥ k groups say "mistake",
//!                                                                   classifier below) ──▶ rejected
//! ```
//! * **Groups.** Reports count per Sybil group, not per key: two reporters are
//!   one group when they share an IP group (the compute rule: an IPv4 address or
//!   an IPv6 /64, each loopback key apart on a devnet) or an operator. The count
//!   is the number of connected components of that relation.
//! * **k-anonymity.** A pending domain is never published or revealed to anyone
//!   but its own reporters (and then only its state, not who else reported it).
//!   Its reports expire `window_ms` after the newest one.
//! * **Confirmation** (what pays): corroborated, and either the community
//!   classifier (`lode-guard`'s published model) scores it at or above its
//!   threshold, or `2k` groups reported it. The first reporter of each group
//!   present at confirmation is credited `report_units`
//!   ([`lode_ledger::entry::ReportCredit`]); later reporters of a confirmed
//!   domain learn it was already known, and earn nothing.
//! * **Benign.** A corroborated or confirmed domain that `k` groups report as a
//!   mistake while the classifier scores it below the threshold is rejected: it
//!   leaves the feed and every harmful reporter gets a `BenignReport` penalty
//!   with the evidence (groups, score).

use lode_proto::Did;
use lode_proto::Hash32;
use lode_proto::data::{ReportCategory, ReportSource, ReportVerdict, domain_hash};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Parameters of the book (`lode gateway --data-k`, `--data-window-ms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataConfig {
    /// Distinct Sybil groups needed before a domain is published.
    pub k: u32,
    /// How long reports of a pending domain count (after the newest one).
    pub window_ms: u64,
    /// Report units credited per confirmed (domain, group).
    pub report_units: u64,
    /// Reports one node may send per hour.
    pub per_node_per_hour: u32,
    /// Reports one Sybil group may send per hour.
    pub per_group_per_hour: u32,
    /// Domains kept at once (pending and decided); new domains are refused beyond.
    pub max_domains: usize,
    /// Reports kept per domain; later ones still count as "seen" but are not stored.
    pub max_reports_per_domain: usize,
    /// Reports one node may have on record at once.
    pub max_reports_per_node: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            k: 5,
            window_ms: 7 * 24 * 3_600_000,
            report_units: 1,
            per_node_per_hour: 60,
            per_group_per_hour: 240,
            max_domains: 200_000,
            max_reports_per_domain: 256,
            max_reports_per_node: 10_000,
        }
    }
}

/// One stored report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRec {
    pub node: Did,
    /// The reporter's IP group (raw `lode_sched::IpGroup` value).
    pub group: u128,
    pub operator: Did,
    pub ts_ms: u64,
    pub category: ReportCategory,
    pub source: ReportSource,
    pub verdict: ReportVerdict,
    pub url: Option<String>,
}

/// Where a domain stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DomainStatus {
    Pending,
    Corroborated { at_ms: u64 },
    Confirmed { at_ms: u64, rule: String },
    Rejected { at_ms: u64, reason: String },
}

impl DomainStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Corroborated { .. } => "corroborated",
            Self::Confirmed { .. } => "confirmed",
            Self::Rejected { .. } => "rejected",
        }
    }

    /// Whether the domain is in the published feed.
    pub fn listed(&self) -> bool {
        matches!(self, Self::Corroborated { .. } | Self::Confirmed { .. })
    }
}

/// A domain's record, persisted whole (`data_domains` table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRec {
    pub domain: String,
    pub first_ms: u64,
    pub status: DomainStatus,
    pub reports: Vec<ReportRec>,
    /// Nodes credited at confirmation (one per group).
    pub credited: Vec<Did>,
    /// Nodes penalized when the domain was judged benign.
    pub penalized: Vec<Did>,
    /// Classifier score (parts per million) when last evaluated.
    pub score_ppm: u32,
}

/// What the classifier says of a domain: score in [0, 1] and its threshold.
pub trait Classifier {
    fn score(&self, domain: &str, urls: &[&str]) -> f64;
    fn threshold(&self) -> f64;
}

/// A change the caller turns into ledger entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Credit these nodes (one per group) for a confirmed domain.
    Credit {
        domain: String,
        nodes: Vec<Did>,
        groups: u32,
        rule: String,
    },
    /// Penalize these harmful reporters: the domain was judged benign.
    Penalize {
        domain: String,
        nodes: Vec<Did>,
        evidence: String,
    },
}

/// Why a report was refused by the book.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    #[error("this node sent {0} reports in the last hour, the limit; retry later")]
    NodeRate(u32),
    #[error(
        "this network (IP group or operator) sent {0} reports in the last hour, the limit; retry later"
    )]
    GroupRate(u32),
    #[error("the gateway tracks {0} domains, its limit; retry later")]
    Full(usize),
    #[error("this node has {0} reports on record, its limit")]
    NodeFull(usize),
}

/// The answer to one accepted report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// The node had already reported this domain with this verdict: nothing changed.
    pub duplicate: bool,
    pub status: DomainStatus,
    pub changes: Vec<Change>,
}

/// A node's own report, as `POST /v1/data/mine` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MyReport {
    pub domain: String,
    pub reported_ms: u64,
    pub verdict: ReportVerdict,
    pub category: ReportCategory,
    pub source: ReportSource,
    pub status: &'static str,
    /// Why, for a rejected domain; the rule, for a confirmed one.
    pub reason: Option<String>,
    pub credited: bool,
    pub penalized: bool,
}

/// The book.
#[derive(Debug, Default)]
pub struct Book {
    cfg: DataConfig,
    domains: BTreeMap<String, DomainRec>,
    /// Listed domains by hash (the feed).
    listed: BTreeMap<Hash32, String>,
    /// Domains each node reported.
    by_node: HashMap<Did, BTreeSet<String>>,
    /// Report times in the last hour, per node and per IP group / operator.
    node_rate: HashMap<Did, Vec<u64>>,
    group_rate: HashMap<u128, Vec<u64>>,
    op_rate: HashMap<Did, Vec<u64>>,
    /// Bumped on every feed change.
    feed_version: u64,
}

const HOUR_MS: u64 = 3_600_000;

impl Book {
    pub fn new(cfg: DataConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    pub fn config(&self) -> &DataConfig {
        &self.cfg
    }

    /// Sets k (governance may change it): later publishing decisions use it;
    /// decisions already made stand.
    pub fn set_k(&mut self, k: u32) {
        self.cfg.k = k.max(1);
    }

    /// Rebuilds the book from stored records (at start). A record whose status is
    /// inconsistent with the rules is kept as it is: decisions are never re-made.
    pub fn load(&mut self, recs: impl IntoIterator<Item = DomainRec>) {
        for r in recs {
            self.index(&r);
            self.domains.insert(r.domain.clone(), r);
        }
        self.feed_version += 1;
    }

    fn index(&mut self, r: &DomainRec) {
        for rep in &r.reports {
            self.by_node
                .entry(rep.node)
                .or_default()
                .insert(r.domain.clone());
        }
        if r.status.listed() {
            self.listed.insert(domain_hash(&r.domain), r.domain.clone());
        } else {
            self.listed.remove(&domain_hash(&r.domain));
        }
    }

    /// Puts back a domain's earlier record (`None`: it did not exist), for a
    /// write that could not be made durable.
    pub fn restore(&mut self, domain: &str, old: Option<DomainRec>) {
        if let Some(cur) = self.domains.remove(domain) {
            for rep in &cur.reports {
                if let Some(s) = self.by_node.get_mut(&rep.node) {
                    s.remove(domain);
                }
            }
            self.listed.remove(&domain_hash(domain));
        }
        if let Some(r) = old {
            self.index(&r);
            self.domains.insert(domain.to_string(), r);
        }
        self.feed_version += 1;
    }

    pub fn get(&self, domain: &str) -> Option<&DomainRec> {
        self.domains.get(domain)
    }

    /// Checks the rate limits for one more report (nothing is recorded).
    pub fn check_rate(
        &self,
        node: &Did,
        group: u128,
        operator: &Did,
        now: u64,
    ) -> Result<(), BookError> {
        let recent = |v: Option<&Vec<u64>>| {
            v.map_or(0, |v| {
                v.iter()
                    .filter(|t| now.saturating_sub(**t) < HOUR_MS)
                    .count()
            }) as u32
        };
        let n = recent(self.node_rate.get(node));
        if n >= self.cfg.per_node_per_hour {
            return Err(BookError::NodeRate(n));
        }
        let g = recent(self.group_rate.get(&group)).max(recent(self.op_rate.get(operator)));
        if g >= self.cfg.per_group_per_hour {
            return Err(BookError::GroupRate(g));
        }
        if self.by_node.get(node).map_or(0, BTreeSet::len) >= self.cfg.max_reports_per_node {
            return Err(BookError::NodeFull(self.cfg.max_reports_per_node));
        }
        Ok(())
    }

    fn note_rate(&mut self, node: Did, group: u128, operator: Did, now: u64) {
        for v in [
            self.node_rate.entry(node).or_default(),
            self.group_rate.entry(group).or_default(),
            self.op_rate.entry(operator).or_default(),
        ] {
            v.retain(|t| now.saturating_sub(*t) < HOUR_MS);
            v.push(now);
        }
    }

    /// Adds a report (already validated and signature-checked) and applies the
    /// rules. On error nothing changed.
    pub fn add(
        &mut self,
        domain: &str,
        rep: ReportRec,
        now: u64,
        classifier: &dyn Classifier,
    ) -> Result<Added, BookError> {
        self.check_rate(&rep.node, rep.group, &rep.operator, now)?;
        if !self.domains.contains_key(domain) && self.domains.len() >= self.cfg.max_domains {
            return Err(BookError::Full(self.cfg.max_domains));
        }
        self.note_rate(rep.node, rep.group, rep.operator, now);
        let rec = self
            .domains
            .entry(domain.to_string())
            .or_insert_with(|| DomainRec {
                domain: domain.to_string(),
                first_ms: now,
                status: DomainStatus::Pending,
                reports: Vec::new(),
                credited: Vec::new(),
                penalized: Vec::new(),
                score_ppm: 0,
            });
        if rec
            .reports
            .iter()
            .any(|r| r.node == rep.node && r.verdict == rep.verdict)
        {
            return Ok(Added {
                duplicate: true,
                status: rec.status.clone(),
                changes: Vec::new(),
            });
        }
        let node = rep.node;
        if rec.reports.len() < self.cfg.max_reports_per_domain {
            rec.reports.push(rep);
        }
        self.by_node
            .entry(node)
            .or_default()
            .insert(domain.to_string());
        let changes = self.evaluate(domain, now, classifier);
        let status = self
            .domains
            .get(domain)
            .map_or(DomainStatus::Pending, |r| r.status.clone());
        Ok(Added {
            duplicate: false,
            status,
            changes,
        })
    }

    /// Applies the rules to one domain after a change.
    fn evaluate(&mut self, domain: &str, now: u64, classifier: &dyn Classifier) -> Vec<Change> {
        let k = self.cfg.k.max(1);
        let window = self.cfg.window_ms;
        let Some(rec) = self.domains.get_mut(domain) else {
            return Vec::new();
        };
        let mut changes = Vec::new();
        let harmful: Vec<&ReportRec> = rec
            .reports
            .iter()
            .filter(|r| r.verdict == ReportVerdict::Harmful)
            .filter(|r| {
                // Pending: only reports inside the window count.
                rec.status != DomainStatus::Pending || now.saturating_sub(r.ts_ms) <= window
            })
            .collect();
        let (groups, firsts) = components(&harmful);
        let (m, _) = components(
            &rec.reports
                .iter()
                .filter(|r| r.verdict == ReportVerdict::Mistake)
                .collect::<Vec<_>>(),
        );
        let urls: Vec<&str> = rec
            .reports
            .iter()
            .filter_map(|r| r.url.as_deref())
            .collect();
        // The classifier is asked only once a decision is at stake.
        let s = if groups >= k || rec.status != DomainStatus::Pending {
            classifier.score(domain, &urls).clamp(0.0, 1.0)
        } else {
            0.0
        };
        rec.score_ppm = (s * 1e6).round() as u32;
        if rec.status == DomainStatus::Pending && groups >= k {
            rec.status = DomainStatus::Corroborated { at_ms: now };
        }
        if let DomainStatus::Corroborated { .. } = rec.status {
            let rule = if s >= classifier.threshold() {
                Some(format!(
                    "{groups} groups reported it (k = {k}) and the classifier scores it {s:.3} (threshold {:.3})",
                    classifier.threshold()
                ))
            } else if groups >= 2 * k {
                Some(format!("{groups} groups reported it (2k = {})", 2 * k))
            } else {
                None
            };
            if let Some(rule) = rule {
                rec.status = DomainStatus::Confirmed {
                    at_ms: now,
                    rule: rule.clone(),
                };
                rec.credited = firsts.clone();
                changes.push(Change::Credit {
                    domain: domain.to_string(),
                    nodes: firsts,
                    groups,
                    rule,
                });
            }
        }
        if rec.status.listed() && m >= k {
            {
                if s < classifier.threshold() {
                    let evidence = format!(
                        "{domain} judged benign: {m} groups reported it as a mistake (k = {k}) and the classifier scores it {s:.3}, below its threshold {:.3}",
                        classifier.threshold()
                    );
                    let mut nodes: Vec<Did> = rec
                        .reports
                        .iter()
                        .filter(|r| r.verdict == ReportVerdict::Harmful)
                        .map(|r| r.node)
                        .collect();
                    nodes.sort();
                    nodes.dedup();
                    rec.status = DomainStatus::Rejected {
                        at_ms: now,
                        reason: evidence.clone(),
                    };
                    rec.penalized = nodes.clone();
                    changes.push(Change::Penalize {
                        domain: domain.to_string(),
                        nodes,
                        evidence,
                    });
                }
            }
        }
        let rec = rec.clone();
        let was_listed = self.listed.contains_key(&domain_hash(domain));
        self.index(&rec);
        if was_listed != rec.status.listed() {
            self.feed_version += 1;
        }
        changes
    }

    /// Drops pending domains whose newest report is older than the window.
    /// Returns the dropped domains (the caller deletes their records).
    pub fn expire(&mut self, now: u64) -> Vec<String> {
        let window = self.cfg.window_ms;
        let gone: Vec<String> = self
            .domains
            .values()
            .filter(|r| r.status == DomainStatus::Pending)
            .filter(|r| {
                let newest = r
                    .reports
                    .iter()
                    .map(|x| x.ts_ms)
                    .max()
                    .unwrap_or(r.first_ms);
                now.saturating_sub(newest) > window
            })
            .map(|r| r.domain.clone())
            .collect();
        for d in &gone {
            if let Some(r) = self.domains.remove(d) {
                for rep in &r.reports {
                    if let Some(s) = self.by_node.get_mut(&rep.node) {
                        s.remove(d);
                        if s.is_empty() {
                            self.by_node.remove(&rep.node);
                        }
                    }
                }
            }
        }
        gone
    }

    /// The signer's own reports, newest first (at most `limit`).
    pub fn mine(&self, node: &Did, limit: usize) -> Vec<MyReport> {
        let mut out: Vec<MyReport> = self
            .by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|d| self.domains.get(d))
            .flat_map(|rec| {
                rec.reports
                    .iter()
                    .filter(|r| r.node == *node)
                    .map(move |r| {
                        let reason = match &rec.status {
                            DomainStatus::Rejected { reason, .. } => Some(reason.clone()),
                            DomainStatus::Confirmed { rule, .. } => Some(rule.clone()),
                            DomainStatus::Pending => {
                                Some(format!("fewer than k = {} groups so far", self.cfg.k))
                            }
                            DomainStatus::Corroborated { .. } => {
                                Some("listed; awaiting confirmation".to_string())
                            }
                        };
                        MyReport {
                            domain: rec.domain.clone(),
                            reported_ms: r.ts_ms,
                            verdict: r.verdict,
                            category: r.category,
                            source: r.source,
                            status: rec.status.as_str(),
                            reason,
                            credited: r.verdict == ReportVerdict::Harmful
                                && rec.credited.contains(node),
                            penalized: r.verdict == ReportVerdict::Harmful
                                && rec.penalized.contains(node),
                        }
                    })
            })
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.reported_ms));
        out.truncate(limit);
        out
    }

    /// Listed domains by hash.
    pub fn listed(&self) -> &BTreeMap<Hash32, String> {
        &self.listed
    }

    pub fn feed_version(&self) -> u64 {
        self.feed_version
    }

    /// Counts for the dashboard: (pending, corroborated, confirmed, rejected).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let mut c = (0, 0, 0, 0);
        for r in self.domains.values() {
            match r.status {
                DomainStatus::Pending => c.0 += 1,
                DomainStatus::Corroborated { .. } => c.1 += 1,
                DomainStatus::Confirmed { .. } => c.2 += 1,
                DomainStatus::Rejected { .. } => c.3 += 1,
            }
        }
        c
    }

    /// Reports per UTC day (days since the Unix epoch), over every stored report.
    pub fn per_day(&self) -> BTreeMap<u64, u64> {
        let mut m = BTreeMap::new();
        for r in self.domains.values().flat_map(|d| &d.reports) {
            *m.entry(r.ts_ms / 86_400_000).or_insert(0) += 1;
        }
        m
    }

    /// Decided domains for training the classifier: (confirmed, rejected), sorted.
    /// Both passed k-anonymity (k groups reported them), so they may be published.
    pub fn labels(&self) -> (Vec<&str>, Vec<&str>) {
        let mut confirmed = Vec::new();
        let mut rejected = Vec::new();
        for r in self.domains.values() {
            match r.status {
                DomainStatus::Confirmed { .. } => confirmed.push(r.domain.as_str()),
                DomainStatus::Rejected { .. } => rejected.push(r.domain.as_str()),
                _ => {}
            }
        }
        (confirmed, rejected)
    }

    /// Nodes by confirmed (credited) reports, most first.
    pub fn top_contributors(&self, limit: usize) -> Vec<(Did, u64)> {
        let mut m: HashMap<Did, u64> = HashMap::new();
        for r in self.domains.values() {
            for n in &r.credited {
                *m.entry(*n).or_insert(0) += 1;
            }
        }
        let mut v: Vec<(Did, u64)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(limit);
        v
    }
}

/// Connected components of reporters that share an IP group or an operator:
/// (count, the earliest reporter's node of each component, sorted).
fn components(reports: &[&ReportRec]) -> (u32, Vec<Did>) {
    let n = reports.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    let mut by_group: HashMap<u128, usize> = HashMap::new();
    let mut by_op: HashMap<Did, usize> = HashMap::new();
    let mut by_node: HashMap<Did, usize> = HashMap::new();
    for (i, r) in reports.iter().enumerate() {
        for j in [
            by_group.get(&r.group).copied(),
            by_op.get(&r.operator).copied(),
            by_node.get(&r.node).copied(),
        ]
        .into_iter()
        .flatten()
        {
            let (a, b) = (find(&mut parent, i), find(&mut parent, j));
            if a != b {
                parent[a] = b;
            }
        }
        by_group.entry(r.group).or_insert(i);
        by_op.entry(r.operator).or_insert(i);
        by_node.entry(r.node).or_insert(i);
    }
    // The earliest report of each component.
    let mut first: BTreeMap<usize, (u64, Did)> = BTreeMap::new();
    for (i, r) in reports.iter().enumerate() {
        let root = find(&mut parent, i);
        let e = first.entry(root).or_insert((r.ts_ms, r.node));
        if (r.ts_ms, r.node) < *e {
            *e = (r.ts_ms, r.node);
        }
    }
    let mut nodes: Vec<Did> = first.values().map(|(_, n)| *n).collect();
    nodes.sort();
    nodes.dedup();
    (first.len() as u32, nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_proto::Keypair;

    struct Fixed(f64);
    impl Classifier for Fixed {
        fn score(&self, _: &str, _: &[&str]) -> f64 {
            self.0
        }
        fn threshold(&self) -> f64 {
            0.5
        }
    }

    fn did(i: u8) -> Did {
        Keypair::from_secret_bytes(&[i; 32]).did()
    }

    fn rep(node: u8, group: u128, ts: u64, verdict: ReportVerdict) -> ReportRec {
        ReportRec {
            node: did(node),
            group,
            operator: did(node),
            ts_ms: ts,
            category: ReportCategory::Phishing,
            source: ReportSource::Manual,
            verdict,
            url: None,
        }
    }

    fn book(k: u32) -> Book {
        Book::new(DataConfig {
            k,
            window_ms: 1_000,
            ..DataConfig::default()
        })
    }

    #[test]
    fn nothing_below_k_is_listed_and_one_group_counts_once() {
        let mut b = book(3);
        let low = Fixed(0.1);
        // Five reporters behind one IP group: one group.
        for i in 0..5 {
            let a = b
                .add("bad.top", rep(i, 7, 10, ReportVerdict::Harmful), 10, &low)
                .unwrap();
            assert_eq!(a.status, DomainStatus::Pending);
        }
        assert!(b.listed().is_empty());
        // Two more groups: corroborated and listed, not yet confirmed (score low).
        b.add("bad.top", rep(10, 8, 11, ReportVerdict::Harmful), 11, &low)
            .unwrap();
        assert!(b.listed().is_empty());
        let a = b
            .add("bad.top", rep(11, 9, 12, ReportVerdict::Harmful), 12, &low)
            .unwrap();
        assert!(matches!(a.status, DomainStatus::Corroborated { .. }));
        assert!(a.changes.is_empty());
        assert_eq!(b.listed().len(), 1);
        // A shared operator also joins groups.
        let mut r = rep(12, 100, 13, ReportVerdict::Harmful);
        r.operator = did(11);
        b.add("bad.top", r, 13, &low).unwrap();
        assert_eq!(b.get("bad.top").unwrap().status.as_str(), "corroborated");
    }

    #[test]
    fn classifier_or_2k_confirms_and_credits_one_per_group() {
        let mut b = book(2);
        let high = Fixed(0.9);
        b.add("a.top", rep(1, 1, 5, ReportVerdict::Harmful), 5, &high)
            .unwrap();
        b.add("a.top", rep(2, 1, 6, ReportVerdict::Harmful), 6, &high)
            .unwrap();
        let a = b
            .add("a.top", rep(3, 2, 7, ReportVerdict::Harmful), 7, &high)
            .unwrap();
        assert!(matches!(a.status, DomainStatus::Confirmed { .. }));
        let [Change::Credit { nodes, groups, .. }] = &a.changes[..] else {
            panic!("{:?}", a.changes)
        };
        assert_eq!(*groups, 2);
        let mut want = vec![did(1), did(3)];
        want.sort();
        assert_eq!(nodes, &want);
        // A later reporter earns nothing.
        let a = b
            .add("a.top", rep(4, 3, 8, ReportVerdict::Harmful), 8, &high)
            .unwrap();
        assert!(a.changes.is_empty());
        let mine = b.mine(&did(4), 10);
        assert!(!mine[0].credited);
        assert!(b.mine(&did(1), 10)[0].credited);
        // 2k groups confirm without the classifier.
        let low = Fixed(0.0);
        for i in 0..4u8 {
            b.add(
                "b.top",
                rep(20 + i, 20 + u128::from(i), 9, ReportVerdict::Harmful),
                9,
                &low,
            )
            .unwrap();
        }
        assert_eq!(b.get("b.top").unwrap().status.as_str(), "confirmed");
    }

    #[test]
    fn mistakes_reject_a_benign_domain_and_penalize_reporters() {
        let mut b = book(2);
        let low = Fixed(0.2);
        b.add("ok.com", rep(1, 1, 1, ReportVerdict::Harmful), 1, &low)
            .unwrap();
        b.add("ok.com", rep(2, 2, 1, ReportVerdict::Harmful), 1, &low)
            .unwrap();
        assert!(b.get("ok.com").unwrap().status.listed());
        b.add("ok.com", rep(3, 3, 2, ReportVerdict::Mistake), 2, &low)
            .unwrap();
        let a = b
            .add("ok.com", rep(4, 4, 2, ReportVerdict::Mistake), 2, &low)
            .unwrap();
        let [
            Change::Penalize {
                nodes, evidence, ..
            },
        ] = &a.changes[..]
        else {
            panic!("{:?}", a.changes)
        };
        assert_eq!(nodes.len(), 2);
        assert!(evidence.contains("2 groups"), "{evidence}");
        assert!(b.listed().is_empty());
        assert!(b.mine(&did(1), 10)[0].penalized);
        // A confirmed domain the classifier still flags is not rejected by mistakes.
        let high = Fixed(0.9);
        b.add("bad.top", rep(1, 1, 3, ReportVerdict::Harmful), 3, &high)
            .unwrap();
        b.add("bad.top", rep(2, 2, 3, ReportVerdict::Harmful), 3, &high)
            .unwrap();
        b.add("bad.top", rep(3, 3, 4, ReportVerdict::Mistake), 4, &high)
            .unwrap();
        let a = b
            .add("bad.top", rep(4, 4, 4, ReportVerdict::Mistake), 4, &high)
            .unwrap();
        assert!(a.changes.is_empty());
        assert_eq!(b.get("bad.top").unwrap().status.as_str(), "confirmed");
    }

    #[test]
    fn window_expiry_duplicates_and_rates() {
        let mut b = book(2);
        let low = Fixed(0.0);
        b.add("x.top", rep(1, 1, 0, ReportVerdict::Harmful), 0, &low)
            .unwrap();
        // Outside the window the old report does not count.
        let a = b
            .add(
                "x.top",
                rep(2, 2, 5_000, ReportVerdict::Harmful),
                5_000,
                &low,
            )
            .unwrap();
        assert_eq!(a.status, DomainStatus::Pending);
        let a = b
            .add(
                "x.top",
                rep(2, 2, 5_001, ReportVerdict::Harmful),
                5_001,
                &low,
            )
            .unwrap();
        assert!(a.duplicate);
        assert_eq!(b.expire(5_500), Vec::<String>::new());
        assert_eq!(b.expire(7_000), vec!["x.top".to_string()]);
        assert!(b.mine(&did(2), 10).is_empty());
        // Per-node rate.
        let mut b = Book::new(DataConfig {
            per_node_per_hour: 2,
            ..DataConfig::default()
        });
        b.add("a.top", rep(1, 1, 0, ReportVerdict::Harmful), 0, &low)
            .unwrap();
        b.add("b.top", rep(1, 1, 0, ReportVerdict::Harmful), 0, &low)
            .unwrap();
        assert_eq!(
            b.add("c.top", rep(1, 1, 0, ReportVerdict::Harmful), 0, &low),
            Err(BookError::NodeRate(2))
        );
        assert!(b.get("c.top").is_none());
        b.add(
            "c.top",
            rep(1, 1, HOUR_MS, ReportVerdict::Harmful),
            HOUR_MS,
            &low,
        )
        .unwrap();
    }
}
