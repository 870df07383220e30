//! Governance on the ledger (issue 15): proposals with deposits, stake-weighted
//! votes with delegator override, the Cosmos x/gov thresholds exactly (one base
//! unit either side), parameter changes at the epoch boundary and not before,
//! treasury spends, vetoes, typed errors with no state change, and replay.

mod common;

use common::*;
use lode_ledger::state::{ProposalStatus, Tally};
use lode_ledger::*;
use lode_proto::Keypair;

fn propose(p: &Producer, k: &Keypair, change: ParamChange, deposit: Amount) -> Entry {
    let chain = p.state().chain_id();
    let title = "test".to_string();
    sign(
        p,
        k,
        &Propose {
            chain,
            change,
            deposit,
            title,
        },
    )
}

fn vote(p: &Producer, k: &Keypair, proposal: u64, option: VoteOption) -> Entry {
    let chain = p.state().chain_id();
    sign(
        p,
        k,
        &Vote {
            chain,
            proposal,
            option,
        },
    )
}

/// Voters 0..n with the given self-bonds (base units), a proposer with
/// tokens, and the chain's blocks.
fn setup(bonds: &[Amount]) -> (Producer, Vec<Block>, Vec<Keypair>) {
    let (mut p, g) = Producer::genesis(&staking_genesis(1_000, 1), validator()).unwrap();
    let keys: Vec<Keypair> = (0..bonds.len() as u8).map(|i| kp(30 + i)).collect();
    for k in keys.iter().chain([&kp(29)]) {
        let e = Signer { state: p.state() }.transfer(&funder(), k.did(), 1_000 * ONE_TOKEN);
        p.submit(e).unwrap();
    }
    for (k, b) in keys.iter().zip(bonds) {
        let e = bond(&p, k, *b);
        p.submit(e).unwrap();
    }
    let b = p.seal(T0 + 1).unwrap().unwrap();
    (p, vec![g, b], keys)
}

fn proposer() -> Keypair {
    kp(29)
}

/// Runs one proposal to its tally with these votes; returns its status.
fn run(bonds: &[Amount], votes: &[Option<VoteOption>]) -> (ProposalStatus, Tally) {
    let (mut p, _, keys) = setup(bonds);
    let e = propose(
        &p,
        &proposer(),
        ParamChange::KAnonymity(Some(5)),
        100 * ONE_TOKEN,
    );
    p.submit(e).unwrap();
    for (k, v) in keys.iter().zip(votes) {
        if let Some(v) = v {
            let e = vote(&p, k, 0, *v);
            p.submit(e).unwrap();
        }
    }
    p.seal(T0 + 2).unwrap();
    p.seal(T0 + 2 * EPOCH_MS).unwrap();
    p.state().check_invariants().unwrap();
    let pr = p.state().proposal(0).unwrap();
    (pr.status, pr.tally.clone().unwrap())
}

use VoteOption::*;

#[test]
fn quorum_is_exactly_334_per_mille_of_bonded_power() {
    // 1,000 bonded: 334 voting meets quorum, 333 does not.
    assert_eq!(
        run(&[334, 666], &[Some(Yes), None]).0,
        ProposalStatus::Passed
    );
    assert_eq!(
        run(&[333, 667], &[Some(Yes), None]).0,
        ProposalStatus::NoQuorum
    );
    // Large stakes: one base unit either side.
    let t = 1_000 * ONE_TOKEN;
    let q = t * 334 / 1_000;
    assert_eq!(
        run(&[q, t - q], &[Some(Yes), None]).0,
        ProposalStatus::Passed
    );
    assert_eq!(
        run(&[q - 1, t - q + 1], &[Some(Yes), None]).0,
        ProposalStatus::NoQuorum
    );
}

#[test]
fn yes_must_exceed_half_of_non_abstaining_votes() {
    // Abstain counts for quorum, not for the threshold.
    assert_eq!(
        run(&[501, 500, 300], &[Some(Yes), Some(No), Some(Abstain)]).0,
        ProposalStatus::Passed
    );
    assert_eq!(
        run(&[500, 500, 300], &[Some(Yes), Some(No), Some(Abstain)]).0,
        ProposalStatus::Rejected
    );
    assert_eq!(
        run(&[10, 1], &[Some(Abstain), None]).0,
        ProposalStatus::Rejected,
        "everyone abstained"
    );
}

