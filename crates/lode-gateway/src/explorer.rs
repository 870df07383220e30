//! Read-only ledger views for the dashboard: the block explorer (each block's
//! hash-chain link, validator signature and entries root checked), a node's
//! earnings over time, the contributor leaderboard and the tokenomics summary.
//!
//! Every figure comes from lode-ledger (state, fairness report, emission
//! schedule, block format); this module only selects and shapes it. Token
//! amounts are decimal strings of base units. The core lock is taken only to
//! copy what is needed (block bytes, state figures), never while decoding or
//! checking signatures.

use crate::api_error::ApiError;
use crate::http::App;
use lode_ledger::block::{BLOCK_TAG, encode_entries, entries_root};
use lode_ledger::entry::decode_payload;
use lode_ledger::{
    Amount, Block, BlockHeader, Entry, EventKind, JobEscrow, State, Transfer, Withdraw,
};
use lode_proto::{Did, Signature};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Default and largest number of blocks in one explorer page.
pub const DEFAULT_BLOCKS_PAGE: u64 = 20;
pub const MAX_BLOCKS_PAGE: u64 = 50;
/// Default and largest number of entries shown for one block.
pub const DEFAULT_ENTRIES_PAGE: usize = 100;
pub const MAX_ENTRIES_PAGE: usize = 500;
/// Most earning events returned for one node (the newest).
pub const MAX_EARNING_EVENTS: usize = 500;
/// Most history rows of the operator's account scanned for them.
const HISTORY_SCAN: usize = 5_000;
/// Rows of the contributor leaderboard.
pub const LEADERBOARD_LEN: usize = 20;

/// What was checked about a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BlockCheck {
    /// `prev_hash` is the hash of the block below (all zero for block 0).
    pub link: bool,
    /// Signed by a validator of this chain, and the signature verifies.
    pub signature: bool,
    /// The entries hash to the header's entries root (checked when the
    /// entries are read, i.e. in the block view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries_root: Option<bool>,
    /// Every check above passed.
    pub ok: bool,
}

/// A block's header as the explorer shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BlockSummary {
    pub height: u64,
    pub hash: String,
    pub prev_hash: String,
    pub timestamp_ms: u64,
    pub entry_count: u32,
    pub validator: String,
    pub state_root: String,
    pub entries_root: String,
    pub verification: BlockCheck,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("ledger: {e}"))
}

/// The stored bytes of block `height` (the core lock is held only to copy them).
fn block_bytes(app: &App, height: u64) -> Result<Option<Vec<u8>>, ApiError> {
    app.lock()
        .ledger()
        .store()
        .block_bytes(height)
        .map_err(internal)
}

/// Header and signature of a stored block. A block is encoded as
/// `(header, signature, entries)` in the canonical (postcard) encoding, so the
/// header and signature are a prefix that decodes without the entries.
pub fn header_of(bytes: &[u8]) -> Result<(BlockHeader, Signature), ApiError> {
    postcard::take_from_bytes::<(BlockHeader, Signature)>(bytes)
        .map(|(h, _)| h)
        .map_err(|e| internal(format!("a stored block header does not decode: {e}")))
}

fn read_header(app: &App, height: u64) -> Result<(BlockHeader, Signature), ApiError> {
    let bytes = block_bytes(app, height)?
        .ok_or_else(|| internal(format!("block {height} is missing from the store")))?;
    header_of(&bytes)
}

/// Checks a header's link to the header below it and its signature.
pub fn check_block(
    header: &BlockHeader,
    signature: &Signature,
    below: Option<&BlockHeader>,
    validators: &[Did],
) -> BlockCheck {
    let link = match (header.height, below) {
        (0, _) => header.prev_hash.0 == [0; 32],
        (h, Some(b)) => b.height + 1 == h && b.hash() == header.prev_hash,
        (_, None) => false,
    };
    let signature = validators.contains(&header.validator)
        && header
            .validator
            .verify_tagged(BLOCK_TAG, header.hash().as_bytes(), signature);
    BlockCheck {
        link,
        signature,
        entries_root: None,
        ok: link && signature,
    }
}

