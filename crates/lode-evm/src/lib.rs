//! Lode's EVM claim contract, run in a real EVM.
//!
//! `contracts/` holds the Solidity sources of `LodeDistributor` (a cumulative
//! Merkle distributor verifying leaves with OpenZeppelin's unmodified
//! `MerkleProof`) and `LodeTestToken` (a plain OpenZeppelin ERC-20), and their
//! committed builds (`contracts/build/*.json`, rebuilt by `contracts/build.sh`).
//! This crate embeds those builds and runs them in [revm]:
//!
//! * [`Evm`] — an in-memory EVM (Cancun rules, no gas price, fresh state):
//!   deploy, call (committed), view (not committed), with reverts decoded;
//! * [`ClaimContract`] — deploys token + distributor, publishes claims roots,
//!   claims, reads balances;
//! * [`ClaimArgs`] — the contract's arguments from a ledger [`ClaimProof`]
//!   (what `lode wallet proof --json` prints and the gateway serves).
//!
//! It is the test harness that proves the ledger's claim proofs pay out in
//! the real contract; nothing here talks to a real chain.

use alloy_primitives::{Address, B256, Bytes, Log, TxKind, U256};
use alloy_sol_types::{SolCall, SolConstructor, SolInterface, sol};
use lode_ledger::ClaimProof;
use lode_proto::{EvmAddress, Hash32};
use revm::context::TxEnv;
use revm::context_interface::result::{ExecutionResult, Output};
use revm::database::CacheDB;
use revm::database_interface::EmptyDB;
use revm::handler::{MainnetContext, MainnetEvm};
use revm::{Context, ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext};

sol!(
    #[sol(all_derives)]
    LodeDistributor,
    "../../contracts/build/LodeDistributor.json"
);
sol!(
    #[sol(all_derives)]
    LodeTestToken,
    "../../contracts/build/LodeTestToken.json"
);

/// The committed build of `contracts/src/LodeDistributor.sol`.
pub const DISTRIBUTOR_ARTIFACT: &str =
    include_str!("../../../contracts/build/LodeDistributor.json");
/// The committed build of `contracts/src/LodeTestToken.sol`.
pub const TOKEN_ARTIFACT: &str = include_str!("../../../contracts/build/LodeTestToken.json");

/// Gas limit of every transaction the harness sends.
pub const TX_GAS_LIMIT: u64 = 10_000_000;

/// Why an EVM operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvmError {
    /// The transaction was invalid (not executed).
    #[error("EVM refused the transaction: {0}")]
    Invalid(String),
    /// The contract reverted; `reason` is the decoded custom error when known.
    #[error("reverted: {reason}")]
    Revert { reason: Revert, data: Bytes },
    /// Execution halted (out of gas, invalid opcode, ...).
    #[error("halted: {0}")]
    Halt(String),
    /// A committed contract build could not be read.
    #[error("contract build {name}: {message}")]
    Artifact { name: &'static str, message: String },
    /// Return data did not decode as the ABI says.
    #[error("cannot decode the return data of {0}")]
    Decode(&'static str),
    /// A claim proof's fields are malformed.
    #[error("claim proof is malformed: {0}")]
    BadProof(String),
}

/// The custom errors of `LodeDistributor` (and the token and `Ownable`), decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revert {
    WrongChain {
        expected: B256,
        got: B256,
    },
    EpochNotNewer {
        last: u64,
        got: u64,
    },
    EmptyRoot,
    NoRoot,
    InvalidProof,
    NothingToClaim {
        cumulative: U256,
        already_claimed: U256,
    },
    NotOwner(Address),
    InsufficientBalance {
        balance: U256,
        needed: U256,
    },
    /// Anything else (raw revert data).
    Other(Bytes),
}