#[test]
fn veto_above_334_per_mille_of_votes_vetoes_and_burns_to_treasury() {
    // 1,000 voted: veto 334 is not more than 33.4 % (Cosmos: strictly greater).
    let (s, t) = run(&[666, 334], &[Some(Yes), Some(Veto)]);
    assert_eq!((s, t.veto), (ProposalStatus::Passed, 334));
    assert_eq!(
        run(&[665, 335], &[Some(Yes), Some(Veto)]).0,
        ProposalStatus::Vetoed
    );
    // The vetoed deposit goes to the treasury; others come back.
    let (mut p, _, keys) = setup(&[665, 335]);
    let e = propose(
        &p,
        &proposer(),
        ParamChange::KAnonymity(None),
        100 * ONE_TOKEN,
    );
    p.submit(e).unwrap();
    for (k, v) in keys.iter().zip([Yes, Veto]) {
        let e = vote(&p, k, 0, v);
        p.submit(e).unwrap();
    }
    let before = p.state().balance(&proposer().did());
    p.seal(T0 + 2 * EPOCH_MS).unwrap();
    assert_eq!(p.state().balance(&proposer().did()), before);
    assert_eq!(p.state().staking_globals().treasury, 100 * ONE_TOKEN);
    p.state().check_invariants().unwrap();
}

#[test]
fn pure_tally_thresholds() {
    use lode_ledger::state::gov::tally_outcome;
    let t = |yes, no, abstain, veto, bonded| Tally {
        yes,
        no,
        abstain,
        veto,
        bonded,
    };
    let big = u128::MAX / 2;
    assert_eq!(tally_outcome(&t(0, 0, 0, 0, 0)), ProposalStatus::NoQuorum);
    assert_eq!(
        tally_outcome(&t(334, 0, 0, 0, 1000)),
        ProposalStatus::Passed
    );
    assert_eq!(
        tally_outcome(&t(333, 0, 0, 0, 1000)),
        ProposalStatus::NoQuorum
    );
    assert_eq!(
        tally_outcome(&t(big / 2, 0, 0, 0, big)),
        ProposalStatus::Passed
    );
    assert_eq!(
        tally_outcome(&t(500, 500, 0, 0, 1000)),
        ProposalStatus::Rejected
    );
    assert_eq!(
        tally_outcome(&t(501, 499, 0, 0, 1000)),
        ProposalStatus::Passed
    );
    assert_eq!(
        tally_outcome(&t(666, 0, 0, 334, 1000)),
        ProposalStatus::Passed
    );
    assert_eq!(
        tally_outcome(&t(665, 0, 0, 335, 1000)),
        ProposalStatus::Vetoed
    );
}

#[test]
fn delegators_override_their_validators_vote() {
    // Validator V self-bonds 400; D delegates 600 behind V.
    let (mut p, _, keys) = setup(&[400]);
    let v = &keys[0];
    let d = kp(40);
    let e = Signer { state: p.state() }.transfer(&funder(), d.did(), ONE_TOKEN);
    p.submit(e).unwrap();
    let e = delegate(&p, &d, v.did(), 600);
    p.submit(e).unwrap();
    let e = propose(
        &p,
        &proposer(),
        ParamChange::DefaultQuorum(Some(3)),
        100 * ONE_TOKEN,
    );
    p.submit(e).unwrap();
    let e = vote(&p, v, 0, Yes);
    p.submit(e).unwrap();
    // V's vote carries D's stake until D votes itself.
    assert_eq!(p.state().current_tally(0).yes, 1_000);
    let e = vote(&p, &d, 0, No);
    p.submit(e).unwrap();
    let t = p.state().current_tally(0);
    assert_eq!((t.yes, t.no), (400, 600));
    // A second vote replaces the first.
    let e = vote(&p, &d, 0, Yes);
    p.submit(e).unwrap();
    assert_eq!(p.state().vote_of(0, &d.did()), Some(Yes));
    assert_eq!(p.state().current_tally(0).yes, 1_000);
}

