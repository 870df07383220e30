//! Slashing (model: Cosmos SDK x/slashing, with proofs checked on the ledger).
//!
//! A [`Slash`] is validator-authored (like a `Penalty`) but carries evidence
//! the ledger checks itself:
//!
//! * `DoubleSign`: two block headers at one height with different hashes,
//!   both signed by `who` (block signatures verified here), or, on a
//!   replicated chain, two consensus votes of `who` at one height, round and
//!   type for different blocks (`DoubleVote`). Jails and tombstones; a
//!   validator with no stake behind it is recorded jailed and tombstoned
//!   (nothing to take, but the chain remembers).
//! * `Downtime`: `who` is a validator that signed fewer than half the blocks
//!   it was expected to in a closed epoch (the figures are the validator's
//!   statement; they are checked for consistency only). Jails.
//! * `ProvenFault`: `who` is a node and the evidence holds a
//!   [`ResultClaim`] *signed by the node* whose result differs from the
//!   unit's accepted result, and the validator's own deterministic
//!   re-execution (`referee`) equals the accepted result. A node that never
//!   signed a wrong result cannot be slashed: its key is needed, and losing a
//!   quorum race is not a fault (see docs/design/staking.md).
//!
//! The slash takes `floor(amount × fraction_bps / 10,000)` from every
//! delegation behind `who` and every unbonding entry from it (each floored
//! separately; the offender's stakers keep the sub-unit remainders) and moves
//! the sum to the treasury. `fraction_bps` is 1 up to the genesis cap for the
//! reason.

use super::{EntryCtx, EventKind, State, add, sub};
use crate::amount::Amount;
use crate::block::BLOCK_TAG;
use crate::entry::{FULL_BPS, ResultClaim, Slash, SlashEvidence, SlashReason, decode_payload};
use crate::error::EntryError;
use crate::rewards::mul_div_floor;
use lode_proto::{Did, Message};

impl State {
    fn check_evidence(&self, s: &Slash) -> Result<(), EntryError> {
        let bad = |m: &str| Err(EntryError::BadEvidence(m.to_string()));
        let is_validator =
            self.genesis.validators.contains(&s.who) || self.validator_set().contains(&s.who);
        match (&s.reason, &s.evidence) {
            (SlashReason::DoubleSign, SlashEvidence::DoubleSign { a, sig_a, b, sig_b }) => {
                if a.height != b.height {
                    return bad("the headers are at different heights");
                }
                let (ha, hb) = (a.hash(), b.hash());
                if ha == hb {
                    return bad("the headers are the same block");
                }
                if a.validator != s.who || b.validator != s.who {
                    return bad("a header is not the offender's");
                }
                if !s.who.verify_tagged(BLOCK_TAG, ha.as_bytes(), sig_a)
                    || !s.who.verify_tagged(BLOCK_TAG, hb.as_bytes(), sig_b)
                {
                    return bad("a block signature does not verify");
                }
                Ok(())
            }
            (
                SlashReason::DoubleSign,
                SlashEvidence::DoubleVote {
                    vote,
                    height,
                    round,
                    a,
                    sig_a,
                    b,
                    sig_b,
                },
            ) => {
                let in_set = self
                    .genesis
                    .consensus
                    .as_ref()
                    .is_some_and(|c| c.validators.iter().any(|v| v.did == s.who));
                if !(is_validator || in_set) {
                    return bad("not a validator");
                }
                if a == b {
                    return bad("the votes are for the same block");
                }
                if *height > self.totals.height + 1 {
                    return bad("the votes are for a future height");
                }
                let ok = |block: &Option<lode_proto::Hash32>, sig| {
                    let body = crate::consensus::VoteBody {
                        chain: self.chain_id,
                        vote: *vote,
                        height: *height,
                        round: *round,
                        block: *block,
                        validator: s.who,
                    };
                    s.who.verify_tagged(
                        crate::consensus::VOTE_TAG,
                        &crate::consensus::vote_sign_bytes(&body),
                        sig,
                    )
                };
                if !ok(a, sig_a) || !ok(b, sig_b) {
                    return bad("a vote signature does not verify");
                }
                Ok(())
            }
            (
                SlashReason::Downtime,
                SlashEvidence::Downtime {
                    epoch,
                    signed,
                    expected,
                },
            ) => {
                if !is_validator {
                    return bad("not a validator");
                }
                if *epoch >= self.totals.epoch {
                    return bad("the epoch is not closed");
                }
                if signed.saturating_mul(2) >= *expected {
                    return bad("signed at least half of the expected blocks");
                }
                Ok(())
            }
            (
                SlashReason::ProvenFault,
                SlashEvidence::ProvenFault {
                    claim,
                    accepted,
                    referee,
                },
            ) => {
                if !self.nodes.contains_key(&s.who) {
                    return bad("not a registered node");
                }
                if claim.signer != s.who
                    || claim.kind != ResultClaim::KIND
                    || !s
                        .who
                        .verify_tagged(ResultClaim::KIND, &claim.payload, &claim.signature)
                {
                    return bad("the result claim is not signed by the node");
                }
                let c = decode_payload::<ResultClaim>(claim)
                    .map_err(|e| EntryError::BadEvidence(e.to_string()))?;
                self.check_chain(&c.message.chain)?;
                if c.message.result == *accepted {
                    return bad("the node's result is the accepted one");
                }
                if referee != accepted {
                    return bad(
                        "the validator's re-execution does not confirm the accepted result",
                    );
                }
                Ok(())
            }
            _ => bad("the evidence does not match the reason"),
        }
    }

