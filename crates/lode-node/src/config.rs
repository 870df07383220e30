//! What the contributor sets.

use crate::error::NodeError;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Configuration of a node. Build it with [`NodeConfig::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Gateway base URL, e.g. `http://127.0.0.1:7700` (no trailing path).
    pub gateway: String,
    /// The node's key file. It must carry a payout address.
    pub key_file: PathBuf,
    /// Concurrent units. `None`: from the CPU cap (all cores without one). When
    /// both are set, the smaller wins.
    pub slots: Option<u32>,
    /// CPU cap in percent of the machine's cores (1..=100): `ceil(cores × pct / 100)`
    /// slots at most.
    pub max_cpu_pct: Option<u8>,
    /// Memory offered to units in total, in bytes. `None`: half of the memory
    /// available at start. Each unit may use at most `memory / slots` (capped at 4 GiB).
    pub memory_bytes: Option<u64>,
    /// The operator running this node, when it is not the node key itself (the
    /// ledger groups nodes by operator; replicas never go to one operator twice).
    pub operator: Option<lode_proto::Did>,
    /// Region advertised to the gateway (e.g. `eu-west`).
    pub region: Option<String>,
    /// Lowest accepted price, in token base units per unit of fuel.
    pub min_price_per_fuel: u128,
    /// Node state: `modules/` (downloaded wasm, by hash) and `compiled/` (the
    /// sandbox's cache of locally compiled code).
    pub data_dir: PathBuf,
    /// Most units asked for, and most reports sent, in one poll.
    pub poll_batch: u32,
    /// Most units held queued beyond the running ones. The node holds extra units
    /// only once it has seen units finish quickly: enough to keep its slots busy
    /// for 250 ms at the average unit time (none for units slower than that).
    pub max_prefetch: u32,
    /// Most report payload bytes (mostly stdout) in one poll.
    pub max_poll_bytes: usize,
    /// Drop to the lowest OS scheduling priority (nice 19) at start.
    pub lower_priority: bool,
    /// On shutdown, how long running units may take to finish before they are
    /// handed back.
    pub shutdown_grace: Duration,
    /// After the grace period, how long the node keeps trying to deliver its last
    /// reports and hand-backs before it exits anyway.
    pub final_flush: Duration,
    /// How long the self-benchmark runs.
    pub benchmark_time: Duration,
    /// Reconnection backoff: first delay and cap.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Connect timeout of HTTP requests.
    pub connect_timeout: Duration,
    /// Timeout of requests that do not wait (hello, auth, module download).
    pub request_timeout: Duration,
    /// Test harness only: how this node behaves (an honest node by default).
    pub behaviour: Behaviour,
    /// Test harness only: the speed (fuel/s per slot) announced instead of the
    /// measured one (a speed liar).
    pub claim_speed: Option<u64>,
    /// Test harness only: the local address connections to the gateway are
    /// made from (e.g. distinct 127.0.0.x per node on one machine).
    pub source_ip: Option<std::net::IpAddr>,
    /// Disk offered to other people's files (`lode_storage` shares), kept
    /// under `DIR/shares/`, apart from the node's own data. `None`: no storage.
    pub storage_dir: Option<PathBuf>,
    /// Storage quota in bytes (shares plus their Merkle leaves).
    pub storage_bytes: u64,
}

/// Slots for the explicit slot count and CPU cap (see [`NodeConfig::slots`]).
pub fn effective_slots(cores: u32, slots: Option<u32>, max_cpu_pct: Option<u8>) -> u32 {
    let cap = max_cpu_pct.map(|p| crate::host::slots_for_cpu_cap(cores, p));
    match (slots, cap) {
        (Some(s), Some(c)) => s.min(c),
        (Some(s), None) => s,
        (None, Some(c)) => c,
        (None, None) => cores,
    }
    .max(1)
}