#[test]
fn parameters_change_at_the_epoch_boundary_and_not_before() {
    let (mut p, mut blocks, keys) = setup(&[1_000]);
    assert_eq!(p.state().params().staking_share_bps, 1_000);
    assert_eq!(p.state().params().k_anonymity, None);
    let e = propose(
        &p,
        &proposer(),
        ParamChange::StakingShareBps(3_000),
        100 * ONE_TOKEN,
    );
    p.submit(e).unwrap();
    let e = propose(
        &p,
        &proposer(),
        ParamChange::UnbondingEpochs(5),
        100 * ONE_TOKEN,
    );
    p.submit(e).unwrap();
    let e = vote(&p, &keys[0], 0, Yes);
    p.submit(e).unwrap();
    let e = vote(&p, &keys[0], 1, No);
    p.submit(e).unwrap();
    let deposits = p.state().staking_globals().deposits;
    assert_eq!(deposits, 200 * ONE_TOKEN);
    blocks.push(p.seal(T0 + 2).unwrap().unwrap());
    // Epoch 0 closes: voting runs two epochs, nothing changes yet.
    blocks.push(p.seal(T0 + EPOCH_MS).unwrap().unwrap());
    assert_eq!(p.state().params().staking_share_bps, 1_000);
    assert_eq!(
        p.state().proposal(0).unwrap().status,
        ProposalStatus::Voting
    );
    // Still votable in epoch 1.
    let e = vote(&p, &keys[0], 0, Yes);
    p.submit(e).unwrap();
    blocks.push(p.seal(T0 + EPOCH_MS + 1).unwrap().unwrap());
    // Epoch 1 closes: tallied; the change is in force from epoch 2.
    blocks.push(p.seal(T0 + 2 * EPOCH_MS).unwrap().unwrap());
    let st = p.state();
    assert_eq!(st.proposal(0).unwrap().status, ProposalStatus::Passed);
    assert_eq!(st.proposal(1).unwrap().status, ProposalStatus::Rejected);
    assert_eq!(st.params().staking_share_bps, 3_000);
    assert_eq!(
        st.params().unbonding_epochs,
        1,
        "the rejected change did not apply"
    );
    assert_eq!(st.staking_globals().deposits, 0);
    assert_eq!(
        st.balance(&proposer().did()),
        1_000 * ONE_TOKEN,
        "deposits returned"
    );
    st.check_invariants().unwrap();
    // Votes after the period: typed error.
    let e = vote(&p, &keys[0], 0, No);
    assert!(matches!(
        entry_err(&mut p, e),
        EntryError::VotingClosed {
            proposal: 0,
            ended: 1
        }
    ));
    // Replay gives the same state (and parameters).
    let s = replay(&blocks);
    assert_eq!(s.state_root(), p.state().state_root());
    assert_eq!(s.params(), p.state().params());
}

#[test]
fn treasury_spend_pays_only_what_the_treasury_holds() {
    // Fill the treasury with a vetoed deposit, then spend it.
    let (mut p, mut blocks, keys) = setup(&[1_000]);
    let e = propose(
        &p,
        &proposer(),
        ParamChange::KAnonymity(Some(9)),
        100 * ONE_TOKEN,
    );
    p.submit(e).unwrap();
    let e = vote(&p, &keys[0], 0, Veto);
    p.submit(e).unwrap();
    blocks.push(p.seal(T0 + 2 * EPOCH_MS).unwrap().unwrap());
    assert_eq!(
        p.state().proposal(0).unwrap().status,
        ProposalStatus::Vetoed
    );
    assert_eq!(p.state().params().k_anonymity, None);
    let to = kp(50).did();
    for (amount, id) in [(100 * ONE_TOKEN + 1, 1), (60 * ONE_TOKEN, 2)] {
        let e = propose(
            &p,
            &proposer(),
            ParamChange::TreasurySpend { to, amount },
            100 * ONE_TOKEN,
        );
        p.submit(e).unwrap();
        let e = vote(&p, &keys[0], id, Yes);
        p.submit(e).unwrap();
    }
    blocks.push(p.seal(T0 + 4 * EPOCH_MS).unwrap().unwrap());
    let st = p.state();
    assert_eq!(st.proposal(1).unwrap().status, ProposalStatus::Failed);
    assert_eq!(st.proposal(2).unwrap().status, ProposalStatus::Passed);
    assert_eq!(st.balance(&to), 60 * ONE_TOKEN);
    assert_eq!(st.staking_globals().treasury, 40 * ONE_TOKEN);
    st.check_invariants().unwrap();
    assert_eq!(replay(&blocks).state_root(), st.state_root());
}