    pub(super) fn apply_slash(&mut self, s: &Slash, ctx: &EntryCtx) -> Result<(), EntryError> {
        let params = self
            .genesis
            .staking
            .clone()
            .ok_or(EntryError::StakingDisabled)?;
        let max = match s.reason {
            SlashReason::DoubleSign => params.double_sign_slash_bps,
            SlashReason::Downtime => params.downtime_slash_bps,
            SlashReason::ProvenFault => params.fault_slash_bps,
        }
        .min(FULL_BPS);
        if s.fraction_bps == 0 || s.fraction_bps > max {
            return Err(EntryError::SlashFraction {
                bps: s.fraction_bps,
                max,
            });
        }
        let mut target = match self.staking.targets.get(&s.who) {
            Some(t) => t.clone(),
            // A validator nobody staked on still double signed: recorded.
            None if matches!(s.evidence, SlashEvidence::DoubleVote { .. }) => {
                crate::state::StakeTarget::default()
            }
            None => return Err(EntryError::UnknownStakeTarget(s.who)),
        };
        if s.reason == SlashReason::DoubleSign && target.tombstoned {
            return Err(EntryError::BadEvidence(
                "already slashed for double signing".into(),
            ));
        }
        self.check_evidence(s)?;
        let cut = |a: Amount| {
            mul_div_floor(a, s.fraction_bps.into(), FULL_BPS.into())
                .ok_or(EntryError::Overflow("slash"))
        };
        let bonded: Vec<((Did, Did), Amount)> = self
            .staking
            .delegations
            .iter()
            .filter(|((t, _), _)| *t == s.who)
            .map(|(k, a)| (*k, *a))
            .collect();
        let mut from_bonded: Amount = 0;
        for (k, a) in bonded {
            let x = cut(a)?;
            if x == 0 {
                continue;
            }
            from_bonded += x;
            if a == x {
                self.staking.delegations.remove(&k);
            } else {
                self.staking.delegations.insert(k, a - x);
            }
            self.push_slash_event(ctx, k.1, s, x);
        }
        let unbonding: Vec<((u64, Did, Did), Amount)> = self
            .staking
            .unbonding
            .iter()
            .filter(|((_, t, _), _)| *t == s.who)
            .map(|(k, a)| (*k, *a))
            .collect();
        let mut from_unbonding: Amount = 0;
        for (k, a) in unbonding {
            let x = cut(a)?;
            if x == 0 {
                continue;
            }
            from_unbonding += x;
            if a == x {
                self.staking.unbonding.remove(&k);
            } else {
                self.staking.unbonding.insert(k, a - x);
            }
            self.push_slash_event(ctx, k.2, s, x);
        }
        let total = add(from_bonded, from_unbonding, "slashed")?;
        target.power = sub(target.power, from_bonded, "target power")?;
        target.slashed_total = add(target.slashed_total, total, "slashed total")?;
        match s.reason {
            SlashReason::DoubleSign => {
                self.note_jailed(s.who, &mut target);
                target.tombstoned = true;
            }
            SlashReason::Downtime => self.note_jailed(s.who, &mut target),
            SlashReason::ProvenFault => target.penalized_epoch = Some(self.totals.epoch),
        }
        self.staking.targets.insert(s.who, target);
        let mut g = self.staking_globals();
        g.bonded = sub(g.bonded, from_bonded, "bonded total")?;
        g.unbonding = sub(g.unbonding, from_unbonding, "unbonding total")?;
        g.treasury = add(g.treasury, total, "treasury")?;
        self.set_globals(g);
        if let Some(n) = self.nodes.get(&s.who) {
            let mut n = n.clone();
            n.penalties += 1;
            self.nodes.insert(s.who, n);
        }
        Ok(())
    }

    fn push_slash_event(&mut self, ctx: &EntryCtx, account: Did, s: &Slash, amount: Amount) {
        self.push_event(
            ctx.height,
            ctx.index,
            account,
            EventKind::Slashed {
                target: s.who,
                reason: s.reason,
                fraction_bps: s.fraction_bps,
                amount,
            },
        );
    }
}