fn summary(header: &BlockHeader, verification: BlockCheck) -> BlockSummary {
    BlockSummary {
        height: header.height,
        hash: header.hash().to_hex(),
        prev_hash: header.prev_hash.to_hex(),
        timestamp_ms: header.timestamp_ms,
        entry_count: header.entry_count,
        validator: header.validator.to_string(),
        state_root: header.state_root.to_hex(),
        entries_root: header.entries_root.to_hex(),
        verification,
    }
}

fn head_and_validators(app: &App) -> (u64, Vec<Did>) {
    let core = app.lock();
    let l = core.ledger();
    (l.height(), l.state().genesis().validators.clone())
}

/// Blocks below `before` (default: all), newest first.
pub fn blocks_page(app: &App, before: Option<u64>, limit: Option<u64>) -> Result<Value, ApiError> {
    let (head, validators) = head_and_validators(app);
    let limit = limit
        .unwrap_or(DEFAULT_BLOCKS_PAGE)
        .clamp(1, MAX_BLOCKS_PAGE);
    let top = match before {
        Some(0) => return Ok(json!({ "head": head, "blocks": [], "next_before": null })),
        Some(b) => (b - 1).min(head),
        None => head,
    };
    let bottom = top.saturating_sub(limit - 1);
    let mut headers = BTreeMap::new();
    for h in bottom.saturating_sub(1)..=top {
        headers.insert(h, read_header(app, h)?);
    }
    let blocks: Vec<BlockSummary> = (bottom..=top)
        .rev()
        .filter_map(|h| {
            let (header, sig) = headers.get(&h)?;
            let below = h.checked_sub(1).and_then(|b| headers.get(&b)).map(|x| &x.0);
            Some(summary(
                header,
                check_block(header, sig, below, &validators),
            ))
        })
        .collect();
    Ok(json!({
        "head": head,
        "blocks": blocks,
        "next_before": (bottom > 0).then_some(bottom),
    }))
}

/// Parses a block height from a path segment.
pub fn parse_height(s: &str) -> Result<u64, ApiError> {
    s.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_height",
            format!("{s:?} is not a block height (a non-negative integer)"),
        )
    })
}

/// One block with its entries `offset..offset + limit`, every check done.
pub fn block_view(
    app: &App,
    height: &str,
    offset: Option<usize>,
    limit: Option<usize>,
) -> Result<Value, ApiError> {
    let height = parse_height(height)?;
    let (head, validators) = head_and_validators(app);
    let unknown = || {
        ApiError::not_found(
            "unknown_block",
            format!("no block {height}: the ledger's head is block {head}"),
        )
    };
    if height > head {
        return Err(unknown());
    }
    let bytes = block_bytes(app, height)?.ok_or_else(unknown)?;
    let below = match height.checked_sub(1) {
        Some(h) => Some(read_header(app, h)?.0),
        None => None,
    };
    let block = Block::from_bytes(&bytes).map_err(internal)?;
    let mut check = check_block(&block.header, &block.signature, below.as_ref(), &validators);
    let root_ok = block.entries.len() == block.header.entry_count as usize
        && encode_entries(&block.entries)
            .is_ok_and(|enc| entries_root(&enc) == block.header.entries_root);
    check.entries_root = Some(root_ok);
    check.ok &= root_ok;
    let offset = offset.unwrap_or(0);
    let limit = limit
        .unwrap_or(DEFAULT_ENTRIES_PAGE)
        .clamp(1, MAX_ENTRIES_PAGE);
    let entries: Vec<Value> = block
        .entries
        .iter()
        .enumerate()
        .skip(offset)
        .take(limit)
        .map(|(i, e)| entry_view(i, e, &block.header.validator, check.signature))
        .collect();
    Ok(json!({
        "block": summary(&block.header, check),
        "entries_offset": offset,
        "entries_total": block.entries.len(),
        "entries": entries,
    }))
}

