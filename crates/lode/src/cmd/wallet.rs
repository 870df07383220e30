//! `lode wallet`: balances, pending earnings, history, claim proofs and
//! withdrawals. With `--gateway URL` (or `LODE_GATEWAY`) everything goes
//! over the network and nothing is needed locally but the key; with
//! `--data-dir` (an auditor's ledger copy, read-only) it reads the ledger
//! directly and `withdraw` only signs.

use super::ledger::LedgerDir;
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use lode_client::{Client, EntryStatus};
use lode_ledger::{ClaimProof, Entry, Event, EventKind, Withdraw, format_tokens, parse_amount};
use lode_proto::{Did, EvmAddress, KeyFile};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Where the wallet reads: a gateway, or a local ledger directory.
#[derive(Debug, Clone, Args)]
pub struct Source {
    /// Gateway URL: ask the network; nothing local is needed but the key.
    /// `--data-dir` (or LODE_LEDGER_DIR) takes precedence when given.
    #[arg(long, env = "LODE_GATEWAY", value_name = "URL")]
    pub gateway: Option<String>,
    #[command(flatten)]
    pub at: LedgerDir,
}

impl Source {
    /// The gateway client, unless a ledger directory was named (or neither:
    /// then the default ledger directory is read).
    fn client(&self) -> Result<Option<Client>> {
        if self.at.data_dir.is_some() {
            return Ok(None);
        }
        match &self.gateway {
            Some(url) => Ok(Some(Client::new(url)?)),
            None => Ok(None),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum WalletCmd {
    /// Balance of a did:key account (with its node's pending earnings), or
    /// what a 0x payout address can claim on EVM chains.
    Balance {
        /// did:key:… or 0x… (EIP-55 or all one case)
        account: String,
        #[command(flatten)]
        at: Source,
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
        at: Source,
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
        at: Source,
        #[arg(long)]
        json: bool,
    },
    /// Withdraw: the balance leaves the network to an EVM address, claimable
    /// from the claim contract once the epoch's root is published. With
    /// `--gateway`: signs, submits, and follows the entry (pending → block H →
    /// claimable from epoch E's root, with the proof). With `--data-dir`: only
    /// signs and prints the entry (POST it to a gateway's /v1/entries).
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
        /// Write the entry to this file instead of stdout (signing only).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Return once the entry is durable on the ledger instead of following
        /// it until its epoch's root is published.
        #[arg(long)]
        no_follow: bool,
        /// Stop following after this many seconds (the entry stays on the ledger).
        #[arg(long, default_value_t = 900, value_name = "SECS")]
        follow_timeout: u64,
        #[command(flatten)]
        at: Source,
        /// One JSON object on stdout: the signed entry (signing only) or the
        /// entry's final status with its proof (with --gateway).
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: WalletCmd) -> Result<ExitCode> {
    match cmd {
        WalletCmd::Balance { account, at, json } => match at.client()? {
            Some(c) => balance_online(&c, &account, json),
            None => balance(&account, &at.at, json),
        },
        WalletCmd::Proof {
            address,
            epoch,
            at,
            json,
        } => {
            let p = match at.client()? {
                Some(c) => c.claim_proof(&address, epoch)?,
                None => at.at.open()?.claim_proof(&address, epoch)?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                print_proof(&p);
                println!("(--json prints it for a claim transaction)");
            }
            Ok(ExitCode::SUCCESS)
        }
        WalletCmd::History {
            account,
            limit,
            at,
            json,
        } => {
            let events = match at.client()? {
                Some(c) => c.history(&account, limit)?.events,
                None => at.at.open()?.history(&account, limit)?,
            };
            history(&account, &events, json)
        }
        WalletCmd::Withdraw {
            amount,
            to,
            key,
            nonce,
            out,
            no_follow,
            follow_timeout,
            at,
            json,
        } => {
            let w = WithdrawArgs {
                amount,
                to,
                key,
                nonce,
                json,
            };
            match at.client()? {
                Some(c) if out.is_none() => withdraw_online(&c, w, no_follow, follow_timeout),
                client => withdraw(w, out, client.as_ref(), &at.at),
            }
        }
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
    if let Some(p) = &pending {
        print_pending(p);
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
        EventKind::ReportCredited {
            amount,
            weight,
            detail,
            ..
        } => format!("report credited ({amount} unit, weight {weight}): {detail}"),
        EventKind::Bonded { target, .. } => format!("bonded behind {target}"),
        EventKind::UnbondStarted {
            target,
            liquid_after_epoch,
            ..
        } => format!("unbonding from {target} (liquid at the close of epoch {liquid_after_epoch})"),
        EventKind::UnbondReleased { target, .. } => format!("unbonded from {target}"),
        EventKind::CommissionSet { target, bps } => {
            format!("commission of {target} set to {bps} bps")
        }
        EventKind::StakingReward {
            epoch,
            target,
            commission,
            ..
        } => {
            let what = if *commission {
                "commission"
            } else {
                "staking reward"
            };
            format!("epoch {epoch} {what} for stake behind {target}")
        }
        EventKind::Slashed {
            target,
            reason,
            fraction_bps,
            amount,
        } => format!(
            "stake behind {target} slashed {fraction_bps} bps ({reason:?}): {} to the treasury",
            format_tokens(*amount)
        ),
        EventKind::ProposalSubmitted { proposal, .. } => {
            format!("deposit of proposal {proposal}")
        }
        EventKind::Voted { proposal, option } => format!("voted {option:?} on proposal {proposal}"),
        EventKind::Unjailed { epoch } => format!("unjailed in epoch {epoch}"),
        EventKind::DepositReturned { proposal, .. } => {
            format!("deposit of proposal {proposal} returned")
        }
        EventKind::TreasuryPaid { proposal, .. } => {
            format!("treasury spend of proposal {proposal}")
        }
    }
}

fn print_proof(p: &ClaimProof) {
    println!("{}", p.address);
    println!(
        "claimable (cumulative)  {} ({} base units)",
        format_tokens(p.amount.parse().unwrap_or(0)),
        p.amount
    );
    println!("epoch                   {}", p.epoch);
    println!("chain id                {}", p.chain_id);
    println!("claims root             {}", p.root);
    println!("leaf                    {}", p.leaf);
    for (i, h) in p.proof.iter().enumerate() {
        println!("proof[{i}]{:pad$}{h}", "", pad = 15 - i.to_string().len());
    }
}

fn parse_account(account: &str) -> Result<Result<Did, EvmAddress>> {
    if account.starts_with("0x") || account.starts_with("0X") {
        let addr: EvmAddress = account.parse().context("not a valid EVM address")?;
        return Ok(Err(addr));
    }
    let did: Did = account
        .parse()
        .map_err(|e| anyhow!("{account:?} is neither a did:key nor a 0x address: {e}"))?;
    Ok(Ok(did))
}

fn balance_online(c: &Client, account: &str, json: bool) -> Result<ExitCode> {
    match parse_account(account)? {
        Err(addr) => {
            let v = c.address(&addr)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            let amount = |s: &str| format_tokens(s.parse().unwrap_or(0));
            println!("{}", v.address);
            println!(
                "withdrawn to it (cumulative)  {}",
                amount(&v.withdrawn_cumulative)
            );
            match v.published_epoch {
                Some(e) => println!(
                    "claimable per epoch {e} root  {} (`lode wallet proof {} --gateway {}`)",
                    amount(&v.claimable_cumulative),
                    v.address,
                    c.base_url()
                ),
                None => println!("no epoch closed yet: nothing published"),
            }
            if v.unpublished != "0" {
                println!(
                    "in the next root            {} more (the epoch closes at {} ms)",
                    amount(&v.unpublished),
                    v.next_root_at_ms
                );
            }
            for n in v.nodes {
                println!("payout address of node {n}");
            }
        }
        Ok(did) => {
            let v = c.account(&did)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{did}");
            println!(
                "balance       {}",
                format_tokens(v.balance.parse().unwrap_or(0))
            );
            println!("next nonce    {}", v.next_nonce);
            if let Some(p) = &v.pending {
                print_pending(p);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn history(account: &Did, events: &[Event], json: bool) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(ExitCode::SUCCESS);
    }
    if events.is_empty() {
        println!("no history for {account}");
    }
    for e in events {
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

struct WithdrawArgs {
    amount: String,
    to: Option<EvmAddress>,
    key: Option<PathBuf>,
    nonce: Option<u64>,
    json: bool,
}

/// The key, amount and destination of a withdrawal, checked locally.
fn withdraw_params(w: &WithdrawArgs) -> Result<(KeyFile, u128, EvmAddress)> {
    let amount = parse_amount(&w.amount)?;
    if amount == 0 {
        bail!("--amount must be positive");
    }
    let key = w.key.clone().unwrap_or_else(super::keys::default_key_path);
    let kf = KeyFile::load(&key)?;
    let to =
        w.to.or(kf.payout_address)
            .ok_or_else(|| anyhow!("no --to address and the key file has no payout address"))?;
    if to.0 == [0; 20] {
        bail!("--to is the zero address: tokens withdrawn there can never be claimed");
    }
    Ok((kf, amount, to))
}

/// Signs a withdrawal (chain, nonce and balance from the gateway, or from a
/// local ledger copy) and prints (or writes) it.
fn withdraw(
    w: WithdrawArgs,
    out: Option<PathBuf>,
    client: Option<&Client>,
    at: &LedgerDir,
) -> Result<ExitCode> {
    let (kf, amount, to) = withdraw_params(&w)?;
    let did = kf.did();
    let (chain, balance, next) = match client {
        Some(c) => {
            let a = c.account(&did)?;
            (c.chain_id()?, a.balance.parse().unwrap_or(0), a.next_nonce)
        }
        None => {
            let view = at.open()?;
            let st = view.state();
            (st.chain_id(), st.balance(&did), st.next_nonce(&did))
        }
    };
    if balance < amount {
        bail!(
            "{did} has {} in the ledger, less than {}",
            format_tokens(balance),
            format_tokens(amount)
        );
    }
    let nonce = w.nonce.unwrap_or(next);
    let m = Withdraw { chain, to, amount };
    let entry = Entry::sign(&kf.keypair, nonce, lode_client::now_ms(), &m)?;
    let text = if w.json {
        serde_json::to_string(&entry)?
    } else {
        serde_json::to_string_pretty(&entry)?
    };
    let summary = format!(
        "signed a withdrawal of {} from {did} to {to} (nonce {nonce})",
        format_tokens(amount)
    );
    let submit = "submit it with `curl --data @FILE $LODE_GATEWAY/v1/entries` \
                  (or withdraw with `lode wallet withdraw --gateway URL` instead)";
    match out {
        Some(p) => {
            std::fs::write(&p, text + "\n").with_context(|| format!("writing {}", p.display()))?;
            if !w.json {
                eprintln!("{summary} into {}; {submit}", p.display());
            }
        }
        None => {
            println!("{text}");
            if !w.json {
                eprintln!("{summary}; {submit}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Signs, submits and follows a withdrawal through a gateway.
fn withdraw_online(
    c: &Client,
    w: WithdrawArgs,
    no_follow: bool,
    follow_timeout_s: u64,
) -> Result<ExitCode> {
    let (kf, amount, to) = withdraw_params(&w)?;
    let did = kf.did();
    let acct = c.account(&did)?;
    let balance: u128 = acct.balance.parse().unwrap_or(0);
    if balance < amount {
        bail!(
            "{did} has {} on the network, less than {}",
            format_tokens(balance),
            format_tokens(amount)
        );
    }
    let entry = c.sign_withdraw(&kf.keypair, to, amount, w.nonce.or(Some(acct.next_nonce)))?;
    let say = |m: String| {
        if !w.json {
            println!("{m}");
        }
    };
    let nonce = entry
        .envelope()
        .and_then(|e| lode_ledger::entry::decode_payload::<Withdraw>(e).ok())
        .map_or(0, |p| p.nonce);
    say(format!(
        "withdrawing {} from {did} to {to} (nonce {nonce}): pending",
        format_tokens(amount)
    ));
    let mut st = c.submit_entry(&entry)?;
    if let Some(h) = st.height {
        say(format!("included in block {h} (durable)"));
    }
    let deadline = Instant::now() + Duration::from_secs(follow_timeout_s);
    let mut announced = false;
    while !no_follow && st.status != "claimable" {
        if Instant::now() >= deadline {
            say(format!(
                "stopped following after {follow_timeout_s} s; the withdrawal is on the ledger: \
                 `lode wallet proof {to} --gateway {}` once epoch {} closes",
                c.base_url(),
                st.epoch.unwrap_or(0)
            ));
            break;
        }
        if !announced && let (Some(e), Some(end)) = (st.epoch, st.epoch_ends_at_ms) {
            let wait = end.saturating_sub(lode_client::now_ms());
            say(format!(
                "waiting for epoch {e} to close (in about {} s) and publish its claims root",
                wait.div_ceil(1000)
            ));
            announced = true;
        }
        std::thread::sleep(Duration::from_millis(500));
        st = c.entry_status(&did, nonce)?;
    }
    if w.json {
        println!("{}", serde_json::to_string(&st)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_claimable(&st, c);
    Ok(ExitCode::SUCCESS)
}

fn print_claimable(st: &EntryStatus, c: &Client) {
    let (Some(e), Some(p)) = (st.claimable_from_epoch, &st.proof) else {
        return;
    };
    println!(
        "claimable from epoch {e}'s root: {} cumulative for {} (root {})",
        format_tokens(p.amount.parse().unwrap_or(0)),
        p.address,
        p.root
    );
    println!(
        "proof ready: `lode wallet proof {} --gateway {} --json`, then claim(account, cumulative, proof) on the claim contract",
        p.address,
        c.base_url()
    );
}

/// The open epoch's line of `wallet balance`: weight and what it would earn now.
fn print_pending(p: &lode_ledger::PendingEarnings) {
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
