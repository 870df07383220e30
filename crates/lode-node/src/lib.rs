//! The Lode contributor node.
//!
//! It connects outbound to a gateway (so it works behind NAT), advertises its
//! capacity, pulls work units in batches, runs them in `lode-sandbox` under each
//! unit's limits, and returns signed results. It contributes idle resources only:
//! lowest OS scheduling priority by default, and a CPU cap the contributor sets.
//!
//! ```no_run
//! # async fn demo() -> Result<(), lode_node::NodeError> {
//! use lode_node::NodeConfig;
//! let config = NodeConfig::new(
//!     "http://127.0.0.1:7700",
//!     "/home/me/.lode/identity.key".into(),
//!     "/home/me/.lode/node".into(),
//! );
//! let summary = lode_node::run(config, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! println!("reported {} units", summary.reported);
//! # Ok(()) }
//! ```
//!
//! See `docs/design/lode-node.md` for the protocol flow, the invariants and which
//! sandbox outcomes are results.

pub mod backoff;
pub mod bench;
pub mod client;
pub mod clock;
pub mod config;
pub mod error;
pub mod host;
pub mod modules;
pub mod node;
pub mod outbox;
pub mod outcome;
pub mod storage;
pub mod tracker;
pub mod worker;

pub use config::{Behaviour, NodeConfig};
pub use error::NodeError;
pub use node::{Node, NodeInfo, RunSummary, run};

/// Resident memory of this process (`VmRSS` in `/proc/self/status`), in bytes.
/// `None` where that file does not exist.
pub fn vm_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

/// `VmRSS` of a `/proc/<pid>/status` text, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_vm_rss() {
        assert_eq!(
            super::parse_vm_rss("Name:\tx\nVmRSS:\t   12345 kB\nVmData: 1 kB\n"),
            Some(12345 * 1024)
        );
        assert_eq!(super::parse_vm_rss("Name: x\n"), None);
        let rss = super::vm_rss_bytes().unwrap();
        assert!(rss > 1 << 20, "{rss}");
    }
}
