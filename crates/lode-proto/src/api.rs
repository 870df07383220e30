//! JSON views of the gateway's requester API (`GET /v1/jobs[/{id}]`,
//! `GET /v1/jobs/{id}/results`): the gateway serializes them, clients parse them.
//! Token amounts are base units as decimal strings (JSON numbers cannot hold u128).

use serde::{Deserialize, Serialize};

/// A job's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    /// Job id, hex.
    pub job: String,
    pub name: String,
    /// The requester's did:key.
    pub requester: String,
    /// `running`, `finished`, `cancelled` or `failed`.
    pub status: String,
    pub units: u32,
    pub completed: u32,
    pub failed: u32,
    pub in_flight: u32,
    pub remaining: u32,
    pub quorum: u8,
    pub created_ms: u64,
    pub finished_ms: Option<u64>,
    /// Base units, decimal strings.
    pub escrowed: String,
    pub cost_so_far: String,
    pub refunded: String,
    pub fuel_verified: String,
}

impl JobView {
    pub fn is_done(&self) -> bool {
        self.status != "running"
    }
}

/// One unit's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitResult {
    pub unit: u32,
    /// `verified`, `failed`, `pending` or `cancelled`.
    pub status: String,
    pub exit_code: Option<i32>,
    pub fuel_used: Option<u64>,
    pub output_hash: Option<String>,
    /// Hex of the output bytes.
    pub stdout: Option<String>,
    pub error: Option<String>,
    /// did:keys of the nodes credited with it.
    pub credited: Vec<String>,
    pub basis: Option<String>,
}

impl UnitResult {
    /// Decoded stdout bytes.
    pub fn stdout_bytes(&self) -> Option<Vec<u8>> {
        self.stdout.as_deref().and_then(|h| hex::decode(h).ok())
    }
}
