//! The ledger's claim proofs, paid out by the committed claim contract in a
//! real EVM (revm): exact amounts, cumulative differences, tampering, roots
//! of other chains, double claims.

use alloy_primitives::{Address, B256, U256};
use lode_evm::{ClaimArgs, ClaimContract, Evm, EvmError, Revert, address, chain_id};
use lode_ledger::{
    ClaimProof, ContributionKind, Entry, Genesis, Ledger, LedgerConfig, ONE_TOKEN, RegisterNode,
    Transfer, Withdraw, WorkReceipt,
};
use lode_proto::{Did, EvmAddress, Hash32, Keypair};

const T0: u64 = 1_700_000_000_000;
const EPOCH_MS: u64 = 1_000;

fn kp(i: u8) -> Keypair {
    Keypair::from_secret_bytes(&[i; 32])
}
fn validator() -> Keypair {
    kp(200)
}
fn funder() -> Keypair {
    kp(201)
}
fn requester() -> Keypair {
    kp(203)
}
fn evm_addr(i: u8) -> EvmAddress {
    let mut a = [0u8; 20];
    a[0] = 0xB0;
    a[19] = i;
    EvmAddress(a)
}

/// A small chain: 1,000,000 LODE, 10,000 LODE emitted per 1 s epoch, a
/// funder holding 200,000 LODE. `name` changes the genesis (another chain).
fn genesis(name: &str) -> Genesis {
    let text = format!(
        r#"
chain_id = "{name}"
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
amount = "800_000 LODE"
[[allocation]]
name = "funder"
role = "vesting"
amount = "200_000 LODE"
unlocked_at_launch = "200_000 LODE"
beneficiary = "{f}"
"#,
        v = validator().did(),
        f = funder().did(),
    );
    Genesis::from_toml(&text).expect("test genesis parses")
}

struct Chain {
    _dir: tempfile::TempDir,
    ledger: Ledger,
}

impl Chain {
    fn new(name: &str) -> Chain {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::create(
            dir.path(),
            &genesis(name),
            validator(),
            LedgerConfig::default(),
        )
        .unwrap();
        Chain { _dir: dir, ledger }
    }

    fn nonce(&self, who: &Keypair) -> u64 {
        self.ledger.state().next_nonce(&who.did())
    }

    fn transfer(&mut self, from: &Keypair, to: Did, amount: u128) {
        let m = Transfer {
            chain: self.ledger.chain_id(),
            to,
            amount,
            memo: String::new(),
        };
        let e = Entry::sign(from, self.nonce(from), 0, &m).unwrap();
        self.ledger.submit(e).unwrap();
    }

    fn withdraw(&mut self, from: &Keypair, to: EvmAddress, amount: u128) {
        let m = Withdraw {
            chain: self.ledger.chain_id(),
            to,
            amount,
        };
        let e = Entry::sign(from, self.nonce(from), 0, &m).unwrap();
        self.ledger.submit(e).unwrap();
    }

    /// A node registers, runs 3 verified units of a job, the job settles:
    /// the node's balance is its fees (rewards follow at the epoch close).
    fn node_earns(&mut self, node: &Keypair, payout: EvmAddress, job: u8) {
        let m = RegisterNode {
            chain: self.ledger.chain_id(),
            operator: node.did(),
            payout,
        };
        let e = Entry::sign(node, self.nonce(node), 0, &m).unwrap();
        self.ledger.submit(e).unwrap();
        let j = Hash32::sha256(&[job]);
        let esc = lode_ledger::JobEscrow {
            chain: self.ledger.chain_id(),
            job: j,
            amount: 1_000 * ONE_TOKEN,
            price_per_unit: 1_000_000_000,
        };
        let e = Entry::sign(&requester(), 0, 0, &esc).unwrap();
        self.ledger.submit(e).unwrap();
        for unit in 0..3u64 {
            let r = Entry::WorkReceipt(WorkReceipt {
                job: j,
                unit,
                node: node.did(),
                kind: ContributionKind::Fuel,
                amount: 5_000_000,
                result: Hash32::sha256(&unit.to_be_bytes()),
                quorum: vec![node.did()],
            });
            self.ledger.submit(r).unwrap();
        }
        let s = self.ledger.settlement(&j, true).unwrap();
        self.ledger.submit(Entry::Settlement(s)).unwrap();
    }

