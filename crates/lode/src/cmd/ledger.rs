//! `lode ledger`: verify, inspect and audit a ledger directory.
//!
//! Every command reads the ledger read-only (a running gateway may keep
//! writing it). The ledger directory is `--data-dir DIR` (or
//! `$LODE_LEDGER_DIR`, default `$LODE_HOME/ledger`); a gateway's data
//! directory is accepted too (its ledger lives in `DIR/ledger`).

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use lode_ledger::merkle::hex0x;
use lode_ledger::{
    Entry, Genesis, JobEscrow, Ledger, LedgerConfig, LedgerView, Penalty, PenaltyReason,
    RegisterNode, Transfer, Withdraw, WorkReceipt, format_tokens,
};
use lode_proto::{EvmAddress, Hash32, KeyFile, Keypair};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where the ledger is.
#[derive(Debug, Clone, Args)]
pub struct LedgerDir {
    /// Ledger directory (or a gateway data directory holding `ledger/`)
    /// [default: $LODE_HOME/ledger]
    #[arg(long = "data-dir", env = "LODE_LEDGER_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl LedgerDir {
    /// The ledger directory to use.
    pub fn resolve(&self) -> PathBuf {
        resolve_dir(
            self.data_dir
                .clone()
                .unwrap_or_else(|| super::keys::lode_home().join("ledger")),
        )
    }

    pub fn open(&self) -> Result<LedgerView> {
        let dir = self.resolve();
        LedgerView::open(&dir).with_context(|| format!("opening the ledger in {}", dir.display()))
    }
}

/// Accepts a gateway data directory (`DIR/ledger/ledger.redb`) as well as a ledger directory.
fn resolve_dir(dir: PathBuf) -> PathBuf {
    if !dir.join(lode_ledger::store::DB_FILE).exists()
        && dir
            .join("ledger")
            .join(lode_ledger::store::DB_FILE)
            .exists()
    {
        return dir.join("ledger");
    }
    dir
}