impl NodeConfig {
    /// Defaults for everything but the gateway, key file and data directory.
    pub fn new(gateway: impl Into<String>, key_file: PathBuf, data_dir: PathBuf) -> Self {
        Self {
            gateway: gateway.into(),
            key_file,
            slots: None,
            max_cpu_pct: None,
            memory_bytes: None,
            operator: None,
            region: None,
            min_price_per_fuel: 0,
            data_dir,
            poll_batch: 256,
            max_prefetch: 256,
            max_poll_bytes: 4 << 20,
            lower_priority: true,
            shutdown_grace: Duration::from_secs(10),
            final_flush: Duration::from_secs(5),
            benchmark_time: Duration::from_millis(200),
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            behaviour: Behaviour::Honest,
            claim_speed: None,
            source_ip: None,
            storage_dir: None,
            storage_bytes: 0,
        }
    }

    /// The gateway URL without trailing slashes, checked to be `http(s)://host…`.
    pub fn gateway_base(&self) -> Result<String, NodeError> {
        let url = reqwest::Url::parse(&self.gateway).map_err(|e| NodeError::Config {
            reason: format!("gateway URL {:?}: {e}", self.gateway),
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(NodeError::Config {
                reason: format!(
                    "gateway URL {:?} must be http:// or https:// with a host",
                    self.gateway
                ),
            });
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(NodeError::Config {
                reason: format!("gateway URL {:?} must not have a query", self.gateway),
            });
        }
        Ok(self.gateway.trim_end_matches('/').to_string())
    }

    pub(crate) fn validate(&self) -> Result<(), NodeError> {
        self.gateway_base()?;
        let bad = |reason: String| Err(NodeError::Config { reason });
        if self.slots == Some(0) {
            return bad("slots must be at least 1".into());
        }
        if let Some(pct) = self.max_cpu_pct
            && !(1..=100).contains(&pct)
        {
            return bad(format!("max CPU must be 1..=100 percent, got {pct}"));
        }
        if self.poll_batch == 0 {
            return bad("poll batch must be at least 1".into());
        }
        if self.memory_bytes == Some(0) {
            return bad("offered memory must be positive".into());
        }
        Ok(())
    }
}

/// How a node behaves. Anything but [`Behaviour::Honest`] exists only so that
/// tests and the anti-cheat benchmark can run dishonest nodes over the real
/// protocol; the CLI hides it.
///
/// The dishonest behaviours apply to the units whose `sha256(job ‖ unit)` falls in
/// the first `per_mille`/1000 of the hash space, so colluding nodes cheat on the
/// same units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Behaviour {
    #[default]
    Honest,
    /// Runs the unit but reports an output no other node reports (it depends on
    /// the node's key).
    WrongOutput { per_mille: u16 },
    /// Runs the unit but reports the same wrong output as every other colluding node.
    ColludingWrongOutput { per_mille: u16 },
    /// Does not run the unit: replays the last outcome it really computed (its
    /// exit code, fuel and output, from whatever unit that was). Runs the unit
    /// when it has nothing to replay yet.
    Lazy { per_mille: u16 },
}

impl FromStr for Behaviour {
    type Err = String;