    /// Seals the open entries, then closes epoch `epoch` (and nothing later).
    fn close_epoch(&mut self, epoch: u64) {
        self.ledger.seal_block(T0 + epoch * EPOCH_MS + 1).unwrap();
        let sealed = self
            .ledger
            .seal_block(T0 + (epoch + 1) * EPOCH_MS)
            .unwrap()
            .expect("a block closing the epoch");
        assert_eq!(sealed.epochs_closed, vec![epoch]);
    }

    /// The proof exactly as `lode wallet proof --json` prints it, parsed back.
    fn proof(&self, a: EvmAddress, epoch: u64) -> ClaimArgs {
        let p = self.ledger.claim_proof(&a, Some(epoch)).unwrap();
        let json = serde_json::to_string_pretty(&p).unwrap();
        let back: ClaimProof = serde_json::from_str(&json).unwrap();
        ClaimArgs::try_from(&back).unwrap()
    }
}

fn owner() -> Address {
    Address::repeat_byte(0x0A)
}

const SUPPLY: u128 = 1_000_000 * ONE_TOKEN;

fn deploy(evm: &mut Evm, chain: &Chain) -> ClaimContract {
    ClaimContract::deploy(
        evm,
        owner(),
        chain_id(&chain.ledger.chain_id()),
        U256::from(SUPPLY),
    )
    .unwrap()
}

fn revert_of(r: Result<impl std::fmt::Debug, EvmError>) -> Revert {
    match r {
        Err(EvmError::Revert { reason, .. }) => reason,
        other => panic!("expected a revert, got {other:?}"),
    }
}

fn u(v: u128) -> U256 {
    U256::from(v)
}

#[test]
fn ledger_proofs_claim_exact_amounts_once() {
    let mut c = Chain::new("lode-evm-a");
    let node = kp(1);
    c.transfer(&funder(), requester().did(), 50_000 * ONE_TOKEN);
    c.node_earns(&node, evm_addr(1), 1);
    c.close_epoch(0);
    let earned = c.ledger.state().balance(&node.did());
    assert!(earned > 0, "fees and the epoch reward");
    // The node withdraws everything it earned in two steps, the funder pays
    // two other addresses: four withdrawals, three leaves.
    c.withdraw(&node, evm_addr(1), earned / 3);
    c.withdraw(&node, evm_addr(1), earned - earned / 3);
    c.withdraw(&funder(), evm_addr(2), 7 * ONE_TOKEN + 3);
    c.withdraw(&funder(), evm_addr(3), 1);
    c.close_epoch(1);
    assert_eq!(c.ledger.state().balance(&node.did()), 0);

    let mut evm = Evm::new();
    let k = deploy(&mut evm, &c);
    assert_eq!(k.balance_of(&mut evm, k.distributor).unwrap(), u(SUPPLY));
    // Before any root: nothing can be claimed.
    let p1 = c.proof(evm_addr(1), 1);
    assert_eq!(revert_of(k.claim_with(&mut evm, &p1)), Revert::NoRoot);
    let gas = k.publish(&mut evm, &p1).unwrap();
    eprintln!("publishRoot: {gas} gas");
    assert_eq!(k.current_root(&mut evm).unwrap(), (1, p1.root));

    let expected = [
        (evm_addr(1), earned),
        (evm_addr(2), 7 * ONE_TOKEN + 3),
        (evm_addr(3), 1),
    ];
    let mut paid_total = 0u128;
    for (a, amount) in expected {
        let args = c.proof(a, 1);
        assert_eq!(args.cumulative, u(amount));
        assert_eq!(args.root, p1.root, "one root for every leaf");
        // Anyone may send the claim; the tokens go to the account.
        let stranger = Address::repeat_byte(0x55);
        let got = k
            .claim(
                &mut evm,
                stranger,
                args.account,
                args.cumulative,
                &args.proof,
            )
            .unwrap();
        assert_eq!(got.paid, u(amount));
        eprintln!(
            "claim of {a} with a {}-node proof: {} gas",
            args.proof.len(),
            got.gas_used
        );
        assert_eq!(k.balance_of(&mut evm, address(&a)).unwrap(), u(amount));
        assert_eq!(k.balance_of(&mut evm, stranger).unwrap(), U256::ZERO);
        assert_eq!(k.claimed(&mut evm, address(&a)).unwrap(), u(amount));
        paid_total += amount;
        // Claiming twice from one root pays nothing more.
        assert_eq!(
            revert_of(k.claim_with(&mut evm, &args)),
            Revert::NothingToClaim {
                cumulative: u(amount),
                already_claimed: u(amount)
            }
        );
        assert_eq!(k.balance_of(&mut evm, address(&a)).unwrap(), u(amount));
    }
    assert_eq!(
        k.balance_of(&mut evm, k.distributor).unwrap(),
        u(SUPPLY - paid_total)
    );
}

