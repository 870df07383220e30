//! Published models: the ledger records the hash of each community model the
//! network runs (today the scam classifier, `lode-guard`), so any browser can
//! check that the model a gateway serves is the published one.
//!
//! Invariants: a name is 1–64 bytes of `[a-z0-9-]`; publishing the hash already
//! in force is refused (every record is a real change); the record keeps the
//! height it was published at.

use super::{State, text_ok};
use crate::entry::PublishModel;
use crate::error::EntryError;
use lode_proto::Hash32;
use serde::{Deserialize, Serialize};

/// Longest model name.
pub const MAX_MODEL_NAME: usize = 64;

/// The model in force under a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub sha256: Hash32,
    pub feature_version: u32,
    /// Height of the block that published it.
    pub height: u64,
    pub detail: String,
}

impl State {
    /// The model published under `name`, if any.
    pub fn published_model(&self, name: &str) -> Option<&ModelRecord> {
        self.models.get(&name.to_string())
    }

    pub(super) fn apply_publish_model(
        &mut self,
        m: &PublishModel,
        height: u64,
    ) -> Result<(), EntryError> {
        text_ok("detail", &m.detail)?;
        let name_ok = !m.name.is_empty()
            && m.name.len() <= MAX_MODEL_NAME
            && m.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(EntryError::Malformed {
                kind: "publish_model",
                reason: format!(
                    "a model name is 1 to {MAX_MODEL_NAME} characters of a-z, 0-9 and '-'"
                ),
            });
        }
        if self
            .models
            .get(&m.name)
            .is_some_and(|r| r.sha256 == m.sha256)
        {
            return Err(EntryError::ModelAlreadyPublished {
                name: m.name.clone(),
                sha256: m.sha256,
            });
        }
        self.models.insert(
            m.name.clone(),
            ModelRecord {
                sha256: m.sha256,
                feature_version: m.feature_version,
                height,
                detail: m.detail.clone(),
            },
        );
        Ok(())
    }
}