#[derive(Debug, Subcommand)]
pub enum LedgerCmd {
    /// Replay the ledger from genesis and check every hash, signature and state
    /// root; names the first bad block. Exit status 1 if anything is wrong.
    Verify {
        /// Ledger directory (same as --data-dir).
        dir: Option<PathBuf>,
        #[command(flatten)]
        at: LedgerDir,
        /// Verify the chain a gateway or validator serves over HTTP
        /// (`GET /v1/ledger/raw`) instead of a local directory: nothing is
        /// trusted but the blocks themselves.
        #[arg(long, value_name = "URL", conflicts_with = "dir")]
        from: Option<String>,
        /// Print a JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Summary of the chain: head, epoch, where every token is. With
    /// --height, one block and its entries.
    Show {
        #[command(flatten)]
        at: LedgerDir,
        /// Show this block instead of the summary.
        #[arg(long)]
        height: Option<u64>,
        /// Print the chain's genesis (TOML) instead of the summary.
        #[arg(long, conflicts_with = "height")]
        genesis: bool,
        /// Show the chain a gateway or validator serves over HTTP, replayed
        /// and verified from genesis here, instead of a local directory.
        #[arg(long, value_name = "URL")]
        from: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The claims tree published when EPOCH closed, as the OpenZeppelin
    /// `standard-v1` JSON dump (byte-identical to `JSON.stringify(tree.dump())`).
    Tree {
        epoch: u64,
        #[command(flatten)]
        at: LedgerDir,
        /// Indent the JSON.
        #[arg(long)]
        pretty: bool,
    },
    /// Who received the tokens issued so far: contributors vs every other
    /// allocation, and the Gini coefficient of contributor rewards.
    Fairness {
        #[command(flatten)]
        at: LedgerDir,
        #[arg(long)]
        json: bool,
    },
    /// Print the embedded default genesis (documented TOML) to start from.
    DefaultGenesis,
    /// Validator tool: apply signed entries (JSON files, e.g. from `lode wallet
    /// withdraw`) and seal one block. Only when no gateway holds the ledger.
    #[command(hide = true)]
    Submit {
        #[command(flatten)]
        at: LedgerDir,
        /// The validator's key file.
        #[arg(long)]
        validator_key: PathBuf,
        /// Block time in ms since the Unix epoch [default: now].
        #[arg(long)]
        now: Option<u64>,
        /// JSON files, each one entry or an array of entries.
        files: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Development: build a small valid demo chain with deterministic,
    /// PUBLIC keys (never use them for anything of value).
    #[command(hide = true)]
    Demo {
        /// Ledger directory to create (must not hold a ledger yet).
        #[arg(long)]
        out: PathBuf,
        /// Nodes.
        #[arg(long, default_value_t = 4)]
        nodes: u8,
        /// Epochs to run.
        #[arg(long, default_value_t = 3)]
        epochs: u64,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: LedgerCmd) -> Result<ExitCode> {
    match cmd {
        LedgerCmd::Verify {
            dir,
            at,
            from,
            json,
        } => match from {
            Some(url) => verify_remote(&url, json),
            None => verify(dir, &at, json),
        },
        LedgerCmd::Show {
            at,
            height,
            genesis,
            from,
            json,
        } => match from {
            Some(url) => show_remote(&url, height, genesis, json),
            None => {
                let view = at.open()?;
                let source = Shown {
                    state: view.state(),
                    source: view.dir().display().to_string(),
                    open_report: serde_json::to_value(view.open_report())?,
                    block: match height {
                        Some(h) => Some(view.block(h)?.ok_or_else(|| {
                            anyhow!("no block at height {h} (head is {})", view.state().height())
                        })?),
                        None => None,
                    },
                };
                show(&source, genesis, json)
            }
        },
        LedgerCmd::Tree { epoch, at, pretty } => {
            let view = at.open()?;
            let tree = view.claims_tree(epoch)?;
            if pretty {
                println!("{}", serde_json::to_string_pretty(&tree.dump())?);
            } else {
                println!("{}", tree.dump_json());
            }
            Ok(ExitCode::SUCCESS)
        }
        LedgerCmd::Fairness { at, json } => fairness(&at, json),
        LedgerCmd::DefaultGenesis => {
            print!("{}", lode_ledger::genesis::DEFAULT_GENESIS_TOML);
            Ok(ExitCode::SUCCESS)
        }
        LedgerCmd::Submit {
            at,
            validator_key,
            now,
            files,
            json,
        } => submit(&at, &validator_key, now, &files, json),
        LedgerCmd::Demo {
            out,
            nodes,
            epochs,
            json,
        } => demo(&out, nodes, epochs, json),
    }
}

fn verify(dir: Option<PathBuf>, at: &LedgerDir, json: bool) -> Result<ExitCode> {
    let dir = match dir {
        Some(d) => resolve_dir(d),
        None => at.resolve(),
    };
    print_verify(lode_ledger::verify(&dir), json)
}

/// Largest page of blocks accepted from a server.
const MAX_BLOCKS_RESPONSE: u64 = 64 << 20;

/// A fetched block: height, bytes, certificate bytes.
type RawBlock = (u64, Vec<u8>, Option<Vec<u8>>);

/// Pages of raw blocks from `GET /v1/ledger/raw`, up to the head the first
/// page announced; a transport or framing error ends the stream and is kept.
struct RemoteBlocks {
    http: reqwest::blocking::Client,
    base: String,
    next: u64,
    head: Option<u64>,
    page: std::vec::IntoIter<RawBlock>,
    /// Why the stream ended early, if it did (read after the replay).
    error: Option<anyhow::Error>,
}

impl RemoteBlocks {
    fn fetch(&mut self) -> Result<Vec<RawBlock>> {
        let url = format!("{}/v1/ledger/raw?from={}", self.base, self.next);
        let resp = self
            .http
            .get(&url)
            .send()
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().unwrap_or_default();
            bail!(
                "{url}: HTTP {status}: {}",
                text.chars().take(300).collect::<String>()
            );
        }
        let head: u64 = resp
            .headers()
            .get("x-lode-head")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                anyhow!("{url}: no X-Lode-Head header: not a Lode gateway or validator?")
            })?;
        self.head.get_or_insert(head);
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_BLOCKS_RESPONSE)
        {
            bail!("{url}: page larger than {MAX_BLOCKS_RESPONSE} bytes");
        }
        let mut body = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(resp, MAX_BLOCKS_RESPONSE + 1),
            &mut body,
        )
        .with_context(|| format!("reading {url}"))?;
        if body.len() as u64 > MAX_BLOCKS_RESPONSE {
            bail!("{url}: page larger than {MAX_BLOCKS_RESPONSE} bytes");
        }
        let out: Vec<RawBlock> = lode_ledger::raw::split_frames(&body)
            .map_err(|e| anyhow!("{url}: {e}"))?
            .into_iter()
            .enumerate()
            .map(|(i, (block, cert))| (self.next + i as u64, block, cert))
            .collect();
        if out.is_empty() {
            bail!("{url}: an empty page before the head");
        }
        self.next += out.len() as u64;
        Ok(out)
    }
}

