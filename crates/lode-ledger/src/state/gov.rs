//! Stake-weighted governance (model: Cosmos SDK x/gov v1).
//!
//! A [`Propose`] locks its deposit (at least `[governance] min_deposit`) and
//! opens voting for `voting_period_epochs` epochs: the epoch it was proposed
//! in and the following ones; the close of the last one tallies it. A
//! [`Vote`] records an option; a second vote by the same account replaces the
//! first (as in Cosmos). Votes are weighted at the tally, by the stake bonded
//! then:
//!
//! * every delegation (target, delegator, amount) counts for the delegator's
//!   own vote if it voted, otherwise for its target's vote if the target voted,
//!   otherwise not at all (a delegator overrides its validator; a
//!   self-bond is the target's own delegation);
//! * `bonded` = all bonded stake; `voted` = yes + no + abstain + veto;
//! * quorum: `voted / bonded >= 0.334`, else the proposal fails
//!   (deposit returned);
//! * if everyone abstained: rejected (deposit returned);
//! * veto: `veto / voted > 0.334` → vetoed, the deposit goes to the treasury;
//! * pass: `yes / (voted - abstain) > 0.5`, else rejected (deposit returned).
//!
//! The comparisons are exact (integer cross-multiplication with a 256-bit
//! product), the thresholds Cosmos' defaults. A passed change is stored as the
//! parameters in force ([`State::params`]) at that epoch close, i.e. effective
//! from the next epoch; a passed treasury spend is paid if the treasury holds
//! enough, else it is recorded as failed to execute.
//!
//! State: `proposals` (tag 16): id → [`Proposal`]; `votes` (tag 17):
//! (proposal, voter) → option, removed when the proposal is tallied.

use super::{EntryCtx, EventKind, State, add, sub, text_ok};
use crate::amount::{Amount, serde_amount};
use crate::entry::{ParamChange, Propose, Vote, VoteOption};
use crate::error::EntryError;
use crate::rewards::mul_wide;
use lode_proto::{Did, Envelope};
use serde::{Deserialize, Serialize};

/// Quorum, veto threshold (per mille; Cosmos: 0.334) and pass threshold (0.5).
pub const QUORUM_PERMILLE: u128 = 334;
pub const VETO_PERMILLE: u128 = 334;
pub const PASS_PERMILLE: u128 = 500;

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    Voting,
    Passed,
    Rejected,
    /// Fewer than 33.4 % of bonded power voted.
    NoQuorum,
    Vetoed,
    /// Passed, but could not be executed (e.g. the treasury held too little).
    Failed,
}

/// The weighted votes of a tally.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    #[serde(with = "serde_amount")]
    pub yes: Amount,
    #[serde(with = "serde_amount")]
    pub no: Amount,
    #[serde(with = "serde_amount")]
    pub abstain: Amount,
    #[serde(with = "serde_amount")]
    pub veto: Amount,
    /// All bonded stake at the tally.
    #[serde(with = "serde_amount")]
    pub bonded: Amount,
}

/// A governance proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub proposer: Did,
    pub change: ParamChange,
    #[serde(with = "serde_amount")]
    pub deposit: Amount,
    pub title: String,
    pub submitted_epoch: u64,
    /// The close of this epoch tallies it.
    pub voting_end_epoch: u64,
    pub status: ProposalStatus,
    pub tally: Option<Tally>,
}

impl Proposal {
    pub fn is_open(&self) -> bool {
        self.status == ProposalStatus::Voting
    }
}

/// `a * den > b * num` exactly.
fn gt_ratio(a: u128, b: u128, num: u128, den: u128) -> bool {
    mul_wide(a, den) > mul_wide(b, num)
}

/// The outcome of a tally (pure: the Cosmos x/gov rules above).
pub fn tally_outcome(t: &Tally) -> ProposalStatus {
    let voted = t.yes + t.no + t.abstain + t.veto;
    // Quorum: voted / bonded >= 0.334, i.e. not (bonded * 0.334 > voted).
    if t.bonded == 0 || gt_ratio(t.bonded, voted, 1000, QUORUM_PERMILLE) {
        return ProposalStatus::NoQuorum;
    }
    let non_abstain = voted - t.abstain;
    if non_abstain == 0 {
        return ProposalStatus::Rejected;
    }
    if gt_ratio(t.veto, voted, VETO_PERMILLE, 1000) {
        return ProposalStatus::Vetoed;
    }
    if gt_ratio(t.yes, non_abstain, PASS_PERMILLE, 1000) {
        ProposalStatus::Passed
    } else {
        ProposalStatus::Rejected
    }
}

impl State {
    pub fn proposal(&self, id: u64) -> Option<&Proposal> {
        self.staking.proposals.get(&id)
    }

    pub fn proposals(&self) -> impl Iterator<Item = (&u64, &Proposal)> {
        self.staking.proposals.iter()
    }

    /// The vote `voter` cast on `proposal`, while it is open.
    pub fn vote_of(&self, proposal: u64, voter: &Did) -> Option<VoteOption> {
        self.staking.votes.get(&(proposal, *voter)).copied()
    }

    /// The weighted votes on `proposal` if it were tallied now.
    pub fn current_tally(&self, proposal: u64) -> Tally {
        let mut t = Tally::default();
        for ((target, delegator), a) in self.staking.delegations.iter() {
            t.bonded += a;
            let v = self
                .staking
                .votes
                .get(&(proposal, *delegator))
                .or_else(|| self.staking.votes.get(&(proposal, *target)));
            match v {
                Some(VoteOption::Yes) => t.yes += a,
                Some(VoteOption::No) => t.no += a,
                Some(VoteOption::Abstain) => t.abstain += a,
                Some(VoteOption::Veto) => t.veto += a,
                None => {}
            }
        }
        t
    }