#[test]
fn bad_proposals_and_votes_are_typed_errors_with_no_state_change() {
    let (mut p, _, keys) = setup(&[1_000]);
    let supply = p.state().supply();
    let nonce = p.state().next_nonce(&proposer().did());
    let e = propose(
        &p,
        &proposer(),
        ParamChange::KAnonymity(Some(2)),
        100 * ONE_TOKEN - 1,
    );
    assert!(matches!(
        entry_err(&mut p, e),
        EntryError::DepositTooLow { .. }
    ));
    for change in [
        ParamChange::StakingShareBps(5_001),
        ParamChange::ValidatorSetSize(0),
        ParamChange::ValidatorSetSize(65),
        ParamChange::UnbondingEpochs(0),
        ParamChange::DefaultQuorum(Some(0)),
        ParamChange::KAnonymity(Some(0)),
        ParamChange::ContributionWeight {
            kind: ContributionKind::Fuel,
            weight: 0,
        },
        ParamChange::TreasurySpend {
            to: kp(1).did(),
            amount: 0,
        },
    ] {
        let e = propose(&p, &proposer(), change.clone(), 100 * ONE_TOKEN);
        assert!(
            matches!(entry_err(&mut p, e), EntryError::InvalidParamChange(_)),
            "{change:?}"
        );
    }
    let e = propose(
        &p,
        &kp(77),
        ParamChange::KAnonymity(Some(2)),
        100 * ONE_TOKEN,
    );
    assert!(matches!(
        entry_err(&mut p, e),
        EntryError::InsufficientBalance { .. }
    ));
    let e = vote(&p, &keys[0], 7, Yes);
    assert_eq!(entry_err(&mut p, e), EntryError::UnknownProposal(7));
    assert_eq!(p.state().supply(), supply);
    assert_eq!(p.state().next_nonce(&proposer().did()), nonce);
    assert!(p.state().proposals().next().is_none());
    assert_eq!(p.state().staking_globals().deposits, 0);

    // A chain without [governance] accepts no proposal.
    let mut g = staking_genesis(1_000, 1);
    g.governance = None;
    let (mut p, _) = Producer::genesis(&g, validator()).unwrap();
    let e = Signer { state: p.state() }.transfer(&funder(), proposer().did(), 1_000 * ONE_TOKEN);
    p.submit(e).unwrap();
    let e = propose(
        &p,
        &proposer(),
        ParamChange::KAnonymity(Some(2)),
        100 * ONE_TOKEN,
    );
    assert_eq!(entry_err(&mut p, e), EntryError::GovernanceDisabled);
}