    /// `honest`, `wrong-output:N`, `colluding:N`, `lazy:N` (N per mille, 0..=1000;
    /// `:N` may be left out for 1000).
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, rate) = match s.split_once(':') {
            Some((n, r)) => (
                n,
                r.parse::<u16>()
                    .ok()
                    .filter(|r| *r <= 1000)
                    .ok_or_else(|| format!("bad rate {r:?}: expected 0..=1000 (per mille)"))?,
            ),
            None => (s, 1000),
        };
        match name {
            "honest" => Ok(Behaviour::Honest),
            "wrong-output" => Ok(Behaviour::WrongOutput { per_mille: rate }),
            "colluding" => Ok(Behaviour::ColludingWrongOutput { per_mille: rate }),
            "lazy" => Ok(Behaviour::Lazy { per_mille: rate }),
            other => Err(format!(
                "unknown behaviour {other:?}: expected honest, wrong-output[:N], colluding[:N] or lazy[:N]"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> NodeConfig {
        NodeConfig::new(url, "k".into(), "d".into())
    }

    #[test]
    fn gateway_urls() {
        assert_eq!(
            cfg("http://127.0.0.1:7700/").gateway_base().unwrap(),
            "http://127.0.0.1:7700"
        );
        assert_eq!(
            cfg("https://gw.example/lode").gateway_base().unwrap(),
            "https://gw.example/lode"
        );
        for bad in [
            "",
            "127.0.0.1:7700",
            "ftp://x",
            "http://x/?a=1",
            "not a url",
        ] {
            assert!(
                matches!(cfg(bad).gateway_base(), Err(NodeError::Config { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn validation() {
        assert!(cfg("http://h").validate().is_ok());
        let mut c = cfg("http://h");
        c.slots = Some(0);
        assert!(c.validate().is_err());
        let mut c = cfg("http://h");
        c.max_cpu_pct = Some(0);
        assert!(c.validate().is_err());
        c.max_cpu_pct = Some(101);
        assert!(c.validate().is_err());
        c.max_cpu_pct = Some(50);
        assert!(c.validate().is_ok());
        let mut c = cfg("http://h");
        c.poll_batch = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn slots_from_explicit_count_and_cpu_cap() {
        assert_eq!(effective_slots(8, None, None), 8);
        assert_eq!(effective_slots(8, Some(3), None), 3);
        assert_eq!(
            effective_slots(2, Some(16), None),
            16,
            "oversubscribing is allowed"
        );
        assert_eq!(effective_slots(8, None, Some(50)), 4);
        assert_eq!(effective_slots(8, Some(6), Some(50)), 4, "the smaller wins");
        assert_eq!(effective_slots(8, Some(2), Some(50)), 2);
        assert_eq!(effective_slots(0, None, None), 1);
    }

    #[test]
    fn behaviours_parse() {
        assert_eq!("honest".parse(), Ok(Behaviour::Honest));
        assert_eq!(
            "wrong-output:250".parse(),
            Ok(Behaviour::WrongOutput { per_mille: 250 })
        );
        assert_eq!(
            "colluding".parse(),
            Ok(Behaviour::ColludingWrongOutput { per_mille: 1000 })
        );
        assert_eq!("lazy:0".parse(), Ok(Behaviour::Lazy { per_mille: 0 }));
        assert!("lazy:1001".parse::<Behaviour>().is_err());
        assert!("evil".parse::<Behaviour>().is_err());
    }
}

/// Records the chain this node works for in `file` (the first time), and
/// refuses a gateway that serves another one.
pub fn pin_chain(
    file: &std::path::Path,
    chain: &lode_proto::Hash32,
) -> Result<(), crate::client::ClientError> {
    use crate::client::ClientError;
    match std::fs::read_to_string(file) {
        Ok(known) => {
            let known = known.trim();
            if known == chain.to_hex() {
                Ok(())
            } else {
                Err(ClientError::Protocol(format!(
                    "the gateway now serves chain {chain}, but this node works for chain {known} \
                     (recorded in {}); its earnings are on that chain. To join the new chain, \
                     use another --data-dir or delete that file",
                    file.display()
                )))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = file.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            std::fs::write(file, chain.to_hex()).map_err(|e| {
                ClientError::Protocol(format!(
                    "cannot record the chain in {}: {e}",
                    file.display()
                ))
            })
        }
        Err(e) => Err(ClientError::Protocol(format!(
            "cannot read {}: {e}",
            file.display()
        ))),
    }
}

#[cfg(test)]
mod chain_tests {
    use super::pin_chain;

    #[test]
    fn a_node_stays_on_its_first_chain() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("chain_id");
        let a = lode_proto::Hash32::sha256(b"a");
        let b = lode_proto::Hash32::sha256(b"b");
        pin_chain(&f, &a).unwrap();
        pin_chain(&f, &a).unwrap();
        let e = pin_chain(&f, &b).unwrap_err().to_string();
        assert!(e.contains("now serves chain"), "{e}");
        std::fs::remove_file(&f).unwrap();
        pin_chain(&f, &b).unwrap();
    }
}