    pub(super) fn apply_propose(&mut self, e: &Envelope, ctx: &EntryCtx) -> Result<(), EntryError> {
        let p = self.open::<Propose>(e, ctx, "propose")?;
        let m = &p.message;
        self.check_chain(&m.chain)?;
        text_ok("title", &m.title)?;
        let gov = self
            .genesis
            .governance
            .clone()
            .ok_or(EntryError::GovernanceDisabled)?;
        if m.deposit < gov.min_deposit {
            return Err(EntryError::DepositTooLow {
                deposit: m.deposit,
                min: gov.min_deposit,
            });
        }
        self.changed_params(&m.change)?;
        let proposer = e.signer;
        self.use_nonce(&proposer, p.nonce)?;
        self.debit(&proposer, m.deposit)?;
        let mut g = self.staking_globals();
        let id = g.next_proposal;
        g.next_proposal = id
            .checked_add(1)
            .ok_or(EntryError::Overflow("proposal id"))?;
        g.deposits = add(g.deposits, m.deposit, "deposits")?;
        self.set_globals(g);
        let epoch = self.totals.epoch;
        let end = epoch
            .checked_add(gov.voting_period_epochs.max(1) - 1)
            .ok_or(EntryError::Overflow("voting end"))?;
        self.staking.proposals.insert(
            id,
            Proposal {
                proposer,
                change: m.change.clone(),
                deposit: m.deposit,
                title: m.title.clone(),
                submitted_epoch: epoch,
                voting_end_epoch: end,
                status: ProposalStatus::Voting,
                tally: None,
            },
        );
        self.push_event(
            ctx.height,
            ctx.index,
            proposer,
            EventKind::ProposalSubmitted {
                proposal: id,
                deposit: m.deposit,
            },
        );
        Ok(())
    }

    pub(super) fn apply_vote(&mut self, e: &Envelope, ctx: &EntryCtx) -> Result<(), EntryError> {
        let p = self.open::<Vote>(e, ctx, "vote")?;
        let m = &p.message;
        self.check_chain(&m.chain)?;
        if self.genesis.governance.is_none() {
            return Err(EntryError::GovernanceDisabled);
        }
        let prop = self
            .staking
            .proposals
            .get(&m.proposal)
            .ok_or(EntryError::UnknownProposal(m.proposal))?;
        if !prop.is_open() || self.totals.epoch > prop.voting_end_epoch {
            return Err(EntryError::VotingClosed {
                proposal: m.proposal,
                ended: prop.voting_end_epoch,
            });
        }
        self.use_nonce(&e.signer, p.nonce)?;
        self.staking.votes.insert((m.proposal, e.signer), m.option);
        self.push_event(
            ctx.height,
            ctx.index,
            e.signer,
            EventKind::Voted {
                proposal: m.proposal,
                option: m.option,
            },
        );
        Ok(())
    }

    /// Tallies the proposals whose voting ends with `epoch` (at its close).
    pub(super) fn tally_proposals(&mut self, epoch: u64, ctx: &EntryCtx) -> Result<(), EntryError> {
        let due: Vec<u64> = self
            .staking
            .proposals
            .iter()
            .filter(|(_, p)| p.is_open() && p.voting_end_epoch <= epoch)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let tally = self.current_tally(id);
            let mut prop = self
                .staking
                .proposals
                .get(&id)
                .cloned()
                .ok_or(EntryError::Internal("tallied proposal"))?;
            let mut status = tally_outcome(&tally);
            let mut g = self.staking_globals();
            g.deposits = sub(g.deposits, prop.deposit, "deposits")?;
            if status == ProposalStatus::Passed {
                match &prop.change {
                    ParamChange::TreasurySpend { to, amount } => {
                        if g.treasury >= *amount {
                            g.treasury -= amount;
                            self.set_globals(g.clone());
                            self.credit(to, *amount)?;
                            self.push_event(
                                ctx.height,
                                ctx.index,
                                *to,
                                EventKind::TreasuryPaid {
                                    proposal: id,
                                    amount: *amount,
                                },
                            );
                        } else {
                            status = ProposalStatus::Failed;
                        }
                    }
                    change => match self.changed_params(change) {
                        Ok(Some(p)) => g.params = Some(p),
                        _ => status = ProposalStatus::Failed,
                    },
                }
            }
            if status == ProposalStatus::Vetoed {
                g.treasury = add(g.treasury, prop.deposit, "treasury")?;
                self.set_globals(g);
            } else {
                self.set_globals(g);
                self.credit(&prop.proposer, prop.deposit)?;
                self.push_event(
                    ctx.height,
                    ctx.index,
                    prop.proposer,
                    EventKind::DepositReturned {
                        proposal: id,
                        amount: prop.deposit,
                    },
                );
            }
            prop.status = status;
            prop.tally = Some(tally);
            self.staking.proposals.insert(id, prop);
            let voters: Vec<(u64, Did)> = self
                .staking
                .votes
                .iter()
                .filter(|((p, _), _)| *p == id)
                .map(|(k, _)| *k)
                .collect();
            for k in voters {
                self.staking.votes.remove(&k);
            }
        }
        Ok(())
    }
}