impl Iterator for RemoteBlocks {
    type Item = lode_ledger::BlockItem;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((h, bytes, cert)) = self.page.next() {
                return Some((h, lode_ledger::Block::from_bytes(&bytes), cert));
            }
            if self.head.is_some_and(|head| self.next > head) {
                return None;
            }
            match self.fetch() {
                Ok(page) => self.page = page.into_iter(),
                Err(e) => {
                    self.error = Some(e);
                    return None;
                }
            }
        }
    }
}

/// The blocks `url` serves, from genesis to the head it announces first.
fn remote_blocks(url: &str) -> Result<RemoteBlocks> {
    Ok(RemoteBlocks {
        http: reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .build()?,
        base: url.trim_end_matches('/').to_string(),
        next: 0,
        head: None,
        page: Vec::new().into_iter(),
        error: None,
    })
}

fn verify_remote(url: &str, json: bool) -> Result<ExitCode> {
    let mut blocks = remote_blocks(url)?;
    let result = lode_ledger::verify_blocks(&mut blocks);
    if let Some(e) = blocks.error.take() {
        return Err(e.context("fetching the chain"));
    }
    print_verify(result.map(|(r, _)| r), json)
}

fn print_verify(
    result: std::result::Result<lode_ledger::VerifyReport, lode_ledger::VerifyError>,
    json: bool,
) -> Result<ExitCode> {
    match result {
        Ok(r) => {
            if json {
                let mut v = serde_json::to_value(&r)?;
                v["ok"] = true.into();
                println!("{v}");
            } else {
                println!(
                    "ok: {} blocks (heights 0..={}), {} entries ({} signed, {} work receipts), {} epochs closed",
                    r.blocks,
                    r.head_height,
                    r.entries,
                    r.signed_entries,
                    r.receipts,
                    r.epochs_closed
                );
                println!("chain       {}", r.chain_id);
                println!("head        {}", r.head_hash);
                println!("state root  {}", r.state_root);
                println!("accounts    {}   nodes {}", r.accounts, r.nodes);
                if r.certified_blocks > 0 {
                    println!(
                        "certified   {} blocks, each by more than 2/3 of the voting power in force",
                        r.certified_blocks
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if json {
                let v = serde_json::json!({
                    "ok": false,
                    "height": e.height(),
                    "error": e.to_string(),
                });
                println!("{v}");
            } else {
                println!("verification FAILED: {e}");
                if let Some(h) = e.height() {
                    println!("first bad block: {h}");
                }
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// What `lode ledger show` prints from: a local ledger or a replayed remote one.
struct Shown<'a> {
    state: &'a lode_ledger::State,
    /// The directory or URL.
    source: String,
    open_report: serde_json::Value,
    /// The block asked for with --height.
    block: Option<lode_ledger::Block>,
}

/// `lode ledger show --from URL`: replays (and so verifies) the served chain,
/// keeping the block asked for, then shows it like a local ledger.
fn show_remote(url: &str, height: Option<u64>, genesis: bool, json: bool) -> Result<ExitCode> {
    let mut wanted = None;
    let mut blocks = remote_blocks(url)?;
    let replay = blocks.by_ref().inspect(|(h, b, _)| {
        if Some(*h) == height
            && let Ok(b) = b
        {
            wanted = Some(b.clone());
        }
    });
    let result = lode_ledger::verify_blocks(replay);
    if let Some(e) = blocks.error.take() {
        return Err(e.context("fetching the chain"));
    }
    let (_, state) =
        result.map_err(|e| anyhow!("the chain served by {url} does not verify: {e}"))?;
    if let Some(h) = height
        && wanted.is_none()
    {
        bail!("no block at height {h} (head is {})", state.height());
    }
    let source = Shown {
        state: &state,
        source: url.to_string(),
        open_report: serde_json::Value::Null,
        block: wanted,
    };
    show(&source, genesis, json)
}

fn show(shown: &Shown<'_>, genesis: bool, json: bool) -> Result<ExitCode> {
    let st = shown.state;
    if genesis {
        if json {
            println!("{}", serde_json::to_string_pretty(st.genesis())?);
        } else {
            print!("{}", st.genesis().to_toml());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(b) = &shown.block {
        let h = b.header.height;
        let entries: Vec<serde_json::Value> = b.entries.iter().map(Entry::to_view).collect();
        if json {
            let v = serde_json::json!({
                "height": h,
                "hash": b.hash(),
                "header": b.header,
                "signature": b.signature,
                "entries": entries,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            let hd = &b.header;
            println!("block {h}");
            println!("  hash          {}", b.hash());
            println!("  previous      {}", hd.prev_hash);
            println!("  time          {} ms", hd.timestamp_ms);
            println!("  validator     {}", hd.validator);
            println!("  entries root  {}", hd.entries_root);
            println!("  state root    {}", hd.state_root);
            println!("  entries       {}", hd.entry_count);
            for (i, e) in entries.iter().enumerate() {
                println!("  [{i}] {}", serde_json::to_string(e)?);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let supply = st.supply();
    let open_jobs = st.jobs().filter(|(_, j)| !j.closed).count();
    let last_epoch = st.epoch().checked_sub(1).and_then(|e| st.epoch_record(e));
    if json {
        let v = serde_json::json!({
            "dir": shown.source,
            "chain_id": st.chain_id(),
            "chain_name": st.genesis().chain_id,
            "validators": st.genesis().validators,
            "height": st.height(),
            "head_hash": st.head_hash(),
            "state_root": st.state_root(),
            "timestamp_ms": st.totals().timestamp_ms,
            "epoch": st.epoch(),
            "epoch_ends_at_ms": st.epoch_end_ms(),
            "supply": supply,
            "accounts": st.accounts().count(),
            "nodes": st.nodes().count(),
            "open_jobs": open_jobs,
            "last_epoch": last_epoch,
            "open_report": shown.open_report,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("ledger      {}", shown.source);
    println!("chain       {} ({})", st.chain_id(), st.genesis().chain_id);
    for v in &st.genesis().validators {
        println!("validator   {v}");
    }
    println!("head        block {} {}", st.height(), st.head_hash());
    println!("state root  {}", st.state_root());
    println!(
        "epoch       {} (closes at {} ms)",
        st.epoch(),
        st.epoch_end_ms()
    );
    println!(
        "accounts    {}   nodes {}   open jobs {}",
        st.accounts().count(),
        st.nodes().count(),
        open_jobs
    );
    println!("supply      {}", format_tokens(supply.total_supply));
    let rows = [
        ("  balances", supply.balances),
        ("  escrow", supply.escrow),
        ("  reward pool", supply.pool_remaining),
        ("  reward dust", supply.reward_dust),
        ("  locked (vesting)", supply.locked),
        ("  reserved", supply.reserved),
        ("  withdrawn", supply.withdrawn),
    ];
    for (name, v) in rows {
        println!("{name:<20}{}", format_tokens(v));
    }
    println!("issued so far       {}", format_tokens(supply.issued));
    if let Some(r) = last_epoch {
        println!(
            "last epoch  {}: emission {}, paid {} to {} nodes, dust carried {} base units, vested {}",
            r.epoch,
            format_tokens(r.emission),
            format_tokens(r.distributed),
            r.rewarded_nodes,
            r.dust_out,
            format_tokens(r.vested)
        );
        println!(
            "claims root {} ({} addresses)",
            hex0x(&r.claims_root.0),
            r.claims_count
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Parts per million as a percentage with 4 decimals, exactly.
pub fn ppm(p: u64) -> String {
    format!("{}.{:04}%", p / 10_000, p % 10_000)
}

fn fairness(at: &LedgerDir, json: bool) -> Result<ExitCode> {
    let view = at.open()?;
    let f = view.state().fairness();
    if json {
        println!("{}", serde_json::to_string_pretty(&f)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "issued so far: {} over {} closed epochs",
        format_tokens(f.issued),
        f.epochs_closed
    );
    println!(
        "{:<16} {:>12} {:>32} {:>32}",
        "allocation", "share", "issued", "allocated"
    );
    for s in &f.shares {
        println!(
            "{:<16} {:>12} {:>32} {:>32}",
            s.allocation,
            ppm(s.share_ppm),
            format_tokens(s.issued),
            format_tokens(s.allocated)
        );
    }
    if f.stakers_issued > 0 || view.state().genesis().staking.is_some() {
        println!(
            "{:<16} {:>12} {:>32} {:>32}",
            "stakers",
            ppm(f.stakers_share_ppm),
            format_tokens(f.stakers_issued),
            "(from the contributors' pool)"
        );
    }
    println!(
        "contributor rewards: Gini {:.4} over {} rewarded nodes ({} registered)",
        f.contributor_gini, f.rewarded_nodes, f.registered_nodes
    );
    Ok(ExitCode::SUCCESS)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn read_entries(path: &Path) -> Result<Vec<Entry>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let parse = |v: serde_json::Value| -> Result<Entry> {
        serde_json::from_value(v)
            .with_context(|| format!("{} is not a ledger entry", path.display()))
    };
    match v {
        serde_json::Value::Array(items) => items.into_iter().map(parse).collect(),
        other => Ok(vec![parse(other)?]),
    }
}

fn submit(
    at: &LedgerDir,
    key: &Path,
    now: Option<u64>,
    files: &[PathBuf],
    json: bool,
) -> Result<ExitCode> {
    let dir = at.resolve();
    let kf = KeyFile::load(key)?;
    let mut entries = Vec::new();
    for f in files {
        entries.extend(read_entries(f)?);
    }
    let mut ledger = Ledger::open(&dir, kf.keypair, LedgerConfig::default())
        .with_context(|| format!("opening the ledger in {} for writing", dir.display()))?;
    for (i, e) in entries.into_iter().enumerate() {
        ledger
            .submit(e)
            .with_context(|| format!("entry {i} was rejected"))?;
    }
    let sealed = ledger.seal_block(now.unwrap_or_else(now_ms))?;
    match sealed {
        Some(b) if json => println!("{}", serde_json::to_string(&b)?),
        Some(b) => println!(
            "sealed block {} ({} entries{}) {}",
            b.height,
            b.entries,
            if b.epochs_closed.is_empty() {
                String::new()
            } else {
                format!(", closed epochs {:?}", b.epochs_closed)
            },
            b.hash
        ),
        None if json => println!("null"),
        None => println!("nothing to seal"),
    }
    Ok(ExitCode::SUCCESS)
}

/// A deterministic, publicly known demo key (dev only).
fn demo_key(label: &str) -> Keypair {
    Keypair::from_secret_bytes(&Hash32::sha256(format!("lode-demo-key/{label}").as_bytes()).0)
}

fn demo_address(i: u8) -> EvmAddress {
    let h = Hash32::sha256(&[b'p', i]);
    let mut a = [0u8; 20];
    a.copy_from_slice(&h.0[..20]);
    EvmAddress(a)
}

fn demo(out: &Path, nodes: u8, epochs: u64, json: bool) -> Result<ExitCode> {
    if nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let validator = demo_key("validator");
    let funder = demo_key("funder");
    let requester = demo_key("requester");
    let node_keys: Vec<Keypair> = (0..nodes).map(|i| demo_key(&format!("node-{i}"))).collect();
    const EPOCH: u64 = 60_000;
    let mut g = Genesis::default_genesis();
    g.chain_id = "lode-demo".into();
    g.epoch.length_ms = EPOCH;
    for a in &mut g.allocations {
        if a.name == "treasury" {
            a.beneficiary = Some(funder.did());
        }
    }
    let t0 = g.genesis_time_ms;
    let mut l = Ledger::create(out, &g, validator.clone(), LedgerConfig::default())
        .with_context(|| format!("creating a ledger in {}", out.display()))?;
    let chain = l.chain_id();
    let keys_dir = out.join("demo-keys");
    std::fs::create_dir_all(&keys_dir)?;
    let save = |name: &str, k: &Keypair, payout: Option<EvmAddress>| -> Result<PathBuf> {
        let p = keys_dir.join(format!("{name}.key"));
        KeyFile {
            keypair: k.clone(),
            payout_address: payout,
        }
        .save_new(&p)?;
        Ok(p)
    };
    save("validator", &validator, None)?;
    save("funder", &funder, None)?;
    save("requester", &requester, None)?;
    for (i, k) in node_keys.iter().enumerate() {
        save(&format!("node-{i}"), k, Some(demo_address(i as u8)))?;
    }
    let sign_transfer = |l: &Ledger, from: &Keypair, to, amount| {
        let m = Transfer {
            chain,
            to,
            amount,
            memo: "demo".into(),
        };
        Entry::sign(from, l.state().next_nonce(&from.did()), t0, &m)
    };
    let e = sign_transfer(
        &l,
        &funder,
        requester.did(),
        1_000_000 * lode_ledger::ONE_TOKEN,
    )?;
    l.submit(e)?;
    for (i, k) in node_keys.iter().enumerate() {
        let m = RegisterNode {
            chain,
            operator: k.did(),
            payout: demo_address(i as u8),
        };
        l.submit(Entry::sign(k, l.state().next_nonce(&k.did()), t0, &m)?)?;
    }
    l.seal_block(t0 + 1)?;
    let n = node_keys.len();
    let mut unit = 0u64;
    for epoch in 0..epochs {
        let job = Hash32::sha256(format!("demo-job-{epoch}").as_bytes());
        let m = JobEscrow {
            chain,
            job,
            amount: 1_000 * lode_ledger::ONE_TOKEN,
            price_per_unit: 1_000_000_000,
        };
        l.submit(Entry::sign(&requester, 0, t0, &m)?)?;
        // Node i verifies (i + 1) * 3 units with its neighbour, quorum 2.
        for i in 0..n {
            for _ in 0..(i + 1) * 3 {
                let a = node_keys[i].did();
                let b = node_keys[(i + 1) % n].did();
                let mut quorum = vec![a, b];
                quorum.sort();
                quorum.dedup();
                for node in &quorum {
                    l.submit(Entry::WorkReceipt(WorkReceipt {
                        job,
                        unit,
                        node: *node,
                        kind: lode_ledger::ContributionKind::Fuel,
                        amount: 2_000_000 + unit * 1_000,
                        result: Hash32::sha256(&unit.to_le_bytes()),
                        quorum: quorum.clone(),
                    }))?;
                }
                unit += 1;
            }
        }
        if epoch == 1 && n > 1 {
            l.submit(Entry::Penalty(Penalty {
                node: node_keys[1].did(),
                reason: PenaltyReason::ImpossibleSpeed,
                job: Some(job),
                unit: None,
                forfeit_weight: 1_000_000,
                detail: "demo: result returned faster than the benchmark allows".into(),
            }))?;
        }
        let s = l.settlement(&job, true)?;
        l.submit(Entry::Settlement(s))?;
        l.seal_block(t0 + epoch * EPOCH + 10)?;
        // Nodes withdraw half of their balance to their payout address.
        for (i, k) in node_keys.iter().enumerate() {
            let bal = l.state().balance(&k.did());
            if bal >= 2 {
                let m = Withdraw {
                    chain,
                    to: demo_address(i as u8),
                    amount: bal / 2,
                };
                l.submit(Entry::sign(k, l.state().next_nonce(&k.did()), t0, &m)?)?;
            }
        }
        l.seal_block(t0 + epoch * EPOCH + 20)?;
        // Crossing the boundary closes the epoch.
        l.seal_block(t0 + (epoch + 1) * EPOCH)?;
        if l.pending_len() > 0 {
            bail!("demo left entries unsealed");
        }
    }
    let e = sign_transfer(
        &l,
        &funder,
        demo_key("friend").did(),
        42 * lode_ledger::ONE_TOKEN,
    )?;
    l.submit(e)?;
    l.seal_block(t0 + epochs * EPOCH + 5)?;
    let summary = serde_json::json!({
        "dir": out,
        "chain_id": l.chain_id(),
        "height": l.height(),
        "epochs_closed": l.state().epoch(),
        "keys_dir": keys_dir,
        "validator": validator.did(),
        "funder": funder.did(),
        "requester": requester.did(),
        "nodes": node_keys.iter().enumerate().map(|(i, k)| serde_json::json!({
            "did": k.did(),
            "payout": demo_address(i as u8),
            "key": keys_dir.join(format!("node-{i}.key")),
        })).collect::<Vec<_>>(),
    });
    if json {
        println!("{summary}");
    } else {
        println!(
            "demo ledger in {} ({} blocks, {} epochs closed); demo keys (PUBLIC, dev only) in {}",
            out.display(),
            l.height() + 1,
            l.state().epoch(),
            keys_dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