#[test]
fn genesis_sections_validate_and_round_trip() {
    use lode_ledger::genesis::MAX_STAKING_SHARE_BPS;
    let mut g = staking_genesis(1_000, 1);
    g.validate().unwrap();
    let bytes = lode_proto::canonical::encode(&g).unwrap();
    assert_eq!(lode_proto::canonical::decode::<Genesis>(&bytes).unwrap(), g);
    assert_eq!(Genesis::from_toml(&g.to_toml()).unwrap(), g);
    // Staking only.
    g.governance = None;
    let bytes = lode_proto::canonical::encode(&g).unwrap();
    assert_eq!(lode_proto::canonical::decode::<Genesis>(&bytes).unwrap(), g);
    assert_eq!(Genesis::from_toml(&g.to_toml()).unwrap(), g);
    // The contributors keep at least half.
    g.staking.as_mut().unwrap().share_bps = MAX_STAKING_SHARE_BPS + 1;
    assert_eq!(
        g.validate(),
        Err(GenesisError::StakingShareTooHigh(MAX_STAKING_SHARE_BPS + 1))
    );
    g.staking.as_mut().unwrap().share_bps = MAX_STAKING_SHARE_BPS;
    g.validate().unwrap();
    g.staking.as_mut().unwrap().unbonding_epochs = 0;
    assert!(matches!(
        g.validate(),
        Err(GenesisError::BadStakingParam(_))
    ));
    // Governance needs staking.
    let mut g = staking_genesis(1_000, 1);
    g.staking = None;
    assert_eq!(g.validate(), Err(GenesisError::GovernanceWithoutStaking));
    // TOML sections with defaults.
    let text = format!(
        "{}\n[staking]\nshare_bps = 1500\n[governance]\nvoting_period_epochs = 3\n",
        test_genesis().to_toml()
    );
    let g = Genesis::from_toml(&text).unwrap();
    let st = g.staking.clone().unwrap();
    assert_eq!(
        (st.share_bps, st.unbonding_epochs, st.max_commission_bps),
        (1_500, 21, 2_000)
    );
    let gov = g.governance.clone().unwrap();
    assert_eq!(
        (gov.voting_period_epochs, gov.min_deposit),
        (3, 1_000 * ONE_TOKEN)
    );
    assert!(Genesis::from_toml(&format!("{text}[staking.x]\n")).is_err());
}

#[test]
fn a_new_staking_share_applies_from_the_epoch_after_the_tally() {
    // Stake behind a working node, so the stakers' share is paid.
    let (mut p, mut blocks, keys) = setup(&[1_000]);
    let n0 = node_key(0);
    let e = Signer { state: p.state() }.register(&n0, n0.did(), addr(0));
    p.submit(e).unwrap();
    let e = Signer { state: p.state() }.transfer(&funder(), requester().did(), 1_000 * ONE_TOKEN);
    p.submit(e).unwrap();
    let e = Signer { state: p.state() }.escrow(&requester(), job(1), 100 * ONE_TOKEN, 1);
    p.submit(e).unwrap();
    let e = delegate(&p, &keys[0], n0.did(), 10);
    p.submit(e).unwrap();
    let e = propose(
        &p,
        &proposer(),
        ParamChange::StakingShareBps(3_000),
        100 * ONE_TOKEN,
    );
    p.submit(e).unwrap();
    let e = vote(&p, &keys[0], 0, Yes);
    p.submit(e).unwrap();
    for epoch in 0..3u64 {
        if epoch > 0 {
            // Close the previous epoch first, so the receipt lands in this one.
            blocks.push(p.seal(T0 + epoch * EPOCH_MS).unwrap().unwrap());
        }
        p.submit(receipt(job(1), epoch, n0.did(), 10, vec![n0.did()]))
            .unwrap();
        blocks.push(p.seal(T0 + epoch * EPOCH_MS + 5).unwrap().unwrap());
    }
    blocks.push(p.seal(T0 + 3 * EPOCH_MS).unwrap().unwrap());
    let st = p.state();
    let e = 10_000 * ONE_TOKEN;
    // Epochs 0 and 1 (the tally closes epoch 1) used 10 %; epoch 2 uses 30 %.
    assert_eq!(st.epoch_record(0).unwrap().emission, e - e / 10);
    assert_eq!(st.epoch_record(1).unwrap().emission, e - e / 10);
    assert_eq!(st.epoch_record(2).unwrap().emission, e - 3 * e / 10);
    assert_eq!(
        st.staking_globals().staking_released,
        e / 10 * 2 + 3 * e / 10
    );
    st.check_invariants().unwrap();
    assert_eq!(replay(&blocks).state_root(), st.state_root());
}
