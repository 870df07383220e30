//! The storage module of the state machine: storage contracts (a manifest and
//! its escrow) and share placements. Audited storage is credited by ordinary
//! [`crate::WorkReceipt`]s of kind `storage` (byte-hours) against the
//! contract's escrow, settled by ordinary settlements and rewarded at epoch
//! close by the same pro-rata rule as compute; failed audits are
//! [`crate::Penalty`] entries with reason `failed_audit`.

use super::{EntryCtx, State};
use crate::entry::{StorageContract, StorageShare};
use crate::error::EntryError;
use lode_proto::Envelope;

/// Largest file a contract may describe (the gateway's own limit is lower).
pub const MAX_CONTRACT_FILE_BYTES: u64 = lode_storage::manifest::MAX_FILE_BYTES;

impl State {
    pub(super) fn apply_storage_contract(
        &mut self,
        e: &Envelope,
        ctx: &EntryCtx,
    ) -> Result<(), EntryError> {
        const KIND: &str = "storage_contract";
        let p = self.open::<StorageContract>(e, ctx, KIND)?;
        let m = &p.message;
        self.check_chain(&m.chain)?;
        let malformed = |reason: String| EntryError::Malformed { kind: KIND, reason };
        m.manifest
            .validate(MAX_CONTRACT_FILE_BYTES)
            .map_err(|e| malformed(e.to_string()))?;
        let required = m
            .manifest
            .required_escrow(m.term_hours, m.price_per_byte_hour)
            .map_err(|e| malformed(e.to_string()))?;
        if m.amount != required {
            return Err(malformed(format!(
                "escrow is {} base units; the term needs exactly {required}",
                m.amount
            )));
        }
        let file = m.manifest.file;
        if self.jobs.contains_key(&file) {
            return Err(EntryError::JobExists(file));
        }
        self.lock_escrow(e.signer, file, m.amount, m.price_per_byte_hour, ctx)
    }

    pub(super) fn apply_storage_share(&mut self, s: &StorageShare) -> Result<(), EntryError> {
        super::text_ok("reason", &s.reason)?;
        let job = self
            .jobs
            .get(&s.file)
            .ok_or(EntryError::UnknownJob(s.file))?;
        if job.closed {
            return Err(EntryError::JobClosed(s.file));
        }
        if !self.nodes.contains_key(&s.node) {
            return Err(EntryError::UnknownNode(s.node));
        }
        Ok(())
    }
}
