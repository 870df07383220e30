//! Requester-side client of a Lode gateway (blocking HTTP).
//!
//! * [`resolve_inputs`] turns a [`JobSpec`]'s inputs into work units (files, globs,
//!   inline stdin, argument vectors).
//! * [`Client::submit`] uploads the module if needed, builds the `SubmitJob` with a
//!   fresh random job id and the requester-signed `JobEscrow` ledger entry, and
//!   submits it.
//! * status, results, cancel, account and ledger queries.

use lode_ledger::{Entry, JobEscrow};
use lode_proto::jobspec::JobSpec;
use lode_proto::wire::{CancelJob, SubmitJob, UnitInput, UploadModule};
use lode_proto::{Envelope, Hash32, Keypair, Message};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The gateway answered with an error body.
    #[error("{message} (gateway error {code}, HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error(
        "cannot reach the gateway at {url}: {source}. Is a gateway running there? Start one \
         with `lode devnet` (or `lode gateway`), or point --gateway / LODE_GATEWAY at it"
    )]
    Connect { url: String, source: reqwest::Error },
    #[error("unexpected response from the gateway: {0}")]
    BadResponse(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("job spec: {0}")]
    Spec(String),
    #[error("signing: {0}")]
    Sign(String),
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorInner,
}
#[derive(Deserialize)]
struct ErrorInner {
    code: String,
    message: String,
}

pub use lode_proto::api::{JobView, UnitResult};

pub mod storage;
pub mod wallet;
pub use wallet::{AccountView, AddressView, EntryStatus, HistoryView};

#[derive(Deserialize)]
struct ResultsBody {
    units: Vec<UnitResult>,
    #[serde(default)]
    next: Option<u32>,
}

/// An online node, as the gateway's `GET /v1/nodes` lists it. Fields the gateway
/// does not report are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct NodeView {
    pub node: String,
    #[serde(default)]
    pub last_seen_ms: Option<u64>,
    #[serde(default)]
    pub slots: Option<u32>,
    #[serde(default)]
    pub in_flight: Option<u32>,
    #[serde(default)]
    pub trusted: Option<bool>,
    /// Memory the node lets one unit use, in bytes.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// Lowest price the node accepts, base units per fuel (decimal string or number).
    #[serde(default, deserialize_with = "opt_u128")]
    pub min_price_per_fuel: Option<u128>,
    /// Fuel per second of one slot, as the gateway schedules it.
    #[serde(default)]
    pub speed_fuel_per_s: Option<u64>,
}

fn opt_u128<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u128>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        I(u64),
        S(String),
    }
    match Option::<N>::deserialize(d)? {
        None => Ok(None),
        Some(N::I(i)) => Ok(Some(u128::from(i))),
        Some(N::S(s)) => s.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// Why the online nodes cannot run a job (see [`check_runnable`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unrunnable {
    #[error("no node is online at the gateway: the job would wait until one connects")]
    NoNodes,
    #[error(
        "no online node has {need_mb} MB free for a unit; the largest has {largest_mb} MB. \
         Lower limits.memory_mb in the spec, or start a node that offers more \
         (`lode node --memory-mib`)"
    )]
    Memory { need_mb: u64, largest_mb: u64 },
    #[error(
        "no online node accepts {price} base units per fuel; the cheapest asks {cheapest}. \
         Raise price.max_per_fuel in the spec"
    )]
    Price { price: u128, cheapest: u128 },
    #[error(
        "the job needs {quorum} agreeing nodes per unit but only {able} online node(s) can \
         run it: units wait until more connect (or lower verification.quorum)"
    )]
    Quorum { quorum: u8, able: usize },
    #[error(
        "no online node can burn {fuel} fuel within the {timeout_ms} ms timeout: the fastest \
         does {fastest} fuel/s, so it would need {need_ms} ms. Raise limits.timeout_ms or \
         lower limits.fuel"
    )]
    Speed {
        fuel: u64,
        timeout_ms: u64,
        fastest: u64,
        need_ms: u64,
    },
}