#[test]
fn a_later_epoch_pays_only_the_difference() {
    let mut c = Chain::new("lode-evm-b");
    let a = evm_addr(9);
    c.withdraw(&funder(), a, 100 * ONE_TOKEN);
    c.withdraw(&funder(), evm_addr(8), 5);
    c.close_epoch(0);
    let mut evm = Evm::new();
    let k = deploy(&mut evm, &c);
    let p0 = c.proof(a, 0);
    k.publish(&mut evm, &p0).unwrap();
    assert_eq!(
        k.claim_with(&mut evm, &p0).unwrap().paid,
        u(100 * ONE_TOKEN)
    );

    // Epoch 1: 25 more withdrawn to `a`; epoch 2: nothing new.
    c.withdraw(&funder(), a, 25 * ONE_TOKEN);
    c.close_epoch(1);
    let p1 = c.proof(a, 1);
    assert_eq!(p1.cumulative, u(125 * ONE_TOKEN));
    k.publish(&mut evm, &p1).unwrap();
    // The epoch-0 proof no longer proves anything under the new root.
    assert_eq!(revert_of(k.claim_with(&mut evm, &p0)), Revert::InvalidProof);
    let got = k.claim_with(&mut evm, &p1).unwrap();
    assert_eq!(got.paid, u(25 * ONE_TOKEN), "only the difference");
    assert_eq!(
        k.balance_of(&mut evm, address(&a)).unwrap(),
        u(125 * ONE_TOKEN)
    );
    assert!(matches!(
        revert_of(k.claim_with(&mut evm, &p1)),
        Revert::NothingToClaim { .. }
    ));
    // Roots only move forward.
    assert_eq!(
        revert_of(k.publish(&mut evm, &p0)),
        Revert::EpochNotNewer { last: 1, got: 0 }
    );
    assert_eq!(
        revert_of(k.publish(&mut evm, &p1)),
        Revert::EpochNotNewer { last: 1, got: 1 }
    );
    // Nothing new in epoch 2: the same root again, nothing more to claim.
    c.withdraw(&funder(), evm_addr(8), 1);
    c.close_epoch(2);
    let p2 = c.proof(a, 2);
    assert_eq!(p2.cumulative, p1.cumulative);
    k.publish(&mut evm, &p2).unwrap();
    assert!(matches!(
        revert_of(k.claim_with(&mut evm, &p2)),
        Revert::NothingToClaim { .. }
    ));
    // The other address claims its cumulative 6 at once.
    let p8 = c.proof(evm_addr(8), 2);
    assert_eq!(k.claim_with(&mut evm, &p8).unwrap().paid, u(6));
}

