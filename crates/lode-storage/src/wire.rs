//! Messages of the storage API (requester ↔ gateway, JSON) and of the node
//! storage channel (node ↔ gateway, binary canonical, signed by the node).
//!
//! * `PUT /v1/storage/{file}`: header `x-lode-envelope` = the requester's signed
//!   `StorageContract` ledger entry (JSON), body = the file's bytes. The gateway
//!   encodes the file again and checks every share root before it records the
//!   contract.
//! * `GET /v1/storage/{file}`: public status (manifest, holders, audits).
//! * `GET /v1/storage/{file}/shares/{i}`: one share's bytes; header `x-lode-read`
//!   = a signed [`ReadFile`] of the file's requester. The reader checks the
//!   share against its root.
//! * `POST /v1/node/storage`: a node's signed [`StoragePoll`] →
//!   [`StorageTasks`]. The node must hold a session on the node channel.

use crate::audit::ChunkProof;
use lode_proto::{Hash32, Message};
use serde::{Deserialize, Serialize};

/// Path of the node storage channel.
pub const NODE_STORAGE_PATH: &str = "/v1/node/storage";

/// Requester → gateway: a signed read of a stored file's shares (freshness is
/// checked; reads change nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadFile {
    pub file: Hash32,
}

impl Message for ReadFile {
    const KIND: &'static str = "lode/requester/read-file/v1";
}

/// Requester → gateway: end a storage contract early: holders delete their
/// shares and the unspent escrow is refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteFile {
    pub file: Hash32,
}

impl Message for DeleteFile {
    const KIND: &'static str = "lode/requester/delete-file/v1";
}

/// Node → gateway: what the node offers and the answers to earlier tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoragePoll {
    /// Disk the node offers to shares, in bytes.
    pub capacity_bytes: u64,
    /// Of which still free.
    pub free_bytes: u64,
    pub answers: Vec<StorageAnswer>,
}

impl Message for StoragePoll {
    const KIND: &'static str = "lode/node/storage-poll/v1";
}

/// A node's answer to one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageAnswer {
    /// The share is written and synced (or could not be: `error`).
    Stored {
        file: Hash32,
        share: u16,
        error: Option<String>,
    },
    /// The challenged chunks with their proofs.
    Proof { id: u64, proofs: Vec<ChunkProof> },
    /// The share's bytes (a read or a repair).
    Share {
        id: u64,
        #[serde(with = "lode_proto::wire::bytes_hex")]
        bytes: Vec<u8>,
    },
    /// A challenge or fetch the node could not serve.
    Failed { id: u64, error: String },
}

/// Gateway → node: one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageTask {
    /// Keep this share (its bytes must match `root`).
    Store {
        file: Hash32,
        share: u16,
        root: Hash32,
        chunk_bytes: u32,
        #[serde(with = "lode_proto::wire::bytes_hex")]
        bytes: Vec<u8>,
    },
    /// Prove possession of the chunks [`crate::Challenge::indices`] names.
    Challenge {
        id: u64,
        file: Hash32,
        share: u16,
        seed: Hash32,
        count: u32,
        deadline_ms: u64,
    },
    /// Send the share's bytes.
    Fetch { id: u64, file: Hash32, share: u16 },
    /// The share is no longer needed here.
    Delete { file: Hash32, share: u16 },
}

/// Gateway → node: answer to a [`StoragePoll`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StorageTasks {
    pub tasks: Vec<StorageTask>,
    pub now_ms: u64,
    /// Poll again within this long (the gateway counts a node silent for much
    /// longer as offline).
    pub poll_ms: u64,
}