impl std::fmt::Display for Revert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Revert::WrongChain { expected, got } => {
                write!(f, "WrongChain(expected {expected}, got {got})")
            }
            Revert::EpochNotNewer { last, got } => {
                write!(f, "EpochNotNewer(last {last}, got {got})")
            }
            Revert::EmptyRoot => f.write_str("EmptyRoot"),
            Revert::NoRoot => f.write_str("NoRoot"),
            Revert::InvalidProof => f.write_str("InvalidProof"),
            Revert::NothingToClaim {
                cumulative,
                already_claimed,
            } => write!(
                f,
                "NothingToClaim(cumulative {cumulative}, already claimed {already_claimed})"
            ),
            Revert::NotOwner(a) => write!(f, "OwnableUnauthorizedAccount({a})"),
            Revert::InsufficientBalance { balance, needed } => {
                write!(
                    f,
                    "ERC20InsufficientBalance(balance {balance}, needed {needed})"
                )
            }
            Revert::Other(b) => write!(f, "unknown revert data {b}"),
        }
    }
}

impl Revert {
    /// Decodes revert data with the contracts' ABIs.
    pub fn decode(data: &[u8]) -> Revert {
        use LodeDistributor::LodeDistributorErrors as D;
        use LodeTestToken::LodeTestTokenErrors as T;
        if let Ok(e) = D::abi_decode(data) {
            return match e {
                D::WrongChain(e) => Revert::WrongChain {
                    expected: e.expected,
                    got: e.got,
                },
                D::EpochNotNewer(e) => Revert::EpochNotNewer {
                    last: e.last,
                    got: e.got,
                },
                D::EmptyRoot(_) => Revert::EmptyRoot,
                D::NoRoot(_) => Revert::NoRoot,
                D::InvalidProof(_) => Revert::InvalidProof,
                D::NothingToClaim(e) => Revert::NothingToClaim {
                    cumulative: e.cumulative,
                    already_claimed: e.alreadyClaimed,
                },
                D::OwnableUnauthorizedAccount(e) => Revert::NotOwner(e.account),
                _ => Revert::Other(Bytes::copy_from_slice(data)),
            };
        }
        if let Ok(T::ERC20InsufficientBalance(e)) = T::abi_decode(data) {
            return Revert::InsufficientBalance {
                balance: e.balance,
                needed: e.needed,
            };
        }
        Revert::Other(Bytes::copy_from_slice(data))
    }
}

/// What a committed transaction did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Return data (or, for a deployment, the runtime code).
    pub output: Bytes,
    /// Created contract, for a deployment.
    pub created: Option<Address>,
    pub gas_used: u64,
    pub logs: Vec<Log>,
}

/// An in-memory EVM with a fresh state (mainnet rules of revm's default
/// spec, gas price 0, nonces checked from state).
pub struct Evm {
    evm: MainnetEvm<MainnetContext<CacheDB<EmptyDB>>>,
}

impl std::fmt::Debug for Evm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evm").finish_non_exhaustive()
    }
}

impl Default for Evm {
    fn default() -> Self {
        Self::new()
    }
}

impl Evm {
    pub fn new() -> Self {
        let evm = Context::mainnet()
            .with_db(CacheDB::<EmptyDB>::default())
            .modify_cfg_chained(|c| {
                // Transactions carry no nonce here; CREATE addresses still
                // follow the sender's nonce in the state.
                c.disable_nonce_check = true;
            })
            .build_mainnet();
        Self { evm }
    }

    fn tx(from: Address, kind: TxKind, data: Bytes) -> Result<TxEnv, EvmError> {
        TxEnv::builder()
            .caller(from)
            .kind(kind)
            .data(data)
            .gas_limit(TX_GAS_LIMIT)
            .build()
            .map_err(|e| EvmError::Invalid(format!("{e:?}")))
    }

    fn outcome(r: ExecutionResult) -> Result<Outcome, EvmError> {
        match r {
            ExecutionResult::Success {
                gas, logs, output, ..
            } => {
                let (output, created) = match output {
                    Output::Call(b) => (b, None),
                    Output::Create(b, a) => (b, a),
                };
                Ok(Outcome {
                    output,
                    created,
                    gas_used: gas.total_gas_spent(),
                    logs,
                })
            }
            ExecutionResult::Revert { output, .. } => Err(EvmError::Revert {
                reason: Revert::decode(&output),
                data: output,
            }),
            ExecutionResult::Halt { reason, .. } => Err(EvmError::Halt(format!("{reason:?}"))),
        }
    }

