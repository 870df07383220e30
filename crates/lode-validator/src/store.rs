//! The undecided-proposal store: every proposal this validator built or
//! received (complete and checked), persisted in a redb file under the
//! engine's home **before** the engine hears of it, keyed by
//! (height, round, block id). After a crash the engine answers
//! `StartedRound` from it, re-proposes its own block of a height, re-streams
//! parts, and finds the block a replayed `Decided` names. Heights at or below
//! the committed one are pruned.

use std::path::Path;

use borsh::{BorshDeserialize, BorshSerialize};
use bytes::Bytes;
use malachitebft_core_types::Round;
use redb::{Database, ReadableDatabase, TableDefinition};

use crate::ctx::{Address, ValueId};

/// (height, round, block id) → borsh [`Row`].
const PROPOSALS: TableDefinition<'_, (u64, u32, [u8; 32]), &[u8]> =
    TableDefinition::new("proposals");

/// A store failure (local: the engine stops).
#[derive(Debug, thiserror::Error)]
#[error("proposal store: {0}")]
pub struct StoreError(String);

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// A stored proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub height: u64,
    pub round: u32,
    pub pol_round: Round,
    pub proposer: Address,
    pub block: ValueId,
    pub bytes: Bytes,
    /// The application's verdict.
    pub valid: bool,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct Row {
    pol_round: Round,
    proposer: Address,
    bytes: Vec<u8>,
    valid: bool,
}

/// The store (one redb file).
#[derive(Debug)]
pub struct ProposalStore {
    db: Database,
}

impl ProposalStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(err)?;
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(PROPOSALS).map_err(err)?;
        txn.commit().map_err(err)?;
        Ok(Self { db })
    }

    /// Stores a proposal durably (replacing one with the same key).
    pub fn put(&self, p: &Stored) -> Result<(), StoreError> {
        let row = Row {
            pol_round: p.pol_round,
            proposer: p.proposer,
            bytes: p.bytes.to_vec(),
            valid: p.valid,
        };
        let value = borsh::to_vec(&row).map_err(err)?;
        let txn = self.db.begin_write().map_err(err)?;
        {
            let mut t = txn.open_table(PROPOSALS).map_err(err)?;
            t.insert((p.height, p.round, p.block.0.0), value.as_slice())
                .map_err(err)?;
        }
        txn.commit().map_err(err)
    }

    /// Every proposal stored for `height` (all rounds), by round.
    pub fn at_height(&self, height: u64) -> Result<Vec<Stored>, StoreError> {
        let txn = self.db.begin_read().map_err(err)?;
        let t = txn.open_table(PROPOSALS).map_err(err)?;
        let mut out = Vec::new();
        for row in t
            .range((height, 0, [0u8; 32])..=(height, u32::MAX, [0xffu8; 32]))
            .map_err(err)?
        {
            let (k, v) = row.map_err(err)?;
            let (h, round, id) = k.value();
            let row: Row = borsh::from_slice(v.value()).map_err(err)?;
            out.push(Stored {
                height: h,
                round,
                pol_round: row.pol_round,
                proposer: row.proposer,
                block: ValueId(lode_proto::Hash32(id)),
                bytes: Bytes::from(row.bytes),
                valid: row.valid,
            });
        }
        Ok(out)
    }

    /// The proposals stored for (`height`, `round`).
    pub fn at_round(&self, height: u64, round: u32) -> Result<Vec<Stored>, StoreError> {
        Ok(self
            .at_height(height)?
            .into_iter()
            .filter(|p| p.round == round)
            .collect())
    }

    /// A stored proposal of `block` at `height` (any round).
    pub fn find(&self, height: u64, block: ValueId) -> Result<Option<Stored>, StoreError> {
        Ok(self
            .at_height(height)?
            .into_iter()
            .find(|p| p.block == block))
    }

    /// The proposal `me` built for `height`, if any (the earliest round).
    pub fn own(&self, height: u64, me: Address) -> Result<Option<Stored>, StoreError> {
        Ok(self
            .at_height(height)?
            .into_iter()
            .find(|p| p.proposer == me && p.pol_round == Round::Nil))
    }

    /// Removes every proposal at or below `height`.
    pub fn prune_through(&self, height: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(err)?;
        {
            let mut t = txn.open_table(PROPOSALS).map_err(err)?;
            t.retain(|(h, _, _), _| h > height).map_err(err)?;
        }
        txn.commit().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_proto::{Hash32, Keypair};

    #[test]
    fn put_find_prune_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.redb");
        let me = Address(Keypair::from_secret_bytes(&[1; 32]).did());
        let p = |h, r, b: u8| Stored {
            height: h,
            round: r,
            pol_round: Round::Nil,
            proposer: me,
            block: ValueId(Hash32([b; 32])),
            bytes: Bytes::from(vec![b; 10]),
            valid: true,
        };
        {
            let s = ProposalStore::open(&path).unwrap();
            s.put(&p(1, 0, 1)).unwrap();
            s.put(&p(2, 0, 2)).unwrap();
            s.put(&p(2, 1, 3)).unwrap();
        }
        let s = ProposalStore::open(&path).unwrap();
        assert_eq!(s.at_round(2, 1).unwrap(), vec![p(2, 1, 3)]);
        assert_eq!(
            s.find(2, ValueId(Hash32([2; 32]))).unwrap(),
            Some(p(2, 0, 2))
        );
        assert_eq!(s.own(2, me).unwrap(), Some(p(2, 0, 2)));
        s.prune_through(1).unwrap();
        assert!(s.at_height(1).unwrap().is_empty());
        assert_eq!(s.at_height(2).unwrap().len(), 2);
    }
}
