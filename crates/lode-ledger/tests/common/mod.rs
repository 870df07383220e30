//! Shared fixtures: a small test genesis with fast epochs and helpers that
//! build signed and validator entries.
#![allow(dead_code)]

use lode_ledger::*;
use lode_proto::{Did, EvmAddress, Hash32, Keypair};

pub const T0: u64 = 1_700_000_000_000;
pub const EPOCH_MS: u64 = 1_000;

pub fn kp(i: u8) -> Keypair {
    Keypair::from_secret_bytes(&[i; 32])
}

pub fn validator() -> Keypair {
    kp(200)
}
pub fn funder() -> Keypair {
    kp(201)
}
pub fn team() -> Keypair {
    kp(202)
}
pub fn requester() -> Keypair {
    kp(203)
}
pub fn node_key(i: u8) -> Keypair {
    kp(i + 1)
}

pub fn addr(i: u8) -> EvmAddress {
    let mut a = [0u8; 20];
    a[0] = 0xA0;
    a[19] = i;
    EvmAddress(a)
}

pub fn job(i: u64) -> JobId {
    Hash32::sha256(&i.to_be_bytes())
}

/// Supply 1,000,000 LODE: 600k contributors (10k per epoch, halving every
/// 3 epochs), 200k funder (fully unlocked), 100k team (cliff 2, vesting 4),
/// 100k investors (no beneficiary: reserved; 10k unlocked, vesting 5).
pub fn test_genesis() -> Genesis {
    let text = format!(
        r#"
chain_id = "lode-test"
genesis_time_ms = {T0}
validators = ["{v}"]
[token]
symbol = "LODE"
decimals = 18
total_supply = "1_000_000 LODE"
[epoch]
length_ms = {EPOCH_MS}
[emission]
initial_per_epoch = "10_000 LODE"
halving_interval_epochs = 3
[contribution_weights]
fuel = 1
uptime = 0
[[allocation]]
name = "contributors"
role = "contributors"
amount = "600_000 LODE"
[[allocation]]
name = "funder"
role = "vesting"
amount = "200_000 LODE"
unlocked_at_launch = "200_000 LODE"
beneficiary = "{f}"
[[allocation]]
name = "team"
role = "vesting"
amount = "100_000 LODE"
beneficiary = "{t}"
cliff_epochs = 2
vesting_epochs = 4
[[allocation]]
name = "investors"
role = "vesting"
amount = "100_000 LODE"
unlocked_at_launch = "10_000 LODE"
cliff_epochs = 0
vesting_epochs = 5
"#,
        v = validator().did(),
        f = funder().did(),
        t = team().did(),
    );
    Genesis::from_toml(&text).expect("test genesis parses")
}

/// Helpers that sign account entries with the right nonce and chain.
pub struct Signer<'a> {
    pub state: &'a State,
}

impl Signer<'_> {
    pub fn transfer(&self, from: &Keypair, to: Did, amount: Amount) -> Entry {
        let m = Transfer {
            chain: self.state.chain_id(),
            to,
            amount,
            memo: "test".into(),
        };
        Entry::sign(from, self.state.next_nonce(&from.did()), 0, &m).unwrap()
    }

    pub fn register(&self, node: &Keypair, operator: Did, payout: EvmAddress) -> Entry {
        let m = RegisterNode {
            chain: self.state.chain_id(),
            operator,
            payout,
        };
        Entry::sign(node, self.state.next_nonce(&node.did()), 0, &m).unwrap()
    }

    pub fn escrow(&self, req: &Keypair, job: JobId, amount: Amount, price: Amount) -> Entry {
        let m = JobEscrow {
            chain: self.state.chain_id(),
            job,
            amount,
            price_per_unit: price,
        };
        Entry::sign(req, 0, 0, &m).unwrap()
    }

    pub fn withdraw(&self, from: &Keypair, to: EvmAddress, amount: Amount) -> Entry {
        let m = Withdraw {
            chain: self.state.chain_id(),
            to,
            amount,
        };
        Entry::sign(from, self.state.next_nonce(&from.did()), 0, &m).unwrap()
    }
}