    /// Deploys `init_code` (creation bytecode followed by ABI-encoded
    /// constructor arguments) from `from`; returns the new contract's address.
    pub fn deploy(&mut self, from: Address, init_code: Bytes) -> Result<Address, EvmError> {
        let tx = Self::tx(from, TxKind::Create, init_code)?;
        let r = self
            .evm
            .transact_commit(tx)
            .map_err(|e| EvmError::Invalid(e.to_string()))?;
        Self::outcome(r)?
            .created
            .ok_or_else(|| EvmError::Halt("deployment created no contract".into()))
    }

    /// Sends a transaction calling `to` with `data` from `from` and commits it.
    pub fn call(&mut self, from: Address, to: Address, data: Bytes) -> Result<Outcome, EvmError> {
        let tx = Self::tx(from, TxKind::Call(to), data)?;
        let r = self
            .evm
            .transact_commit(tx)
            .map_err(|e| EvmError::Invalid(e.to_string()))?;
        Self::outcome(r)
    }

    /// Calls `to` without committing anything (an `eth_call`).
    pub fn view(&mut self, to: Address, data: Bytes) -> Result<Bytes, EvmError> {
        let tx = Self::tx(Address::ZERO, TxKind::Call(to), data)?;
        let r = self
            .evm
            .transact(tx)
            .map_err(|e| EvmError::Invalid(e.to_string()))?;
        Ok(Self::outcome(r.result)?.output)
    }

    fn view_call<C: SolCall>(
        &mut self,
        to: Address,
        call: &C,
        name: &'static str,
    ) -> Result<C::Return, EvmError> {
        let out = self.view(to, call.abi_encode().into())?;
        C::abi_decode_returns(&out).map_err(|_| EvmError::Decode(name))
    }
}

/// Creation bytecode of a committed build.
fn creation_code(artifact: &str, name: &'static str) -> Result<Vec<u8>, EvmError> {
    let bad = |message: String| EvmError::Artifact { name, message };
    let v: serde_json::Value = serde_json::from_str(artifact).map_err(|e| bad(e.to_string()))?;
    let code = v["bytecode"]
        .as_str()
        .ok_or_else(|| bad("no bytecode".into()))?;
    hex::decode(code.trim_start_matches("0x")).map_err(|e| bad(e.to_string()))
}

/// An EVM address as alloy's type.
pub fn address(a: &EvmAddress) -> Address {
    Address::from(a.0)
}

/// A Lode chain id (genesis block hash) as the contract's `bytes32`.
pub fn chain_id(h: &Hash32) -> B256 {
    B256::from(h.0)
}

/// The arguments of `claim` and `publishRoot` from a ledger claim proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimArgs {
    pub chain_id: B256,
    pub epoch: u64,
    pub root: B256,
    pub account: Address,
    pub cumulative: U256,
    pub proof: Vec<B256>,
}

fn b256(s: &str, what: &str) -> Result<B256, EvmError> {
    let h = s.strip_prefix("0x").unwrap_or(s);
    let mut b = [0u8; 32];
    hex::decode_to_slice(h, &mut b)
        .map_err(|_| EvmError::BadProof(format!("{what} is not 32 bytes of hex: {s:?}")))?;
    Ok(B256::from(b))
}

impl TryFrom<&ClaimProof> for ClaimArgs {
    type Error = EvmError;

