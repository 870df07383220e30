//! Typed errors. Every refused input gets one; nothing panics on bad input.

use crate::types::{JobId, UnitRef};
use serde::{Deserialize, Serialize};

/// Why a job specification is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum InvalidJob {
    #[error("a job needs at least one unit")]
    NoUnits,
    #[error("{units} units exceed the limit of {max} per job")]
    TooManyUnits { units: u32, max: u32 },
    #[error("quorum must be at least 1")]
    ZeroQuorum,
    #[error("max_replicas ({max_replicas}) is below the quorum ({quorum})")]
    MaxReplicasBelowQuorum { quorum: u8, max_replicas: u8 },
    #[error("max_replicas ({0}) exceeds the limit of {limit}", limit = crate::MAX_REPLICAS_LIMIT)]
    TooManyReplicas(u8),
    #[error("the fuel limit must be greater than zero")]
    ZeroFuel,
    #[error("unit index {index} listed as done is out of range (job has {units} units)")]
    DoneIndexOutOfRange { index: u32, units: u32 },
}

/// Why a node description is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum InvalidNode {
    #[error("speed must be greater than zero fuel per second")]
    ZeroSpeed,
    #[error("reputation {0} is above the maximum {max}", max = crate::REPUTATION_MAX)]
    ReputationTooHigh(u32),
}

/// Why a configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("trust_threshold must be at least 1")]
    ZeroTrustThreshold,
    #[error("lease_slack_percent must be at least 100")]
    SlackBelowOne,
    #[error("max_batch must be at least 1")]
    ZeroBatch,
    #[error("retry_scan_limit must be at least 1")]
    ZeroScan,
    #[error("reputation values must not exceed {max}", max = crate::REPUTATION_MAX)]
    Reputation,
    #[error("flags.max_claimed_speed must be at least 1 fuel/s")]
    ZeroSpeedCeiling,
}

/// Everything the scheduler can refuse. `code()` gives a stable machine-readable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Error {
    #[error("unknown node")]
    UnknownNode,
    #[error("node is offline (it left; it must join again)")]
    NodeOffline,
    #[error("invalid node: {0}")]
    InvalidNode(InvalidNode),
    #[error("unknown job {0}")]
    UnknownJob(JobId),
    #[error("job {0} already exists")]
    DuplicateJob(JobId),
    #[error("invalid job: {0}")]
    InvalidJob(InvalidJob),
    #[error("unit {unit} does not exist (job has {units} units)")]
    UnknownUnit { unit: UnitRef, units: u32 },
    #[error("unit {0} was never assigned to this node")]
    NotAssigned(UnitRef),
    #[error("this node already returned a result for unit {0}")]
    DuplicateResult(UnitRef),
    #[error("result for unit {unit} claims {fuel_used} fuel, above the unit's limit {limit}")]
    FuelAboveLimit {
        unit: UnitRef,
        fuel_used: u64,
        limit: u64,
    },
    #[error("job {0} still has undecided units (cancel it first)")]
    JobNotFinished(JobId),
}

impl Error {
    /// A stable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Error::UnknownNode => "unknown_node",
            Error::NodeOffline => "node_offline",
            Error::InvalidNode(_) => "invalid_node",
            Error::UnknownJob(_) => "unknown_job",
            Error::DuplicateJob(_) => "duplicate_job",
            Error::InvalidJob(_) => "invalid_job",
            Error::UnknownUnit { .. } => "unknown_unit",
            Error::NotAssigned(_) => "not_assigned",
            Error::DuplicateResult(_) => "duplicate_result",
            Error::FuelAboveLimit { .. } => "fuel_above_limit",
            Error::JobNotFinished(_) => "job_not_finished",
        }
    }
}
