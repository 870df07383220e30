//! `lode storage`: store files on the network's nodes, read them back, follow
//! their audits and repairs, end their contracts.

use super::job::{Common, load_key};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lode_client::Client;
use lode_client::storage::PutOptions;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum StorageCmd {
    /// Store a file: erasure-coded into --shares shares, any --needed of which
    /// rebuild it, each on a node of a different IP group and operator; an
    /// escrow pays the holders per audited byte-hour for --days.
    Put {
        file: PathBuf,
        /// Shares stored (n) [default: 8, or fewer when fewer storage nodes are online].
        #[arg(long)]
        shares: Option<u16>,
        /// Shares that rebuild the file (k) [default: half of --shares].
        #[arg(long)]
        needed: Option<u16>,
        /// Storage term in days (decimals allowed).
        #[arg(long, default_value_t = 30.0)]
        days: f64,
        /// Price in token base units per byte-hour of audited storage.
        #[arg(long, default_value_t = 1)]
        price: u128,
        /// Requester key file [default: $LODE_HOME/identity.key]
        #[arg(long)]
        key: Option<PathBuf>,
        /// Seconds to wait, after the upload, for every share to be on its
        /// node (0: return once the gateway holds the contract).
        #[arg(long, default_value_t = 120)]
        wait_s: u64,
        #[command(flatten)]
        common: Common,
    },
    /// Read a stored file back (every share checked against its root).
    Get {
        id: String,
        /// Where to write the file.
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        key: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// A stored file's shares, holders, audits and repairs.
    Status {
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// The files a key has stored.
    Ls {
        #[arg(long)]
        key: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// End a file's contract early: holders delete it, unspent escrow is refunded.
    Rm {
        id: String,
        #[arg(long)]
        key: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
}

fn spinner(msg: String, json: bool) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    if json || !std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(msg);
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

/// A byte progress bar (hidden for --json or when stderr is not a terminal).
fn byte_bar(len: u64, msg: String, json: bool) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if json || !std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(msg);
    pb
}

/// Waits up to `wait_s` for every share of `id` to be held, with a bar of
/// shares placed. Returns the shares held at the end.
fn wait_placed(client: &Client, id: &str, n: u64, wait_s: u64, json: bool) -> u64 {
    let pb = ProgressBar::new(n);
    if json || !std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template("placing shares [{bar:30}] {pos}/{len} on nodes [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let start = std::time::Instant::now();
    let mut live = 0;
    loop {
        if let Ok(v) = client.storage_status(id) {
            live = v["live_shares"].as_u64().unwrap_or(0);
            pb.set_position(live);
        }
        if live >= n || start.elapsed().as_secs() >= wait_s {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    pb.finish_and_clear();
    live
}

pub fn run(cmd: StorageCmd) -> Result<ExitCode> {
    match cmd {
        StorageCmd::Put {
            file,
            shares,
            needed,
            days,
            price,
            key,
            wait_s,
            common,
        } => {
            let kf = load_key(key)?;
            let client = Client::new(&common.gateway)?;
            let data =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            if !(days.is_finite() && days > 0.0 && days <= 3660.0) {
                bail!("--days must be between 0 and 3660");
            }
            let online = client.nodes().map(|n| n.len()).unwrap_or(0);
            let n = match shares {
                Some(n) => n,
                None => (online.clamp(2, 8)) as u16,
            };
            let k = needed.unwrap_or((n / 2).max(1));
            if k == 0 || k >= n {
                bail!("--needed must be at least 1 and below --shares (got {k} of {n})");
            }
            let term_hours = ((days * 24.0).ceil() as u64).max(1);
            let pb = byte_bar(
                data.len() as u64,
                format!("uploading as {n} shares (any {k} rebuild it)"),
                common.json,
            );
            let bar = pb.clone();
            let progress: lode_client::storage::UploadProgress =
                std::sync::Arc::new(move |sent| bar.set_position(sent));
            let r = client.storage_put_with_progress(
                &kf.keypair,
                &data,
                PutOptions {
                    k,
                    n,
                    term_hours,
                    price_per_byte_hour: price,
                },
                Some(progress),
            );
            pb.finish_and_clear();
            let mut v = r.map_err(|e| anyhow::anyhow!("{e}; storage nodes online: {online}"))?;
            let id = v["file"].as_str().unwrap_or_default().to_string();
            let n = v["n"].as_u64().unwrap_or(u64::from(n));
            let live = if wait_s > 0 {
                wait_placed(&client, &id, n, wait_s, common.json)
            } else {
                0
            };
            v["live_shares"] = live.into();
            if common.json {
                println!("{v}");
            } else {
                println!("{id}");
                eprintln!(
                    "stored {} bytes as {} shares of {} bytes (any {} rebuild it); escrow {} base units for {term_hours} h",
                    v["size"],
                    v["n"],
                    v["share_bytes"],
                    v["k"],
                    v["escrow"].as_str().unwrap_or("?")
                );
                if wait_s > 0 && live < n {
                    eprintln!(
                        "{live} of {n} shares are on nodes after {wait_s} s; the gateway keeps placing the rest (see `lode storage status {id}`)"
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        StorageCmd::Get {
            id,
            out,
            key,
            common,
        } => {
            let kf = load_key(key)?;
            let client = Client::new(&common.gateway)?;
            let pb = spinner(format!("reading {id}"), common.json);
            let (data, used) = client.storage_get(&kf.keypair, &id, |i, r| {
                if let Err(e) = r {
                    let line = format!("share {i}: {e}; trying another");
                    if pb.is_hidden() {
                        eprintln!("{line}");
                    } else {
                        pb.println(line);
                    }
                }
            })?;
            pb.finish_and_clear();
            std::fs::write(&out, &data).with_context(|| format!("writing {}", out.display()))?;
            if common.json {
                println!(
                    "{}",
                    serde_json::json!({ "file": id, "out": out, "bytes": data.len(), "shares": used })
                );
            } else {
                eprintln!(
                    "wrote {} bytes to {} (shares {:?}, every chunk checked against its root)",
                    data.len(),
                    out.display(),
                    used
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        StorageCmd::Status { id, common } => {
            let v = Client::new(&common.gateway)?.storage_status(&id)?;
            if common.json {
                println!("{v}");
            } else {
                println!("file       {}", v["file"].as_str().unwrap_or_default());
                println!(
                    "size       {} bytes, k = {}, n = {}",
                    v["manifest"]["size"], v["manifest"]["k"], v["manifest"]["n"]
                );
                println!("live       {} shares", v["live_shares"]);
                println!(
                    "audits     {} passed, {} failed; {} repairs",
                    v["audits_passed"], v["audits_failed"], v["repairs"]
                );
                for s in v["shares"].as_array().into_iter().flatten() {
                    println!(
                        "share {:>2}   {:<8} {}",
                        s["index"],
                        s["state"].as_str().unwrap_or_default(),
                        s["holder"].as_str().unwrap_or("-")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        StorageCmd::Ls { key, common } => {
            let kf = load_key(key)?;
            let v = Client::new(&common.gateway)?.storage_list(&kf.did())?;
            if common.json {
                println!("{v}");
            } else {
                for f in v["files"].as_array().into_iter().flatten() {
                    println!(
                        "{}  {} bytes  {}/{} live{}",
                        f["file"].as_str().unwrap_or_default(),
                        f["size"],
                        f["live_shares"],
                        f["n"],
                        if f["closed"] == true {
                            "  (closed)"
                        } else {
                            ""
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        StorageCmd::Rm { id, key, common } => {
            let kf = load_key(key)?;
            let v = Client::new(&common.gateway)?.storage_delete(&kf.keypair, &id)?;
            if common.json {
                println!("{v}");
            } else {
                eprintln!(
                    "contract of {id} ended; holders delete their shares and the unspent escrow is refunded"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