impl Unrunnable {
    /// Whether the job can make no progress at all with these nodes (as opposed
    /// to waiting for verification by more nodes).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Unrunnable::Memory { .. } | Unrunnable::Price { .. } | Unrunnable::Speed { .. }
        )
    }
}

/// Checks a job's per-unit needs against the online nodes. Nodes that do not
/// report memory or price are assumed able to run it.
pub fn check_runnable(
    limits: &lode_proto::wire::UnitLimits,
    verification: &lode_proto::wire::Verification,
    price: u128,
    nodes: &[NodeView],
) -> Result<(), Unrunnable> {
    if nodes.is_empty() {
        return Err(Unrunnable::NoNodes);
    }
    let mb = |b: u64| b >> 20;
    let fits_memory = |n: &&NodeView| n.memory_bytes.is_none_or(|m| m >= limits.memory_bytes);
    let fits_price = |n: &&NodeView| n.min_price_per_fuel.is_none_or(|p| p <= price);
    if !nodes.iter().any(|n| fits_memory(&n)) {
        let largest = nodes
            .iter()
            .filter_map(|n| n.memory_bytes)
            .max()
            .unwrap_or(0);
        return Err(Unrunnable::Memory {
            need_mb: mb(limits.memory_bytes),
            largest_mb: mb(largest),
        });
    }
    let able = nodes.iter().filter(fits_memory).filter(fits_price).count();
    if able == 0 {
        let cheapest = nodes
            .iter()
            .filter(fits_memory)
            .filter_map(|n| n.min_price_per_fuel)
            .min()
            .unwrap_or(0);
        return Err(Unrunnable::Price { price, cheapest });
    }
    // A unit that runs out of time before its fuel is a failed unit on every node.
    let fastest = nodes
        .iter()
        .filter(fits_memory)
        .filter(fits_price)
        .map(|n| n.speed_fuel_per_s)
        .collect::<Option<Vec<u64>>>()
        .and_then(|v| v.into_iter().max());
    if let Some(fastest) = fastest.filter(|f| *f > 0) {
        let need_ms = u128::from(limits.fuel) * 1000 / u128::from(fastest);
        if need_ms > u128::from(limits.timeout_ms) {
            return Err(Unrunnable::Speed {
                fuel: limits.fuel,
                timeout_ms: limits.timeout_ms,
                fastest,
                need_ms: u64::try_from(need_ms).unwrap_or(u64::MAX),
            });
        }
    }
    // A trusted node's result may stand alone under adaptive trust.
    let trusted = verification.adaptive_trust
        && nodes
            .iter()
            .filter(fits_memory)
            .filter(fits_price)
            .any(|n| n.trusted == Some(true));
    if !trusted && able < usize::from(verification.quorum) {
        return Err(Unrunnable::Quorum {
            quorum: verification.quorum,
            able,
        });
    }
    Ok(())
}

/// A job spec read from disk: the spec, its resolved units and module bytes.
#[derive(Debug, Clone)]
pub struct PreparedSpec {
    pub spec: JobSpec,
    pub units: Vec<UnitInput>,
    pub wasm: Vec<u8>,
}

impl PreparedSpec {
    /// Reads a spec file, its inputs and its module (paths relative to the spec's folder).
    pub fn read(spec_path: &Path) -> Result<Self, ClientError> {
        let text = std::fs::read_to_string(spec_path).map_err(|source| ClientError::Io {
            path: spec_path.to_path_buf(),
            source,
        })?;
        let spec = JobSpec::from_toml(&text).map_err(|e| ClientError::Spec(e.to_string()))?;
        let base = spec_path.parent().unwrap_or(Path::new("."));
        let units = resolve_inputs(&spec, base)?;
        let module_path = base.join(&spec.module);
        let wasm = std::fs::read(&module_path).map_err(|source| ClientError::Io {
            path: module_path,
            source,
        })?;
        Ok(Self { spec, units, wasm })
    }

