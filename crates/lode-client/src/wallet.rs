//! The wallet side of the gateway API: account balances and history, signed
//! entries (withdrawals, transfers), entry status and claim proofs. See the
//! gateway's `wallet_api.rs` for the routes.

use crate::{Client, ClientError, now_ms};
use lode_ledger::{ClaimProof, Entry, Event, SignedEntry, Transfer, Withdraw};
use lode_proto::{Did, EvmAddress, Keypair};
use serde::{Deserialize, Serialize};

/// `GET /v1/accounts/{did}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub account: String,
    /// Base units, decimal.
    pub balance: String,
    pub next_nonce: u64,
    /// Whether the account is a registered node.
    pub node: bool,
    /// The node's earnings in the open epoch (for nodes).
    #[serde(default)]
    pub pending: Option<lode_ledger::PendingEarnings>,
}

/// `GET /v1/accounts/{did}/history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryView {
    pub account: String,
    pub height: u64,
    pub events: Vec<Event>,
}

/// Where a submitted entry stands (`POST /v1/entries`,
/// `GET /v1/accounts/{did}/entries/{nonce}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryStatus {
    pub account: String,
    pub nonce: u64,
    /// `pending`, `included` (in block `height`) or `claimable` (a
    /// withdrawal in the root of `claimable_from_epoch`; `proof` is ready).
    pub status: String,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub amount: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub height: Option<u64>,
    #[serde(default)]
    pub block_hash: Option<String>,
    /// The epoch whose root publishes the withdrawal.
    #[serde(default)]
    pub epoch: Option<u64>,
    #[serde(default)]
    pub epoch_ends_at_ms: Option<u64>,
    #[serde(default)]
    pub claimable_from_epoch: Option<u64>,
    #[serde(default)]
    pub proof: Option<ClaimProof>,
}

/// `GET /v1/addresses/{address}`: what an EVM payout address can claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressView {
    pub address: String,
    pub chain_id: String,
    pub withdrawn_cumulative: String,
    pub published_epoch: Option<u64>,
    pub claimable_cumulative: String,
    pub unpublished: String,
    pub next_root_at_ms: u64,
    pub nodes: Vec<String>,
    pub proof: Option<ClaimProof>,
}

impl Client {
    /// Balance and next nonce of an account.
    pub fn account(&self, did: &Did) -> Result<AccountView, ClientError> {
        self.get_json(&format!("/v1/accounts/{did}"))
    }

    /// The newest `limit` balance changes of an account.
    pub fn history(&self, did: &Did, limit: usize) -> Result<HistoryView, ClientError> {
        self.get_json(&format!("/v1/accounts/{did}/history?limit={limit}"))
    }

    /// What a payout address can claim.
    pub fn address(&self, address: &EvmAddress) -> Result<AddressView, ClientError> {
        self.get_json(&format!("/v1/addresses/{address}"))
    }

    /// The claim proof of `address` in the root of `epoch` (default: the last closed).
    pub fn claim_proof(
        &self,
        address: &EvmAddress,
        epoch: Option<u64>,
    ) -> Result<ClaimProof, ClientError> {
        match epoch {
            Some(e) => self.get_json(&format!("/v1/claims/{address}?epoch={e}")),
            None => self.get_json(&format!("/v1/claims/{address}")),
        }
    }

    /// Where `did`'s entry with `nonce` stands.
    pub fn entry_status(&self, did: &Did, nonce: u64) -> Result<EntryStatus, ClientError> {
        self.get_json(&format!("/v1/accounts/{did}/entries/{nonce}"))
    }

    /// Submits a signed account entry; the answer comes once it is durable.
    pub fn submit_entry(&self, entry: &Entry) -> Result<EntryStatus, ClientError> {
        self.handle(self.http.post(self.url("/v1/entries")).json(entry).send())
    }

    /// Signs a withdrawal of `amount` to `to` with the account's next nonce
    /// (from the gateway unless given) for the gateway's chain.
    pub fn sign_withdraw(
        &self,
        key: &Keypair,
        to: EvmAddress,
        amount: u128,
        nonce: Option<u64>,
    ) -> Result<Entry, ClientError> {
        self.sign_entry(key, nonce, |chain| Withdraw { chain, to, amount })
    }

    /// Signs a transfer like [`Client::sign_withdraw`].
    pub fn sign_transfer(
        &self,
        key: &Keypair,
        to: Did,
        amount: u128,
        memo: String,
        nonce: Option<u64>,
    ) -> Result<Entry, ClientError> {
        self.sign_entry(key, nonce, |chain| Transfer {
            chain,
            to,
            amount,
            memo,
        })
    }

    /// Signs an account entry for the gateway's chain with `nonce`, or the
    /// account's next nonce as the gateway reports it.
    pub fn sign_entry<T: SignedEntry>(
        &self,
        key: &Keypair,
        nonce: Option<u64>,
        message: impl FnOnce(lode_proto::Hash32) -> T,
    ) -> Result<Entry, ClientError> {
        let chain = self.chain_id()?;
        let nonce = match nonce {
            Some(n) => n,
            None => self.account(&key.did())?.next_nonce,
        };
        Entry::sign(key, nonce, now_ms(), &message(chain))
            .map_err(|e| ClientError::Sign(e.to_string()))
    }
}
