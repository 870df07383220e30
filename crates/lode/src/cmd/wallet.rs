//! `lode wallet`: balances, pending earnings, history, claim proofs and
//! signed withdrawals. Reads the ledger read-only (see `lode ledger --help`
//! for `--data-dir`).

use super::ledger::LedgerDir;
use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use lode_ledger::{Entry, EventKind, Withdraw, format_tokens, parse_amount};
use lode_proto::{Did, EvmAddress, KeyFile};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum WalletCmd {
    /// Balance of a did:key account (with its node's pending earnings), or
    /// what a 0x payout address can claim on EVM chains.
    Balance {
        /// did:key:… or 0x… (EIP-55 or all one case)
        account: String,
        #[command(flatten)]
        at: LedgerDir,
        #[arg(long)]
        json: bool,
    },
    /// The claim proof of a payout address (JSON): cumulative amount, leaf,
    /// root and OpenZeppelin Merkle proof, for a claim contract paying
    /// `cumulative − already_claimed`.
    Proof {
        address: EvmAddress,
        /// Epoch whose published tree to use [default: the last closed epoch].
        #[arg(long)]
        epoch: Option<u64>,
        #[command(flatten)]
        at: LedgerDir,
        /// Print the proof as JSON (for a claim transaction) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Recent balance changes of an account, newest first, with their reasons.
    History {
        account: Did,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        at: LedgerDir,
        #[arg(long)]
        json: bool,
    },
    /// Sign a withdrawal (balance leaves the network to an EVM address) with
    /// your key file and print the signed entry as JSON, to hand to the
    /// gateway (or `lode ledger submit` on the validator).
    Withdraw {
        /// Amount: base units, or `"<n> LODE"`.
        #[arg(long)]
        amount: String,
        /// EVM address to credit [default: the key file's payout address].
        #[arg(long)]
        to: Option<EvmAddress>,
        /// Key file of the account [default: $LODE_HOME/identity.key].
        #[arg(long)]
        key: Option<PathBuf>,
        /// Sequence number [default: the account's next nonce in the ledger].
        #[arg(long)]
        nonce: Option<u64>,
        /// Write the entry to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        at: LedgerDir,
        /// Print only the signed entry, as one line of JSON (no summary on stderr).
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: WalletCmd) -> Result<ExitCode> {
    match cmd {
        WalletCmd::Balance { account, at, json } => balance(&account, &at, json),
        WalletCmd::Proof {
            address,
            epoch,
            at,
            json,
        } => {
            let view = at.open()?;
            let p = view.claim_proof(&address, epoch)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                println!("{}", p.address);
                println!(
                    "claimable (cumulative)  {} ({} base units)",
                    format_tokens(p.amount.parse().unwrap_or(0)),
                    p.amount
                );
                println!("epoch                   {}", p.epoch);
                println!("claims root             {}", p.root);
                println!("leaf                    {}", p.leaf);
                for (i, h) in p.proof.iter().enumerate() {
                    println!("proof[{i}]{:pad$}{h}", "", pad = 15 - i.to_string().len());
                }
                println!("(--json prints it for a claim transaction)");
            }
            Ok(ExitCode::SUCCESS)
        }
        WalletCmd::History {
            account,
            limit,
            at,
            json,
        } => history(&account, limit, &at, json),
        WalletCmd::Withdraw {
            amount,
            to,
            key,
            nonce,
            out,
            at,
            json,
        } => withdraw(&amount, to, key, nonce, out, &at, json),
    }
}

fn balance(account: &str, at: &LedgerDir, json: bool) -> Result<ExitCode> {
    let view = at.open()?;
    let st = view.state();
    if account.starts_with("0x") || account.starts_with("0X") {
        let addr: EvmAddress = account.parse().context("not a valid EVM address")?;
        let cumulative = st.claimed_total(&addr);
        let last = st.epoch().checked_sub(1);
        let published = match last {
            Some(e) => view
                .claim_proof(&addr, Some(e))
                .ok()
                .and_then(|p| p.amount.parse::<u128>().ok()),
            None => None,
        };
        let nodes: Vec<Did> = st
            .nodes()
            .filter(|(_, n)| n.payout == addr)
            .map(|(d, _)| *d)
            .collect();
        if json {
            let v = serde_json::json!({
                "address": addr,
                "withdrawn_cumulative": cumulative.to_string(),
                "published_epoch": last,
                "published_cumulative": published.map(|p| p.to_string()),
                "nodes": nodes,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!("{addr}");
            println!(
                "withdrawn to it (cumulative)  {}",
                format_tokens(cumulative)
            );
            match (last, published) {
                (Some(e), Some(p)) => println!(
                    "claimable per epoch {e} root  {} (`lode wallet proof {addr}`)",
                    format_tokens(p)
                ),
                (Some(e), None) => println!("not in the claims tree of epoch {e}"),
                (None, _) => println!("no epoch closed yet: nothing published"),
            }
            for n in nodes {
                println!("payout address of node {n}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let did: Did = account
        .parse()
        .map_err(|e| anyhow!("{account:?} is neither a did:key nor a 0x address: {e}"))?;
    let acct = st.account(&did).cloned().unwrap_or_default();
    let node = st.node(&did).cloned();
    let pending = st.pending_earnings(&did);
    let operated: Vec<Did> = st
        .nodes()
        .filter(|(d, n)| n.operator == did && **d != did)
        .map(|(d, _)| *d)
        .collect();
    if json {
        let v = serde_json::json!({
            "account": did,
            "balance": acct.balance.to_string(),
            "nonce": acct.nonce,
            "node": node,
            "pending": pending,
            "operates": operated,
            "height": st.height(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{did}");
    println!("balance       {}", format_tokens(acct.balance));
    println!("next nonce    {}", acct.nonce);
    if let Some(n) = node {
        println!("node          operator {}, payout {}", n.operator, n.payout);
        println!(
            "              rewards {} and fees {} so far, {} receipts, {} penalties, multiplier {}",
            format_tokens(n.rewards_total),
            format_tokens(n.fees_total),
            n.receipts,
            n.penalties,
            super::ledger::ppm(u64::from(n.reward_bps) * 100)
        );
    }
    if let Some(p) = pending {
        println!(
            "epoch {}      weight {} of {} (effective); if it closed now: {} (+ {} unsettled fees); closes at {} ms",
            p.epoch,
            p.effective_weight,
            p.total_effective_weight,
            format_tokens(p.estimated_reward),
            format_tokens(p.unsettled_fees),
            p.epoch_ends_at_ms
        );
    }
    for n in operated {
        println!("operates      {n}");
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(kind: &EventKind) -> String {
    match kind {
        EventKind::GenesisUnlock { allocation, .. } => {
            format!("unlocked at genesis ({allocation})")
        }
        EventKind::Vested {
            allocation, epoch, ..
        } => {
            format!("vested from {allocation} at the close of epoch {epoch}")
        }
        EventKind::Sent { to, memo, .. } => format!("sent to {to} {memo:?}"),
        EventKind::Received { from, memo, .. } => format!("received from {from} {memo:?}"),
        EventKind::EscrowLocked {
            job,
            price_per_unit,
            ..
        } => format!("escrow for job {job} at {price_per_unit} per unit"),
        EventKind::Refunded { job, .. } => format!("escrow refund of job {job}"),
        EventKind::FeeEarned { job, node, .. } => format!("fees of node {node} for job {job}"),
        EventKind::Reward {
            epoch,
            node,
            weight,
            total_weight,
            ..
        } => format!("epoch {epoch} reward of node {node}: weight {weight} of {total_weight}"),
        EventKind::Withdrawn { to, .. } => format!("withdrawn to {to}"),
        EventKind::NodeRegistered {
            node,
            operator,
            payout,
        } => format!("node {node} registered (operator {operator}, payout {payout})"),
        EventKind::Penalized {
            reason,
            forfeited_weight,
            detail,
            ..
        } => format!(
            "penalty {}: forfeited weight {forfeited_weight}: {detail}",
            reason.as_str()
        ),
        EventKind::RewardWeightSet {
            reward_bps, reason, ..
        } => format!("reward multiplier set to {reward_bps} bps: {reason}"),
    }
}

fn history(account: &Did, limit: usize, at: &LedgerDir, json: bool) -> Result<ExitCode> {
    let view = at.open()?;
    let events = view.history(account, limit)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(ExitCode::SUCCESS);
    }
    if events.is_empty() {
        println!("no history for {account}");
    }
    for e in &events {
        let (credit, debit) = e.kind.balance_delta();
        let delta = if credit > 0 {
            format!("+{}", format_tokens(credit))
        } else if debit > 0 {
            format!("-{}", format_tokens(debit))
        } else {
            String::new()
        };
        println!(
            "block {:>6} #{:<4} {:>36}  {}",
            e.height,
            e.index,
            delta,
            describe(&e.kind)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn withdraw(
    amount: &str,
    to: Option<EvmAddress>,
    key: Option<PathBuf>,
    nonce: Option<u64>,
    out: Option<PathBuf>,
    at: &LedgerDir,
    json: bool,
) -> Result<ExitCode> {
    let amount = parse_amount(amount)?;
    if amount == 0 {
        bail!("--amount must be positive");
    }
    let key = key.unwrap_or_else(super::keys::default_key_path);
    let kf = KeyFile::load(&key)?;
    let to = to
        .or(kf.payout_address)
        .ok_or_else(|| anyhow!("no --to address and the key file has no payout address"))?;
    let view = at.open()?;
    let st = view.state();
    let did = kf.did();
    let balance = st.balance(&did);
    if balance < amount {
        bail!(
            "{did} has {} in the ledger, less than {}",
            format_tokens(balance),
            format_tokens(amount)
        );
    }
    let nonce = nonce.unwrap_or_else(|| st.next_nonce(&did));
    let m = Withdraw {
        chain: st.chain_id(),
        to,
        amount,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let entry = Entry::sign(&kf.keypair, nonce, now, &m)?;
    let text = if json {
        serde_json::to_string(&entry)?
    } else {
        serde_json::to_string_pretty(&entry)?
    };
    let summary = format!(
        "signed a withdrawal of {} from {did} to {to} (nonce {nonce})",
        format_tokens(amount)
    );
    match out {
        Some(p) => {
            std::fs::write(&p, text + "\n").with_context(|| format!("writing {}", p.display()))?;
            if !json {
                eprintln!("{summary} into {}", p.display());
            }
        }
        None => {
            println!("{text}");
            if !json {
                eprintln!("{summary}; the validator applies it (`lode ledger submit`)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
