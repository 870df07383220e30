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

/// Called with the bytes of an upload sent so far.
pub type UploadProgress = std::sync::Arc<dyn Fn(u64) + Send + Sync>;

/// An upload body that reports how much of it has been read out.
struct CountingReader {
    data: std::io::Cursor<Vec<u8>>,
    sent: u64,
    progress: Option<UploadProgress>,
}

impl std::io::Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Small reads so a progress bar moves smoothly.
        let max = buf.len().min(256 << 10);
        let n = self.data.read(&mut buf[..max])?;
        self.sent += n as u64;
        if let Some(p) = &self.progress {
            p(self.sent);
        }
        Ok(n)
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
        self.storage_put_with_progress(key, data, opts, None)
    }

    /// [`Client::storage_put`], calling `progress(bytes_sent)` as the body
    /// goes out (from the HTTP client's thread).
    pub fn storage_put_with_progress(
        &self,
        key: &Keypair,
        data: &[u8],
        opts: PutOptions,
        progress: Option<UploadProgress>,
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
        // Learn of a refusal (no room, no funds, …) before sending the bytes:
        // a gateway that refuses mid-body closes the connection, and the
        // typed answer would be lost.
        self.handle::<serde_json::Value>(
            self.http
                .post(self.url(&format!("/v1/storage/{}/check", Hash32(id).to_hex())))
                .header(lode_proto::wire::UPLOAD_HEADER, header.clone())
                .send(),
        )?;
        self.handle(
            self.http
                .put(self.url(&format!("/v1/storage/{}", Hash32(id).to_hex())))
                .header(lode_proto::wire::UPLOAD_HEADER, header)
                .timeout(std::time::Duration::from_secs(600))
                .body(reqwest::blocking::Body::sized(
                    CountingReader {
                        data: std::io::Cursor::new(data.to_vec()),
                        sent: 0,
                        progress,
                    },
                    data.len() as u64,
                ))
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

    /// Reads a file back from any `k` shares: the manifest comes from the
    /// requester's signed contract on the ledger ([`Client::storage_contract`]);
    /// `k` shares are read at once (those whose holders are online first),
    /// each failure replaced by the next share, each share checked against
    /// its root; then the file is decoded and checked against its content
    /// hash. `on_share(index, ok)` reports progress. Returns the bytes and the
    /// shares used.
    pub fn storage_get(
        &self,
        key: &Keypair,
        id: &str,
        mut on_share: impl FnMut(usize, Result<(), String>),
    ) -> Result<(Vec<u8>, Vec<usize>), ClientError> {
        let file = parse_id(id)?;
        let manifest = self.storage_contract(&key.did(), &file)?.manifest;
        let layout = manifest
            .layout()
            .map_err(|e| ClientError::BadResponse(e.to_string()))?;
        let (k, n) = (usize::from(manifest.k), usize::from(manifest.n));
        // Shares whose holder the gateway sees online first (a hint only:
        // every share is checked against the signed roots anyway).
        let online: Vec<bool> = self
            .storage_status(id)
            .ok()
            .and_then(|v| {
                v["shares"].as_array().map(|a| {
                    a.iter()
                        .map(|s| s["holder_online"].as_bool().unwrap_or(false))
                        .collect()
                })
            })
            .unwrap_or_default();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|i| !online.get(*i).copied().unwrap_or(false));
        let mut shares: Vec<Option<Vec<u8>>> = vec![None; n];
        let mut used = vec![];
        let manifest_ref = &manifest;
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel();
            let mut next = order.iter().copied();
            let mut inflight = 0usize;
            loop {
                // Keep exactly enough reads going to reach k if they all succeed.
                while inflight + used.len() < k {
                    let Some(i) = next.next() else { break };
                    let tx = tx.clone();
                    scope.spawn(move || {
                        let r = self
                            .storage_share(key, &file, i)
                            .map_err(|e| e.to_string())
                            .and_then(|b| {
                                manifest_ref
                                    .check_share(i, &b)
                                    .map(|_| b)
                                    .map_err(|e| e.to_string())
                            });
                        let _ = tx.send((i, r));
                    });
                    inflight += 1;
                }
                if inflight == 0 {
                    break;
                }
                let Ok((i, r)) = rx.recv() else { break };
                inflight -= 1;
                match r {
                    Ok(b) => {
                        on_share(i, Ok(()));
                        shares[i] = Some(b);
                        used.push(i);
                    }
                    Err(e) => on_share(i, Err(e)),
                }
                if used.len() == k {
                    break;
                }
            }
        });
        used.sort_unstable();
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

    /// The signed contract of `file` as the ledger holds it, checked here:
    /// the envelope's signature, its signer (`owner`, who alone can read the
    /// file), its chain, its file id, and that the ledger's block at the
    /// height given lists that very entry as a verified `storage_contract`.
    /// A reader takes the manifest (share roots, content hash) from this,
    /// never from the gateway's own copy.
    pub fn storage_contract(
        &self,
        owner: &Did,
        file: &Hash32,
    ) -> Result<StorageContract, ClientError> {
        let v: serde_json::Value =
            self.get_json(&format!("/v1/storage/{}/contract", file.to_hex()))?;
        let bad = |why: String| ClientError::BadResponse(format!("contract of {file}: {why}"));
        let env: lode_proto::Envelope = serde_json::from_value(v["envelope"].clone())
            .map_err(|e| bad(format!("not an envelope: {e}")))?;
        let opened = env
            .open_signed::<StorageContract>()
            .map_err(|e| bad(format!("bad signature: {e}")))?;
        if opened.signer != *owner {
            return Err(bad(format!("signed by {}, not by {owner}", opened.signer)));
        }
        let c = opened.message;
        if c.manifest.file != *file {
            return Err(bad("the contract names another file".into()));
        }
        if c.chain != self.chain_id()? {
            return Err(bad("the contract is for another chain".into()));
        }
        let (Some(block), Some(index)) = (v["block"].as_u64(), v["index"].as_u64()) else {
            return Err(bad("no block height and index".into()));
        };
        let b: serde_json::Value =
            self.get_json(&format!("/v1/ledger/blocks/{block}?offset={index}&limit=1"))?;
        let e = &b["entries"][0];
        let listed = e["kind"] == "storage_contract"
            && e["signer"].as_str() == Some(owner.to_string().as_str())
            && e["verified"] == true
            && b["block"]["verification"]["ok"] == true;
        if !listed {
            return Err(bad(format!(
                "block {block} does not hold it at index {index}"
            )));
        }
        Ok(c)
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