#[test]
fn tampered_claims_revert_and_pay_nothing() {
    let mut c = Chain::new("lode-evm-c");
    for i in 0..5u8 {
        c.withdraw(&funder(), evm_addr(i), u128::from(i + 1) * ONE_TOKEN);
    }
    c.close_epoch(0);
    let mut evm = Evm::new();
    let k = deploy(&mut evm, &c);
    let good = c.proof(evm_addr(2), 0);
    k.publish(&mut evm, &good).unwrap();
    assert!(good.proof.len() >= 2);

    let mut bad = Vec::new();
    let mut t = good.clone();
    t.cumulative += U256::from(1);
    bad.push(("amount + 1", t));
    let mut t = good.clone();
    t.cumulative -= U256::from(1);
    bad.push(("amount - 1", t));
    let mut t = good.clone();
    t.account = address(&evm_addr(3));
    bad.push(("another address", t));
    let mut t = good.clone();
    t.account = Address::repeat_byte(0x77);
    bad.push(("an address not in the tree", t));
    let mut t = good.clone();
    let mut node = t.proof[0].0;
    node[31] ^= 1;
    t.proof[0] = B256::from(node);
    bad.push(("a flipped proof bit", t));
    let mut t = good.clone();
    t.proof.pop();
    bad.push(("a truncated proof", t));
    let mut t = good.clone();
    t.proof.clear();
    bad.push(("an empty proof", t));
    let mut t = good.clone();
    t.proof.swap(0, 1);
    bad.push(("proof nodes swapped", t));
    for (what, t) in bad {
        let r = k.claim(&mut evm, owner(), t.account, t.cumulative, &t.proof);
        assert_eq!(revert_of(r), Revert::InvalidProof, "{what}");
    }
    assert_eq!(k.balance_of(&mut evm, k.distributor).unwrap(), u(SUPPLY));
    // The genuine proof still works after all that.
    assert_eq!(
        k.claim_with(&mut evm, &good).unwrap().paid,
        u(3 * ONE_TOKEN)
    );
}

#[test]
fn roots_of_another_chain_are_refused() {
    let mut a = Chain::new("lode-evm-d");
    let mut b = Chain::new("lode-evm-e");
    assert_ne!(a.ledger.chain_id(), b.ledger.chain_id());
    for c in [&mut a, &mut b] {
        c.withdraw(&funder(), evm_addr(1), 40 * ONE_TOKEN);
        c.close_epoch(0);
    }
    // Different chains, different roots: b's has more in it.
    b.withdraw(&funder(), evm_addr(1), 60 * ONE_TOKEN);
    b.close_epoch(1);
    let mut evm = Evm::new();
    let k = deploy(&mut evm, &a);
    let pb = b.proof(evm_addr(1), 1);
    assert_eq!(pb.chain_id, chain_id(&b.ledger.chain_id()));
    assert_eq!(
        revert_of(k.publish(&mut evm, &pb)),
        Revert::WrongChain {
            expected: chain_id(&a.ledger.chain_id()),
            got: chain_id(&b.ledger.chain_id()),
        }
    );
    assert_eq!(revert_of(k.claim_with(&mut evm, &pb)), Revert::NoRoot);
    // With a's root published, b's proof still proves nothing here.
    let pa = a.proof(evm_addr(1), 0);
    k.publish(&mut evm, &pa).unwrap();
    assert_eq!(revert_of(k.claim_with(&mut evm, &pb)), Revert::InvalidProof);
    assert_eq!(k.claim_with(&mut evm, &pa).unwrap().paid, u(40 * ONE_TOKEN));
}

#[test]
fn only_the_owner_publishes_and_empty_roots_are_refused() {
    let mut c = Chain::new("lode-evm-f");
    c.withdraw(&funder(), evm_addr(1), 1);
    c.close_epoch(0);
    let mut evm = Evm::new();
    let k = deploy(&mut evm, &c);
    let p = c.proof(evm_addr(1), 0);
    let mallory = Address::repeat_byte(0x66);
    assert_eq!(
        revert_of(k.publish_root(&mut evm, mallory, p.chain_id, p.epoch, p.root)),
        Revert::NotOwner(mallory)
    );
    assert_eq!(
        revert_of(k.publish_root(&mut evm, owner(), p.chain_id, 0, B256::ZERO)),
        Revert::EmptyRoot
    );
    k.publish(&mut evm, &p).unwrap();
    assert_eq!(k.claim_with(&mut evm, &p).unwrap().paid, u(1));
}

#[test]
fn malformed_proof_json_is_a_typed_error() {
    let mut c = Chain::new("lode-evm-g");
    c.withdraw(&funder(), evm_addr(1), 1);
    c.close_epoch(0);
    let mut p = c.ledger.claim_proof(&evm_addr(1), Some(0)).unwrap();
    p.proof.push("0x1234".into());
    assert!(matches!(
        ClaimArgs::try_from(&p),
        Err(EvmError::BadProof(_))
    ));
    let mut p = c.ledger.claim_proof(&evm_addr(1), Some(0)).unwrap();
    p.amount = "-1".into();
    assert!(matches!(
        ClaimArgs::try_from(&p),
        Err(EvmError::BadProof(_))
    ));
}