pub fn receipt(job: JobId, unit: u64, node: Did, fuel: u64, mut quorum: Vec<Did>) -> Entry {
    quorum.sort();
    Entry::WorkReceipt(WorkReceipt {
        job,
        unit,
        node,
        kind: ContributionKind::Fuel,
        amount: fuel,
        result: Hash32::sha256(&unit.to_be_bytes()),
        quorum,
    })
}

/// Replays blocks from genesis, checking every state root; the final state.
pub fn replay(blocks: &[Block]) -> State {
    let mut s = State::from_genesis_block(&blocks[0]).unwrap();
    for b in &blocks[1..] {
        s = apply(&s, b).unwrap();
        assert_eq!(s.state_root(), b.header.state_root);
    }
    s
}

pub fn signer(l: &Ledger) -> Signer<'_> {
    Signer { state: l.state() }
}

/// A test genesis with `[staking]` (stakers' share, unbonding period) and
/// `[governance]` (100 LODE deposit, 2 voting epochs).
pub fn staking_genesis(share_bps: u32, unbonding_epochs: u64) -> Genesis {
    let mut g = test_genesis();
    g.staking = Some(genesis::StakingParams {
        share_bps,
        unbonding_epochs,
        ..genesis::StakingParams::default()
    });
    g.governance = Some(genesis::GovernanceParams {
        min_deposit: 100 * ONE_TOKEN,
        voting_period_epochs: 2,
    });
    g
}

/// `m` signed by `k` with its next nonce on `p`'s chain.
pub fn sign<T: SignedEntry>(p: &Producer, k: &Keypair, m: &T) -> Entry {
    Entry::sign(k, p.state().next_nonce(&k.did()), 0, m).unwrap()
}

pub fn bond(p: &Producer, k: &Keypair, amount: Amount) -> Entry {
    let chain = p.state().chain_id();
    sign(p, k, &Bond { chain, amount })
}

pub fn delegate(p: &Producer, k: &Keypair, to: Did, amount: Amount) -> Entry {
    let chain = p.state().chain_id();
    sign(p, k, &Delegate { chain, to, amount })
}

/// The entry error `e` gets (panics if it is accepted).
pub fn entry_err(p: &mut Producer, e: Entry) -> EntryError {
    match p.submit(e) {
        Err(ProduceError::Entry(e)) => e,
        other => panic!("expected an entry error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Replicated chains (issue 14): four validators with powers 1..=4, gateway kp(99).

use lode_ledger::consensus::{
    CommitCertificate, VOTE_TAG, Validator, VoteBody, VoteType, vote_sign_bytes,
};

pub fn keys() -> Vec<Keypair> {
    (0..4)
        .map(|i| Keypair::from_secret_bytes(&[60 + i; 32]))
        .collect()
}

pub fn genesis() -> Genesis {
    let mut g = test_genesis();
    g.validators = Vec::new();
    g.consensus = Some(ConsensusParams {
        validators: keys()
            .iter()
            .enumerate()
            .map(|(i, k)| Validator {
                did: k.did(),
                power: i as u64 + 1,
            })
            .collect(),
        gateways: vec![kp(99).did()],
    });
    g
}

pub fn replicas(dir: &std::path::Path) -> Vec<Replica> {
    keys()
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            Replica::create(
                &dir.join(format!("v{i}")),
                &genesis(),
                k,
                LedgerConfig::default(),
            )
            .unwrap()
        })
        .collect()
}

pub fn certificate(
    chain: Hash32,
    height: u64,
    block: Hash32,
    signers: &[&Keypair],
) -> CommitCertificate {
    let mut signatures: Vec<_> = signers
        .iter()
        .map(|k| {
            let body = VoteBody {
                chain,
                vote: VoteType::Precommit,
                height,
                round: 0,
                block: Some(block),
                validator: k.did(),
            };
            (k.did(), k.sign_tagged(VOTE_TAG, &vote_sign_bytes(&body)))
        })
        .collect();
    signatures.sort_by_key(|(d, _)| *d);
    CommitCertificate {
        height,
        round: 0,
        block,
        signatures,
    }
}