    /// Checks the spec against the online nodes (see [`check_runnable`]).
    pub fn check(&self, nodes: &[NodeView]) -> Result<(), Unrunnable> {
        check_runnable(
            &self.spec.unit_limits(),
            &self.spec.verification(),
            self.spec.price.max_per_fuel,
            nodes,
        )
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Resolves a spec's inputs (relative to `base_dir`, the spec file's folder) into
/// work units: `files` (globs, sorted, each file one unit's stdin), then `stdin`
/// strings, then `args` vectors.
pub fn resolve_inputs(spec: &JobSpec, base_dir: &Path) -> Result<Vec<UnitInput>, ClientError> {
    let mut units = Vec::new();
    for pattern in &spec.inputs.files {
        let full = base_dir.join(pattern);
        let pat = full.to_string_lossy().into_owned();
        let mut paths: Vec<PathBuf> = glob::glob(&pat)
            .map_err(|e| ClientError::Spec(format!("bad glob {pattern:?}: {e}")))?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        if paths.is_empty() {
            return Err(ClientError::Spec(format!(
                "inputs.files pattern {pattern:?} matches no file"
            )));
        }
        paths.sort();
        for p in paths {
            let stdin = std::fs::read(&p).map_err(|source| ClientError::Io {
                path: p.clone(),
                source,
            })?;
            units.push(UnitInput {
                stdin,
                args: vec![],
            });
        }
    }
    units.extend(spec.inputs.stdin.iter().map(|s| UnitInput {
        stdin: s.as_bytes().to_vec(),
        args: vec![],
    }));
    units.extend(spec.inputs.args.iter().map(|a| UnitInput {
        stdin: vec![],
        args: a.clone(),
    }));
    Ok(units)
}

/// A blocking client of one gateway.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::blocking::Client,
}