/// Tokens an entry moves (base units), and the fuel a receipt credits.
fn entry_amounts(e: &Entry) -> (Option<Amount>, Option<u64>) {
    match e {
        Entry::Genesis(g) => (Some(g.token.total_supply), None),
        Entry::Transfer(env) => (
            decode_payload::<Transfer>(env)
                .ok()
                .map(|p| p.message.amount),
            None,
        ),
        Entry::JobEscrow(env) => (
            decode_payload::<JobEscrow>(env)
                .ok()
                .map(|p| p.message.amount),
            None,
        ),
        Entry::Withdraw(env) => (
            decode_payload::<Withdraw>(env)
                .ok()
                .map(|p| p.message.amount),
            None,
        ),
        Entry::WorkReceipt(r) => (None, Some(r.amount)),
        Entry::Settlement(s) => (
            Some(
                s.payouts
                    .iter()
                    .fold(s.refund, |acc, p| acc.saturating_add(p.amount)),
            ),
            None,
        ),
        Entry::EpochClose(c) => (Some(c.distributed.saturating_add(c.vested)), None),
        Entry::StorageContract(env) => (
            decode_payload::<lode_ledger::StorageContract>(env)
                .ok()
                .map(|p| p.message.amount),
            None,
        ),
        Entry::Bond(env) => (
            decode_payload::<lode_ledger::Bond>(env)
                .ok()
                .map(|p| p.message.amount),
            None,
        ),
        Entry::Delegate(env) => (
            decode_payload::<lode_ledger::Delegate>(env)
                .ok()
                .map(|p| p.message.amount),
            None,
        ),
        Entry::Unbond(env) => (
            decode_payload::<lode_ledger::Unbond>(env)
                .ok()
                .map(|p| p.message.amount),
            None,
        ),
        Entry::Propose(env) => (
            decode_payload::<lode_ledger::Propose>(env)
                .ok()
                .map(|p| p.message.deposit),
            None,
        ),
        Entry::RegisterNode(_)
        | Entry::Penalty(_)
        | Entry::AdjustNode(_)
        | Entry::ReportCredit(_)
        | Entry::PublishModel(_)
        | Entry::StorageShare(_)
        | Entry::SetCommission(_)
        | Entry::Vote(_)
        | Entry::Slash(_)
        | Entry::Unjail(_)
        | Entry::GatewayBatch(_) => (None, None),
    }
}

/// One entry: who authorized it and whether that checks out. Account entries
/// carry their own signature; validator entries are authorized by the block's.
fn entry_view(index: usize, e: &Entry, validator: &Did, block_signed: bool) -> Value {
    let (signer, authority, verified) = match e.envelope() {
        Some(env) => (env.signer, "account", e.signature_valid()),
        None => (*validator, "validator", block_signed),
    };
    let (amount, fuel) = entry_amounts(e);
    let mut detail = e.to_view();
    json!({
        "index": index,
        "kind": e.kind_name(),
        "signer": signer.to_string(),
        "authority": authority,
        "verified": verified,
        "amount": amount.map(|a| a.to_string()),
        "fuel": fuel,
        "detail": detail["entry"].take(),
    })
}