    fn try_from(p: &ClaimProof) -> Result<Self, EvmError> {
        let cumulative: u128 = p
            .amount
            .parse()
            .map_err(|_| EvmError::BadProof(format!("amount {:?} is not base units", p.amount)))?;
        Ok(ClaimArgs {
            chain_id: b256(&p.chain_id, "chain_id")?,
            epoch: p.epoch,
            root: b256(&p.root, "root")?,
            account: address(&p.address),
            cumulative: U256::from(cumulative),
            proof: p
                .proof
                .iter()
                .map(|h| b256(h, "a proof node"))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// A deployed token + distributor pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimContract {
    pub token: Address,
    pub distributor: Address,
    /// Who may publish roots.
    pub owner: Address,
    /// The Lode chain whose roots the distributor accepts.
    pub lode_chain_id: B256,
}

/// The result of a successful claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    /// Tokens transferred to the account by this claim.
    pub paid: U256,
    pub gas_used: u64,
}

impl ClaimContract {
    /// Deploys `LodeTestToken` (minting `supply` to `owner`), then
    /// `LodeDistributor` for `lode_chain_id`, and moves the whole supply
    /// into the distributor.
    pub fn deploy(
        evm: &mut Evm,
        owner: Address,
        lode_chain_id: B256,
        supply: U256,
    ) -> Result<ClaimContract, EvmError> {
        let mut code = creation_code(TOKEN_ARTIFACT, "LodeTestToken")?;
        code.extend(LodeTestToken::constructorCall::new((owner, supply)).abi_encode());
        let token = evm.deploy(owner, code.into())?;
        let mut code = creation_code(DISTRIBUTOR_ARTIFACT, "LodeDistributor")?;
        code.extend(
            LodeDistributor::constructorCall::new((token, lode_chain_id, owner)).abi_encode(),
        );
        let distributor = evm.deploy(owner, code.into())?;
        let c = ClaimContract {
            token,
            distributor,
            owner,
            lode_chain_id,
        };
        let data = LodeTestToken::transferCall::new((distributor, supply)).abi_encode();
        evm.call(owner, token, data.into())?;
        Ok(c)
    }

    /// `publishRoot(chainId, epoch, root)` sent by `from`; returns the gas used.
    pub fn publish_root(
        &self,
        evm: &mut Evm,
        from: Address,
        chain_id: B256,
        epoch: u64,
        root: B256,
    ) -> Result<u64, EvmError> {
        let data = LodeDistributor::publishRootCall::new((chain_id, epoch, root)).abi_encode();
        Ok(evm.call(from, self.distributor, data.into())?.gas_used)
    }

    /// Publishes the chain, epoch and root a proof was made under (as the owner).
    pub fn publish(&self, evm: &mut Evm, args: &ClaimArgs) -> Result<u64, EvmError> {
        self.publish_root(evm, self.owner, args.chain_id, args.epoch, args.root)
    }

    /// `claim(account, cumulative, proof)` sent by `from` (anyone may send it;
    /// the tokens go to `account`).
    pub fn claim(
        &self,
        evm: &mut Evm,
        from: Address,
        account: Address,
        cumulative: U256,
        proof: &[B256],
    ) -> Result<Claimed, EvmError> {
        let call = LodeDistributor::claimCall::new((account, cumulative, proof.to_vec()));
        let out = evm.call(from, self.distributor, call.abi_encode().into())?;
        let paid = LodeDistributor::claimCall::abi_decode_returns(&out.output)
            .map_err(|_| EvmError::Decode("claim"))?;
        Ok(Claimed {
            paid,
            gas_used: out.gas_used,
        })
    }

    /// Claims with a ledger proof's arguments, sent by the account itself.
    pub fn claim_with(&self, evm: &mut Evm, args: &ClaimArgs) -> Result<Claimed, EvmError> {
        self.claim(
            evm,
            args.account,
            args.account,
            args.cumulative,
            &args.proof,
        )
    }

    /// The token balance of `who`.
    pub fn balance_of(&self, evm: &mut Evm, who: Address) -> Result<U256, EvmError> {
        evm.view_call(
            self.token,
            &LodeTestToken::balanceOfCall::new((who,)),
            "balanceOf",
        )
    }

    /// What the distributor has paid `who` so far.
    pub fn claimed(&self, evm: &mut Evm, who: Address) -> Result<U256, EvmError> {
        evm.view_call(
            self.distributor,
            &LodeDistributor::claimedCall::new((who,)),
            "claimed",
        )
    }

    /// The newest published root and its epoch.
    pub fn current_root(&self, evm: &mut Evm) -> Result<(u64, B256), EvmError> {
        let root = evm.view_call(
            self.distributor,
            &LodeDistributor::rootCall::new(()),
            "root",
        )?;
        let epoch = evm.view_call(
            self.distributor,
            &LodeDistributor::epochCall::new(()),
            "epoch",
        )?;
        Ok((epoch, root))
    }
}