impl Client {
    pub fn new(gateway: &str) -> Result<Self, ClientError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(5))
            // Below the gateway's idle deadline, so a pooled connection is not
            // reused just as the gateway closes it.
            .pool_idle_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::BadResponse(e.to_string()))?;
        Ok(Self {
            base: gateway.trim_end_matches('/').to_string(),
            http,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn handle<T: DeserializeOwned>(
        &self,
        r: Result<reqwest::blocking::Response, reqwest::Error>,
    ) -> Result<T, ClientError> {
        let r = r.map_err(|source| ClientError::Connect {
            url: self.base.clone(),
            source,
        })?;
        let status = r.status();
        let bytes = r
            .bytes()
            .map_err(|e| ClientError::BadResponse(e.to_string()))?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(b) => ClientError::Api {
                    status: status.as_u16(),
                    code: b.error.code,
                    message: b.error.message,
                },
                Err(_) => ClientError::Api {
                    status: status.as_u16(),
                    code: "http_error".into(),
                    message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
                },
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.handle(self.http.get(self.url(path)).send())
    }

    /// The network's labelled URLs for retraining the scam classifier
    /// (`GET /v1/data/labels.tsv`: confirmed reports, flagged false positives), as text.
    pub fn guard_labels(&self) -> Result<String, ClientError> {
        let r = self
            .http
            .get(self.url("/v1/data/labels.tsv"))
            .send()
            .map_err(|source| ClientError::Connect {
                url: self.base.clone(),
                source,
            })?;
        let status = r.status();
        let text = r
            .text()
            .map_err(|e| ClientError::BadResponse(e.to_string()))?;
        if !status.is_success() {
            return Err(ClientError::Api {
                status: status.as_u16(),
                code: "http_error".into(),
                message: text.chars().take(200).collect(),
            });
        }
        Ok(text)
    }

    fn post_envelope<T: DeserializeOwned>(
        &self,
        path: &str,
        env: &Envelope,
    ) -> Result<T, ClientError> {
        self.handle(self.http.post(self.url(path)).json(env).send())
    }

    fn seal<M: Message>(key: &Keypair, m: &M) -> Result<Envelope, ClientError> {
        Envelope::seal_fresh(key, m, now_ms()).map_err(|e| ClientError::Sign(e.to_string()))
    }

    /// Uploads a module (signed), returning its hash. Idempotent.
    pub fn upload_module(&self, key: &Keypair, bytes: &[u8]) -> Result<Hash32, ClientError> {
        let sha256 = Hash32::sha256(bytes);
        let env = Self::seal(
            key,
            &UploadModule {
                sha256,
                size: bytes.len() as u64,
            },
        )?;
        let header = serde_json::to_string(&env).map_err(|e| ClientError::Sign(e.to_string()))?;
        let _: serde_json::Value = self.handle(
            self.http
                .put(self.url(&format!("/v1/modules/{}", sha256.to_hex())))
                .header(lode_proto::wire::UPLOAD_HEADER, header)
                .body(bytes.to_vec())
                .send(),
        )?;
        Ok(sha256)
    }

    /// The chain id the gateway's ledger uses (escrow entries bind to it).
    pub fn chain_id(&self) -> Result<Hash32, ClientError> {
        let v: serde_json::Value = self.get_json("/v1/ledger")?;
        v["chain_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ClientError::BadResponse("no chain_id".into()))
    }

    /// Builds a signed `SubmitJob` (fresh random job id, escrow for the worst case).
    pub fn build_submission(
        key: &Keypair,
        chain: Hash32,
        spec: &JobSpec,
        module: Hash32,
        units: Vec<UnitInput>,
    ) -> Result<SubmitJob, ClientError> {
        let mut id = [0u8; 32];
        getrandom::fill(&mut id).map_err(|e| ClientError::Sign(e.to_string()))?;
        let job = Hash32(id);
        let mut submit = SubmitJob {
            job,
            escrow: Envelope {
                kind: String::new(),
                payload: vec![],
                signer: key.did(),
                signature: lode_proto::Signature([0; 64]),
            },
            name: spec.name.clone(),
            engine: spec.engine,
            module,
            units,
            limits: spec.unit_limits(),
            verification: spec.verification(),
            max_price_per_fuel: spec.price.max_per_fuel,
            region: spec.region.clone(),
            eligibility: spec.eligibility(),
        };
        let amount = submit
            .required_escrow()
            .ok_or_else(|| ClientError::Spec("units × quorum × fuel × price overflows".into()))?;
        let escrow = JobEscrow {
            chain,
            job,
            amount,
            price_per_unit: spec.price.max_per_fuel,
        };
        let entry =
            Entry::sign(key, 0, now_ms(), &escrow).map_err(|e| ClientError::Sign(e.to_string()))?;
        submit.escrow = entry
            .envelope()
            .cloned()
            .ok_or_else(|| ClientError::Sign("escrow entry has no envelope".into()))?;
        Ok(submit)
    }

    /// Submits a prepared job.
    pub fn submit_job(&self, key: &Keypair, submit: &SubmitJob) -> Result<JobView, ClientError> {
        self.post_envelope("/v1/jobs", &Self::seal(key, submit)?)
    }

    /// Reads a spec file, uploads its module, and submits the job.
    pub fn submit_spec_file(
        &self,
        key: &Keypair,
        spec_path: &Path,
    ) -> Result<JobView, ClientError> {
        let p = PreparedSpec::read(spec_path)?;
        self.submit_prepared(key, &p.spec, &p.wasm, p.units)
    }

    /// Uploads `wasm` and submits a job of `units` under `spec`'s limits,
    /// verification and price (the spec's own inputs and module path are not used).
    pub fn submit_prepared(
        &self,
        key: &Keypair,
        spec: &JobSpec,
        wasm: &[u8],
        units: Vec<UnitInput>,
    ) -> Result<JobView, ClientError> {
        let module = self.upload_module(key, wasm)?;
        let chain = self.chain_id()?;
        let submit = Self::build_submission(key, chain, spec, module, units)?;
        self.submit_job(key, &submit)
    }

    /// The nodes online at the gateway.
    pub fn nodes(&self) -> Result<Vec<NodeView>, ClientError> {
        #[derive(Deserialize)]
        struct L {
            nodes: Vec<NodeView>,
        }
        Ok(self.get_json::<L>("/v1/nodes")?.nodes)
    }

    pub fn job(&self, id: &str) -> Result<JobView, ClientError> {
        self.get_json(&format!("/v1/jobs/{id}"))
    }

    /// Every job, newest first (following the list's cursor page by page).
    pub fn jobs(&self) -> Result<Vec<JobView>, ClientError> {
        #[derive(Deserialize)]
        struct L {
            jobs: Vec<JobView>,
            #[serde(default)]
            next: Option<u64>,
        }
        let mut out = vec![];
        let mut path = "/v1/jobs?limit=1000".to_string();
        loop {
            let page = self.get_json::<L>(&path)?;
            out.extend(page.jobs);
            match page.next {
                Some(n) => path = format!("/v1/jobs?limit=1000&before={n}"),
                None => return Ok(out),
            }
        }
    }

    /// A job's results, all pages (only its requester may read them: each page
    /// request carries a fresh signed read).
    pub fn results(&self, key: &Keypair, id: &str) -> Result<Vec<UnitResult>, ClientError> {
        let mut out = vec![];
        let mut from = 0u32;
        loop {
            let page = self.results_page(key, id, from, 10_000)?;
            out.extend(page.units);
            match page.next {
                Some(n) if n > from => from = n,
                _ => return Ok(out),
            }
        }
    }

    fn results_page(
        &self,
        key: &Keypair,
        id: &str,
        from: u32,
        limit: u32,
    ) -> Result<ResultsBody, ClientError> {
        let job: Hash32 = id
            .parse()
            .map_err(|_| ClientError::Spec(format!("{id:?} is not a job id")))?;
        let env = Self::seal(key, &lode_proto::wire::ReadJob { job })?;
        let header = serde_json::to_string(&env).map_err(|e| ClientError::Sign(e.to_string()))?;
        self.handle(
            self.http
                .get(self.url(&format!("/v1/jobs/{id}/results?from={from}&limit={limit}")))
                .header(lode_proto::wire::READ_HEADER, header)
                .send(),
        )
    }

    pub fn cancel(&self, key: &Keypair, id: &str) -> Result<JobView, ClientError> {
        let job: Hash32 = id
            .parse()
            .map_err(|_| ClientError::Spec(format!("{id:?} is not a job id")))?;
        self.post_envelope(
            &format!("/v1/jobs/{id}/cancel"),
            &Self::seal(key, &CancelJob { job })?,
        )
    }

    /// Waits until the job is no longer running, polling every `every`.
    pub fn wait(
        &self,
        id: &str,
        every: Duration,
        timeout: Duration,
    ) -> Result<JobView, ClientError> {
        let start = std::time::Instant::now();
        loop {
            let v = self.job(id)?;
            if v.is_done() || start.elapsed() > timeout {
                return Ok(v);
            }
            std::thread::sleep(every);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_files_stdin_and_args_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("in")).unwrap();
        std::fs::write(dir.path().join("in/b.txt"), b"B").unwrap();
        std::fs::write(dir.path().join("in/a.txt"), b"A").unwrap();
        let spec = JobSpec::from_toml(
            "name='x'\nmodule='m.wasm'\n[inputs]\nfiles=['in/*.txt']\nstdin=['s']\nargs=[['1','2']]\n[price]\nmax_per_fuel=1\n",
        )
        .unwrap();
        let u = resolve_inputs(&spec, dir.path()).unwrap();
        assert_eq!(u.len(), 4);
        assert_eq!(u[0].stdin, b"A");
        assert_eq!(u[1].stdin, b"B");
        assert_eq!(u[2].stdin, b"s");
        assert_eq!(u[3].args, vec!["1", "2"]);
    }

    #[test]
    fn glob_matching_nothing_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let spec = JobSpec::from_toml(
            "name='x'\nmodule='m'\n[inputs]\nfiles=['none/*.bin']\n[price]\nmax_per_fuel=1\n",
        )
        .unwrap();
        let e = resolve_inputs(&spec, dir.path()).unwrap_err();
        assert!(e.to_string().contains("matches no file"), "{e}");
    }

    #[test]
    fn escrow_is_signed_for_the_job() {
        let key = Keypair::from_secret_bytes(&[1; 32]);
        let spec = JobSpec::from_toml(
            "name='x'\nmodule='m'\n[inputs]\nstdin=['a','b']\n[limits]\nfuel=1000\n[verification]\nquorum=2\nmax_replicas=3\n[price]\nmax_per_fuel=7\n",
        )
        .unwrap();
        let units = resolve_inputs(&spec, Path::new(".")).unwrap();
        let s = Client::build_submission(
            &key,
            Hash32::sha256(b"chain"),
            &spec,
            Hash32::sha256(b"m"),
            units,
        )
        .unwrap();
        let esc = s.escrow.open_signed::<JobEscrow>().unwrap();
        assert_eq!(esc.signer, key.did());
        assert_eq!(esc.message.job, s.job);
        assert_eq!(esc.message.amount, 2 * 2 * 1000 * 7);
        assert_eq!(esc.message.price_per_unit, 7);
    }

    fn node(memory_mb: Option<u64>, price: Option<u128>) -> NodeView {
        NodeView {
            node: "did:key:z".into(),
            last_seen_ms: None,
            slots: Some(1),
            in_flight: Some(0),
            trusted: Some(false),
            memory_bytes: memory_mb.map(|m| m << 20),
            min_price_per_fuel: price,
            speed_fuel_per_s: None,
        }
    }

    #[test]
    fn runnable_checks_memory_price_and_quorum() {
        let spec = JobSpec::from_toml(
            "name='x'\nmodule='m'\n[inputs]\nstdin=['a']\n[limits]\nmemory_mb=512\n[verification]\nquorum=2\nmax_replicas=3\nadaptive_trust=false\n[price]\nmax_per_fuel=7\n",
        )
        .unwrap();
        let check = |nodes: &[NodeView]| {
            check_runnable(&spec.unit_limits(), &spec.verification(), 7, nodes)
        };
        assert_eq!(check(&[]), Err(Unrunnable::NoNodes));
        let e = check(&[node(Some(256), None), node(Some(128), None)]).unwrap_err();
        assert_eq!(
            e,
            Unrunnable::Memory {
                need_mb: 512,
                largest_mb: 256
            }
        );
        assert!(
            e.to_string()
                .starts_with("no online node has 512 MB free for a unit; the largest has 256 MB"),
            "{e}"
        );
        assert!(e.is_fatal());
        assert_eq!(
            check(&[node(Some(1024), Some(8)), node(Some(1024), Some(9))]),
            Err(Unrunnable::Price {
                price: 7,
                cheapest: 8
            })
        );
        assert_eq!(
            check(&[node(Some(1024), Some(7)), node(Some(100), None)]),
            Err(Unrunnable::Quorum { quorum: 2, able: 1 })
        );
        assert_eq!(check(&[node(Some(512), None), node(None, None)]), Ok(()));
        // 10^9 fuel (the default limit) in a 30 s timeout needs > 3.3·10^7 fuel/s.
        let slow = |speed| NodeView {
            speed_fuel_per_s: Some(speed),
            ..node(Some(1024), None)
        };
        let e = check(&[slow(10_000_000), slow(20_000_000)]).unwrap_err();
        assert_eq!(
            e,
            Unrunnable::Speed {
                fuel: 1_000_000_000,
                timeout_ms: 30_000,
                fastest: 20_000_000,
                need_ms: 50_000
            }
        );
        assert!(e.is_fatal());
        assert!(e.to_string().contains("Raise limits.timeout_ms"), "{e}");
        assert_eq!(check(&[slow(10_000_000), slow(40_000_000)]), Ok(()));
    }

    #[test]
    fn node_view_accepts_what_the_gateway_lists() {
        let v: NodeView = serde_json::from_str(
            r#"{"node":"did:key:z","last_seen_ms":1,"slots":2,"in_flight":0,"trusted":false,"reputation":0,"flags":[]}"#,
        )
        .unwrap();
        assert_eq!(v.memory_bytes, None);
        let v: NodeView =
            serde_json::from_str(r#"{"node":"n","memory_bytes":1048576,"min_price_per_fuel":"5"}"#)
                .unwrap();
        assert_eq!(
            (v.memory_bytes, v.min_price_per_fuel),
            (Some(1 << 20), Some(5))
        );
    }

    #[test]
    fn unreachable_gateway_is_a_clear_error() {
        let c = Client::new("http://127.0.0.1:9").unwrap();
        let e = c.job("00").unwrap_err();
        assert!(matches!(e, ClientError::Connect { .. }), "{e}");
    }
}
