//! Consented data from browser nodes: scam and phishing reports.
//!
//! A browser node (the extension in `extension/`) signs each message below in an
//! [`crate::Envelope`], exactly as compute nodes sign theirs: the JS side builds
//! the same canonical (postcard) payload bytes and the same tagged Ed25519
//! signature (`extension/lode-sign.js`; `extension/test/sign.test.mjs` checks its
//! bytes against envelopes made here: `crates/lode-ledger/tests/js_fixture.rs`).
//!
//! What a report carries is the minimum: a **registrable domain** (eTLD+1,
//! lower-case ASCII, punycode for IDNs), a category, where the verdict came from,
//! and the full URL only when the user ticked it for that one report. Nothing
//! else about the browser or its history.

use crate::Message;
use crate::hash::Hash32;
use serde::{Deserialize, Serialize};

/// Longest registrable domain (a DNS name is at most 253 characters).
pub const MAX_DOMAIN_BYTES: usize = 253;
/// Longest full URL a report may carry (only with the user's tick).
pub const MAX_REPORT_URL_BYTES: usize = 2048;
/// Largest signed report envelope accepted over HTTP (JSON).
pub const MAX_REPORT_BODY_BYTES: usize = 8 * 1024;

/// What the reporter thinks the site is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportCategory {
    Phishing,
    Scam,
    Malware,
}

impl ReportCategory {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Phishing => "phishing",
            Self::Scam => "scam",
            Self::Malware => "malware",
        }
    }
}

/// Where the verdict came from. Variants are only ever appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportSource {
    /// The user pressed "report this site".
    Manual,
    /// The local classifier flagged the site while browsing (opt-in).
    Classifier,
    /// The community feed listed it (opt-in).
    CommunityList,
}

impl ReportSource {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Classifier => "classifier",
            Self::CommunityList => "community_list",
        }
    }
}

/// Harmful, or a false positive ("this is a mistake").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportVerdict {
    Harmful,
    Mistake,
}

/// One report of one site. Signed by the browser node's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataReport {
    /// The chain the reporter is paid on (a report for another chain is refused).
    pub chain: Hash32,
    /// Registrable domain (eTLD+1), lower case.
    pub domain: String,
    /// The full URL, only when the user chose to send it for this report.
    pub url: Option<String>,
    pub category: ReportCategory,
    pub source: ReportSource,
    pub verdict: ReportVerdict,
}

impl Message for DataReport {
    const KIND: &'static str = "lode/data/report/v1";
}

/// "I am online": the availability heartbeat of a browser node. Carries which
/// contribution categories are switched on (bit 0 manual reports, bit 1
/// classifier flags, bit 2 community-list matches), so operators can see what a
/// node offers; nothing about browsing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataHeartbeat {
    pub chain: Hash32,
    pub categories: u32,
}

impl Message for DataHeartbeat {
    const KIND: &'static str = "lode/data/heartbeat/v1";
}

/// A request for the signer's own reports and their fate. Signed so that nobody
/// learns what another node reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadReports {
    pub chain: Hash32,
}

impl Message for ReadReports {
    const KIND: &'static str = "lode/data/read/v1";
}

/// Why a domain string is not acceptable in a report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("the domain is empty")]
    Empty,
    #[error("the domain is {0} bytes, the limit is {MAX_DOMAIN_BYTES}")]
    TooLong(usize),
    #[error(
        "the domain {0:?} is not a lower-case DNS name (labels of a-z, 0-9 and '-', punycode for IDNs)"
    )]
    NotDnsName(String),
    #[error("{0:?} is an IP address; report the site's domain")]
    IpLiteral(String),
}

/// Checks the shape of a reported domain: lower-case ASCII DNS labels of 1–63
/// characters, at least two labels, no IP literal. Whether it is a *registrable*
/// domain (eTLD+1) needs the Public Suffix List and is checked by the gateway.
pub fn check_domain(d: &str) -> Result<(), DomainError> {
    if d.is_empty() {
        return Err(DomainError::Empty);
    }
    if d.len() > MAX_DOMAIN_BYTES {
        return Err(DomainError::TooLong(d.len()));
    }
    let bad = || DomainError::NotDnsName(d.chars().take(80).collect());
    let labels: Vec<&str> = d.split('.').collect();
    if labels.len() < 2 {
        return Err(bad());
    }
    for l in &labels {
        if l.is_empty()
            || l.len() > 63
            || l.starts_with('-')
            || l.ends_with('-')
            || !l
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad());
        }
    }
    if labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return Err(DomainError::IpLiteral(d.to_string()));
    }
    Ok(())
}

/// The feed's key of a domain: SHA-256 of its bytes. A checking browser sends
/// (or matches) only a prefix of it.
pub fn domain_hash(domain: &str) -> Hash32 {
    Hash32::sha256(domain.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        for ok in [
            "example.com",
            "xn--bcher-kva.example",
            "a-b.co.uk",
            "1password.com",
        ] {
            check_domain(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        assert_eq!(check_domain(""), Err(DomainError::Empty));
        assert!(matches!(
            check_domain("localhost"),
            Err(DomainError::NotDnsName(_))
        ));
        assert!(matches!(
            check_domain("Example.com"),
            Err(DomainError::NotDnsName(_))
        ));
        assert!(matches!(
            check_domain("a..com"),
            Err(DomainError::NotDnsName(_))
        ));
        assert!(matches!(
            check_domain("-a.com"),
            Err(DomainError::NotDnsName(_))
        ));
        assert!(matches!(
            check_domain("a.com/x"),
            Err(DomainError::NotDnsName(_))
        ));
        assert!(matches!(
            check_domain("10.0.0.1"),
            Err(DomainError::IpLiteral(_))
        ));
        let long = format!("{}.com", "a.".repeat(130));
        assert!(matches!(check_domain(&long), Err(DomainError::TooLong(_))));
    }
}