/// A node's fees and rewards over time, from its operator's ledger history.
pub fn earnings(app: &App, did: &str) -> Result<Value, ApiError> {
    let did: Did = did
        .parse()
        .map_err(|e: lode_proto::DidError| ApiError::bad_request("bad_did", e.to_string()))?;
    let (node, pending, history) = {
        let core = app.lock();
        let st = core.ledger().state();
        let node = st.node(&did).cloned().ok_or_else(|| {
            ApiError::not_found(
                "unknown_node",
                format!("{did} is not a node registered on this ledger"),
            )
        })?;
        let pending = st.pending_earnings(&did);
        let history = core
            .ledger()
            .history(&node.operator, HISTORY_SCAN)
            .map_err(internal)?;
        (node, pending, history)
    };
    // Newest first in the history; keep this node's earnings, oldest first.
    let mut events: Vec<(u64, &'static str, Amount, Value)> = history
        .iter()
        .filter_map(|ev| match &ev.kind {
            EventKind::FeeEarned { job, node, amount } if *node == did => {
                Some((ev.height, "fee", *amount, json!({ "job": job.to_hex() })))
            }
            EventKind::Reward {
                epoch,
                node,
                amount,
                ..
            } if *node == did => Some((ev.height, "reward", *amount, json!({ "epoch": epoch }))),
            _ => None,
        })
        .take(MAX_EARNING_EVENTS)
        .collect();
    let truncated = events.len() == MAX_EARNING_EVENTS || history.len() == HISTORY_SCAN;
    events.reverse();
    let mut times = BTreeMap::new();
    for (h, ..) in &events {
        if !times.contains_key(h) {
            times.insert(*h, read_header(app, *h)?.0.timestamp_ms);
        }
    }
    let mut cumulative: Amount = 0;
    let rows: Vec<Value> = events
        .into_iter()
        .map(|(height, kind, amount, mut extra)| {
            cumulative = cumulative.saturating_add(amount);
            extra["height"] = json!(height);
            extra["time_ms"] = json!(times.get(&height));
            extra["kind"] = json!(kind);
            extra["amount"] = json!(amount.to_string());
            extra["cumulative"] = json!(cumulative.to_string());
            extra
        })
        .collect();
    Ok(json!({
        "node": did.to_string(),
        "operator": node.operator.to_string(),
        "payout": node.payout.to_string(),
        "fees_total": node.fees_total.to_string(),
        "rewards_total": node.rewards_total.to_string(),
        "total": node.fees_total.saturating_add(node.rewards_total).to_string(),
        "receipts": node.receipts,
        "penalties": node.penalties,
        "pending": pending.map(|p| json!({
            "epoch": p.epoch,
            "epoch_ends_at_ms": p.epoch_ends_at_ms,
            "estimated_reward": p.estimated_reward.to_string(),
            "unsettled_fees": p.unsettled_fees.to_string(),
        })),
        "events": rows,
        "truncated": truncated,
    }))
}

/// The nodes that earned the most (fees + rewards), with what they are owed now.
pub fn leaderboard(st: &State, len: usize) -> Vec<Value> {
    let mut nodes: Vec<_> = st
        .nodes()
        .map(|(d, n)| (n.fees_total.saturating_add(n.rewards_total), d, n))
        .collect();
    nodes.sort_by(|a, b| b.0.cmp(&a.0).then(b.2.receipts.cmp(&a.2.receipts)));
    nodes
        .into_iter()
        .take(len)
        .map(|(total, d, n)| {
            let p = st.pending_earnings(d);
            json!({
                "node": d.to_string(),
                "operator": n.operator.to_string(),
                "fees": n.fees_total.to_string(),
                "rewards": n.rewards_total.to_string(),
                "total": total.to_string(),
                "receipts": n.receipts,
                "penalties": n.penalties,
                "estimated_reward": p.as_ref().map_or(0, |p| p.estimated_reward).to_string(),
                "unsettled_fees": p.as_ref().map_or(0, |p| p.unsettled_fees).to_string(),
            })
        })
        .collect()
}

/// Allocations, emission so far and ahead, contributors' share and Gini —
/// the same figures as `lode ledger fairness` and `lode ledger supply`.
pub fn tokenomics(st: &State) -> Value {
    let g = st.genesis();
    let t = st.totals();
    let f = st.fairness();
    let interval = g.emission.halving_interval_epochs.max(1);
    let share_of = |name: &str| f.shares.iter().find(|s| s.allocation == name);
    let allocations: Vec<Value> = g
        .allocations
        .iter()
        .map(|a| {
            let s = share_of(&a.name);
            json!({
                "name": a.name,
                "role": a.role,
                "amount": a.amount.to_string(),
                "unlocked_at_launch": a.unlocked_at_launch.to_string(),
                "cliff_epochs": a.cliff_epochs,
                "vesting_epochs": a.vesting_epochs,
                "beneficiary": a.beneficiary.map(|b| b.to_string()),
                "issued": s.map_or(0, |s| s.issued).to_string(),
                "share_ppm": s.map_or(0, |s| s.share_ppm),
            })
        })
        .collect();
    let contributors_ppm: u64 = f
        .shares
        .iter()
        .filter(|s| s.role == lode_ledger::AllocationRole::Contributors)
        .map(|s| s.share_ppm)
        .sum();
    json!({
        "symbol": g.token.symbol,
        "decimals": g.token.decimals,
        "total_supply": g.token.total_supply.to_string(),
        "epoch": t.epoch,
        "epoch_length_ms": g.epoch.length_ms,
        "epoch_ends_at_ms": st.epoch_end_ms(),
        "epochs_closed": f.epochs_closed,
        "emission": {
            "initial_per_epoch": g.emission.initial_per_epoch.to_string(),
            "halving_interval_epochs": g.emission.halving_interval_epochs,
            "this_epoch": g.scheduled_emission(t.epoch).min(t.pool_remaining).to_string(),
            "next_halving_epoch": (t.epoch / interval + 1).saturating_mul(interval),
            "emitted": t.rewards_paid.to_string(),
            "pool": g.contributors_pool().to_string(),
            "pool_remaining": t.pool_remaining.to_string(),
        },
        "fees_paid": t.fees_paid.to_string(),
        "issued": f.issued.to_string(),
        "contributors_share_ppm": contributors_ppm,
        "stakers_issued": f.stakers_issued.to_string(),
        "stakers_share_ppm": f.stakers_share_ppm,
        // Formatted exactly as `lode ledger fairness` prints it.
        "gini": format!("{:.4}", f.contributor_gini),
        "rewarded_nodes": f.rewarded_nodes,
        "registered_nodes": f.registered_nodes,
        "supply": st.supply(),
        "allocations": allocations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_ledger::block::BLOCK_VERSION;
    use lode_proto::{Hash32, Keypair};

    fn block(key: &Keypair, height: u64, prev: Hash32) -> Block {
        let header = BlockHeader {
            version: BLOCK_VERSION,
            height,
            timestamp_ms: 1_000 + height,
            prev_hash: prev,
            entries_root: entries_root(&[]),
            entry_count: 0,
            state_root: Hash32::sha256(b"state"),
            validator: key.did(),
        };
        Block::seal(header, vec![], key)
    }

    #[test]
    fn header_prefix_decodes_from_stored_bytes() {
        let k = Keypair::from_secret_bytes(&[7; 32]);
        let b = block(&k, 3, Hash32::sha256(b"p"));
        let (h, sig) = header_of(&b.to_bytes().unwrap()).unwrap();
        assert_eq!(h, b.header);
        assert_eq!(sig, b.signature);
        assert!(header_of(&[1, 2, 3]).is_err());
    }

    #[test]
    fn checks_link_and_signature() {
        let k = Keypair::from_secret_bytes(&[7; 32]);
        let other = Keypair::from_secret_bytes(&[8; 32]);
        let vals = [k.did()];
        let g = block(&k, 0, Hash32([0; 32]));
        let b1 = block(&k, 1, g.hash());
        assert!(check_block(&g.header, &g.signature, None, &vals).ok);
        let c = check_block(&b1.header, &b1.signature, Some(&g.header), &vals);
        assert_eq!((c.link, c.signature, c.ok), (true, true, true));
        // Broken link: the block below is another one.
        let wrong = block(&k, 0, Hash32::sha256(b"x"));
        let c = check_block(&b1.header, &b1.signature, Some(&wrong.header), &vals);
        assert_eq!((c.link, c.signature, c.ok), (false, true, false));
        // No block below a non-genesis block: the link is not shown to hold.
        assert!(!check_block(&b1.header, &b1.signature, None, &vals).link);
        // Signed by a key that is not a validator of the chain.
        let b2 = block(&other, 1, g.hash());
        let c = check_block(&b2.header, &b2.signature, Some(&g.header), &vals);
        assert_eq!((c.link, c.signature), (true, false));
        // Tampered header: the signature no longer verifies.
        let mut t = b1.clone();
        t.header.timestamp_ms += 1;
        assert!(!check_block(&t.header, &t.signature, Some(&g.header), &vals).signature);
    }

    #[test]
    fn bad_heights_are_bad_requests() {
        for s in ["-1", "x", "1.5", "", "99999999999999999999999"] {
            let e = parse_height(s).unwrap_err();
            assert_eq!((e.status, e.code), (400, "bad_height"), "{s:?}");
        }
        assert_eq!(parse_height("42").unwrap(), 42);
    }
}
