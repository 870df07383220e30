//! Storage requests: put a file (the manifest is built and signed here, the
//! gateway checks it against the bytes), read it back from any `k` shares
//! (each checked against its root, the file against its content hash), status,
//! list and delete.

use crate::{Client, ClientError, now_ms};
use lode_ledger::{Entry, StorageContract};
use lode_proto::{Did, Hash32, Keypair};
use lode_storage::Manifest;
use lode_storage::coding::{self, DEFAULT_SHARD_BYTES};
use lode_storage::merkle::DEFAULT_CHUNK_BYTES;
use lode_storage::wire::{DeleteFile, ReadFile};

/// What `put` sends.
#[derive(Debug, Clone, Copy)]
pub struct PutOptions {
    pub k: u16,
    pub n: u16,
    pub term_hours: u64,
    pub price_per_byte_hour: u128,
}

impl Default for PutOptions {
    fn default() -> Self {
        Self {
            k: 4,
            n: 8,
            term_hours: 30 * 24,
            price_per_byte_hour: 1,
        }
    }
}

impl Client {
    /// Builds the manifest of `data`, signs the contract (escrow for the term)
    /// and uploads the file. Returns the gateway's answer (file id, sizes, escrow).
    pub fn storage_put(
        &self,
        key: &Keypair,
        data: &[u8],
        opts: PutOptions,
    ) -> Result<serde_json::Value, ClientError> {
        let mut id = [0u8; 32];
        getrandom::fill(&mut id).map_err(|e| ClientError::Sign(e.to_string()))?;
        let (manifest, _) = Manifest::build(
            Hash32(id),
            data,
            opts.k,
            opts.n,
            DEFAULT_SHARD_BYTES,
            DEFAULT_CHUNK_BYTES,
        )
        .map_err(|e| ClientError::Spec(e.to_string()))?;
        let amount = manifest
            .required_escrow(opts.term_hours, opts.price_per_byte_hour)
            .map_err(|e| ClientError::Spec(e.to_string()))?;
        let contract = StorageContract {
            chain: self.chain_id()?,
            manifest,
            term_hours: opts.term_hours,
            amount,
            price_per_byte_hour: opts.price_per_byte_hour,
        };
        let entry = Entry::sign(key, 0, now_ms(), &contract)
            .map_err(|e| ClientError::Sign(e.to_string()))?;
        let env = entry
            .envelope()
            .ok_or_else(|| ClientError::Sign("contract entry has no envelope".into()))?;
        let header = serde_json::to_string(env).map_err(|e| ClientError::Sign(e.to_string()))?;
        self.handle(
            self.http
                .put(self.url(&format!("/v1/storage/{}", Hash32(id).to_hex())))
                .header(lode_proto::wire::UPLOAD_HEADER, header)
                .timeout(std::time::Duration::from_secs(600))
                .body(data.to_vec())
                .send(),
        )
    }

    /// Public status of a stored file.
    pub fn storage_status(&self, id: &str) -> Result<serde_json::Value, ClientError> {
        let file = parse_id(id)?;
        self.get_json(&format!("/v1/storage/{}", file.to_hex()))
    }

    /// The files of a requester.
    pub fn storage_list(&self, requester: &Did) -> Result<serde_json::Value, ClientError> {
        self.get_json(&format!("/v1/storage?requester={requester}"))
    }

    /// One share's bytes (signed read; not checked here).
    pub fn storage_share(
        &self,
        key: &Keypair,
        file: &Hash32,
        i: usize,
    ) -> Result<Vec<u8>, ClientError> {
        let env = Self::seal(key, &ReadFile { file: *file })?;
        let header = serde_json::to_string(&env).map_err(|e| ClientError::Sign(e.to_string()))?;
        let r = self
            .http
            .get(self.url(&format!("/v1/storage/{}/shares/{i}", file.to_hex())))
            .header(lode_proto::wire::READ_HEADER, header)
            .send()
            .map_err(|source| ClientError::Connect {
                url: self.base.clone(),
                source,
            })?;
        if !r.status().is_success() {
            return self.handle::<serde_json::Value>(Ok(r)).map(|_| vec![]);
        }
        Ok(r.bytes()
            .map_err(|e| ClientError::BadResponse(e.to_string()))?
            .to_vec())
    }

    /// Reads a file back: shares one by one until `k` pass their root check,
    /// then decodes and checks the content hash. `on_share(index, ok)` reports
    /// progress. Returns the bytes and the shares used.
    pub fn storage_get(
        &self,
        key: &Keypair,
        id: &str,
        mut on_share: impl FnMut(usize, Result<(), String>),
    ) -> Result<(Vec<u8>, Vec<usize>), ClientError> {
        let file = parse_id(id)?;
        let status = self.storage_status(id)?;
        let manifest: Manifest = serde_json::from_value(status["manifest"].clone())
            .map_err(|e| ClientError::BadResponse(format!("manifest: {e}")))?;
        if manifest.file != file {
            return Err(ClientError::BadResponse(
                "the gateway answered with another file's manifest".into(),
            ));
        }
        let layout = manifest
            .layout()
            .map_err(|e| ClientError::BadResponse(e.to_string()))?;
        let (k, n) = (usize::from(manifest.k), usize::from(manifest.n));
        let mut shares: Vec<Option<Vec<u8>>> = vec![None; n];
        let mut used = vec![];
        for (i, slot) in shares.iter_mut().enumerate() {
            if used.len() == k {
                break;
            }
            let r = self
                .storage_share(key, &file, i)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    manifest
                        .check_share(i, &b)
                        .map(|_| b)
                        .map_err(|e| e.to_string())
                });
            match r {
                Ok(b) => {
                    on_share(i, Ok(()));
                    *slot = Some(b);
                    used.push(i);
                }
                Err(e) => on_share(i, Err(e)),
            }
        }
        let refs: Vec<Option<&[u8]>> = shares.iter().map(|s| s.as_deref()).collect();
        let data = coding::decode(&layout, &refs).map_err(|e| {
            ClientError::BadResponse(format!(
                "only {} of the {k} shares needed could be read: {e}",
                used.len()
            ))
        })?;
        if *blake3::hash(&data).as_bytes() != manifest.content.0 {
            return Err(ClientError::BadResponse(
                "the rebuilt file does not match its content hash".into(),
            ));
        }
        Ok((data, used))
    }

    /// Ends a contract early; the unspent escrow is refunded.
    pub fn storage_delete(
        &self,
        key: &Keypair,
        id: &str,
    ) -> Result<serde_json::Value, ClientError> {
        let file = parse_id(id)?;
        self.post_envelope(
            &format!("/v1/storage/{}/delete", file.to_hex()),
            &Self::seal(key, &DeleteFile { file })?,
        )
    }
}

fn parse_id(id: &str) -> Result<Hash32, ClientError> {
    id.parse()
        .map_err(|_| ClientError::Spec(format!("{id:?} is not a file id (64 hex digits)")))
}
