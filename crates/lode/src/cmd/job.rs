//! `lode job`: submit and follow jobs.

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lode_client::{Client, ClientError, JobView, PreparedSpec, Unrunnable, check_runnable};
use lode_proto::KeyFile;
use lode_proto::wire::{UnitLimits, Verification};
use std::collections::VecDeque;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct Common {
    /// Gateway URL.
    #[arg(long, env = "LODE_GATEWAY", default_value = "http://127.0.0.1:7700")]
    pub gateway: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum JobCmd {
    /// Submit a job spec (TOML) and follow it to the end.
    Submit {
        spec: PathBuf,
        /// Requester key file [default: $LODE_HOME/identity.key]
        #[arg(long)]
        key: Option<PathBuf>,
        /// Return once the job is accepted instead of following it.
        #[arg(long)]
        no_wait: bool,
        /// Submit even when no online node can run the job's units.
        #[arg(long)]
        force: bool,
        /// Agreeing replicas needed per unit, overriding the spec's
        /// verification.quorum [default: the spec's, else the gateway's
        /// governed default (GET /v1/limits), else 2].
        #[arg(long, value_name = "N")]
        quorum: Option<u8>,
        /// Most replicas issued per unit, overriding the spec's
        /// verification.max_replicas [default: the spec's, else the gateway's
        /// governed default, else 5].
        #[arg(long, value_name = "N")]
        replicas: Option<u8>,
        #[command(flatten)]
        common: Common,
    },
    /// Show a job's progress (or list jobs without an id).
    Status {
        job: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Fetch a job's verified results.
    Results {
        job: String,
        /// Write each unit's stdout to DIR/<unit>.out
        #[arg(long)]
        out_dir: Option<PathBuf>,
        /// Key file of the job's requester (only it may read the results)
        /// [default: $LODE_HOME/identity.key].
        #[arg(long)]
        key: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Cancel a job; unspent escrow is refunded.
    Cancel {
        job: String,
        #[arg(long)]
        key: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
}

/// The requester's key file (default `$LODE_HOME/identity.key`), with a hint when missing.
pub(super) fn load_key(key: Option<PathBuf>) -> Result<KeyFile> {
    let path = key.unwrap_or_else(super::keys::default_key_path);
    KeyFile::load(&path).with_context(|| {
        format!(
            "loading the requester key {} (create one with `lode keys new --out {}`)",
            path.display(),
            path.display()
        )
    })
}

fn tokens(base_units: &str) -> String {
    lode_ledger::format_tokens(base_units.parse().unwrap_or(0))
}

fn print_view(v: &JobView) {
    println!("job        {}", v.job);
    println!("name       {}", v.name);
    println!("status     {}", v.status);
    println!(
        "units      {} verified, {} failed, {} in flight, {} remaining of {}",
        v.completed, v.failed, v.in_flight, v.remaining, v.units
    );
    println!("escrowed   {}", tokens(&v.escrowed));
    println!("cost       {}", tokens(&v.cost_so_far));
    if v.refunded != "0" {
        println!("refunded   {}", tokens(&v.refunded));
    }
}

/// Adds what to do to the gateway's "unknown job" answer.
fn job_error(e: ClientError, id: &str, gateway: &str) -> anyhow::Error {
    let hint = match &e {
        ClientError::Api { code, .. } if code == "unknown_job" || code == "bad_job_id" => Some(
            format!("list this gateway's jobs with `lode job status --gateway {gateway}`"),
        ),
        ClientError::Spec(m) if m.contains("is not a job id") => Some(format!(
            "list this gateway's jobs with `lode job status --gateway {gateway}`"
        )),
        _ => None,
    };
    match hint {
        Some(h) => anyhow!("job {id}: {e}; {h}"),
        None => anyhow::Error::new(e).context(format!("job {id}")),
    }
}

/// What a job needs from a node, to explain a job that no node takes.
#[derive(Debug, Clone)]
pub struct Needs {
    pub limits: UnitLimits,
    pub verification: Verification,
    pub price: u128,
}

/// How long a job may see no unit handed out, with nothing done, before
/// `follow` explains why.
const STALL: Duration = Duration::from_secs(15);

/// The rate (and so the ETA) is measured over this last stretch of time.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Progress display: an indicatif bar on a terminal, periodic lines otherwise.
enum Display {
    Quiet,
    Bar(ProgressBar),
    Lines {
        last: Option<Instant>,
        done: Option<u32>,
    },
}

impl Display {
    fn new(quiet: bool, units: u32) -> Self {
        if quiet {
            Display::Quiet
        } else if std::io::stderr().is_terminal() {
            let bar =
                ProgressBar::with_draw_target(Some(u64::from(units)), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} [{bar:30.cyan/blue}] {pos}/{len} verified  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("#>-");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(120));
            Display::Bar(bar)
        } else {
            Display::Lines {
                last: None,
                done: None,
            }
        }
    }

    fn note(&self, line: &str) {
        match self {
            Display::Bar(b) => b.println(line),
            _ => eprintln!("{line}"),
        }
    }

    fn update(&mut self, v: &JobView, rate: f64) {
        let done = v.completed + v.failed;
        let eta = if v.remaining == 0 {
            "0s".to_string()
        } else if rate > 0.0 {
            format!("{:.0}s", f64::from(v.remaining) / rate)
        } else {
            "?".into()
        };
        let failed = if v.failed > 0 {
            format!("{} failed  ", v.failed)
        } else {
            String::new()
        };
        let msg = format!(
            "{failed}{rate:.1} units/s  ETA {eta}  cost {}",
            tokens(&v.cost_so_far)
        );
        match self {
            Display::Quiet => {}
            Display::Bar(b) => {
                b.set_position(u64::from(done));
                b.set_message(msg);
            }
            Display::Lines { last, done: shown } => {
                // On change (at most every 2 s), else every 30 s, and at the end.
                let since = last.map_or(Duration::MAX, |t| t.elapsed());
                let changed = *shown != Some(done);
                if (changed && since >= Duration::from_secs(2))
                    || since >= Duration::from_secs(30)
                    || v.is_done()
                {
                    *shown = Some(done);
                    eprintln!("job {}: {done}/{} verified  {msg}", short(&v.job), v.units);
                    *last = Some(Instant::now());
                }
            }
        }
    }

    fn finish(&self) {
        if let Display::Bar(b) = self {
            b.finish();
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Why nobody takes this job's units, as a line for the requester.
fn stall_reason(client: &Client, v: &JobView, needs: Option<&Needs>) -> String {
    let nodes = match client.nodes() {
        Ok(n) => n,
        Err(e) => return format!("cannot list the gateway's nodes: {e}"),
    };
    let cancel = format!("cancel it with `lode job cancel {}`", v.job);
    if let Some(n) = needs
        && let Err(why) = check_runnable(&n.limits, &n.verification, n.price, &nodes)
    {
        return format!("{why}; {cancel}");
    }
    if nodes.is_empty() {
        return format!("{}; {cancel}", Unrunnable::NoNodes);
    }
    let need = needs.map_or(String::new(), |n| {
        format!(
            " This job needs {} MB per unit at {} base units per fuel.",
            n.limits.memory_bytes >> 20,
            n.price
        )
    });
    let unreported = if nodes.iter().all(|n| n.memory_bytes.is_none()) {
        " (this gateway does not report its nodes' memory)"
    } else {
        ""
    };
    format!(
        "no unit of this job has been handed out for {}s although {} node(s) are online: \
         nodes take only units that fit their memory per unit and price{unreported}.{need} \
         Start a node with more memory (`lode node --memory-mib`) or lower limits.memory_mb, \
         or {cancel}",
        STALL.as_secs(),
        nodes.len()
    )
}

/// Follows a job to its end, showing progress on stderr unless `quiet`.
/// Returns early (with the last view) once `stop` is set.
pub fn follow(
    client: &Client,
    id: &str,
    quiet: bool,
    needs: Option<&Needs>,
    stop: Option<&AtomicBool>,
) -> Result<JobView> {
    // (time, done) samples of the last RATE_WINDOW, for the rate and ETA.
    let mut samples: VecDeque<(Instant, u32)> = VecDeque::new();
    let mut display: Option<Display> = None;
    let mut last_change = Instant::now();
    let mut last_done = None;
    let mut warned = false;
    loop {
        let v = client
            .job(id)
            .map_err(|e| job_error(e, id, client.base_url()))?;
        let done = v.completed + v.failed;
        let now = Instant::now();
        samples.push_back((now, done));
        while samples.len() > 2 && samples[0].0 + RATE_WINDOW < now {
            samples.pop_front();
        }
        let (t0, d0) = samples[0];
        let secs = now.duration_since(t0).as_secs_f64();
        let rate = f64::from(done.saturating_sub(d0)) / secs.max(0.25);
        let d = display.get_or_insert_with(|| Display::new(quiet, v.units));
        if last_done != Some(done) || v.in_flight > 0 {
            last_done = Some(done);
            last_change = Instant::now();
        }
        if !warned && !v.is_done() && last_change.elapsed() >= STALL {
            warned = true;
            d.note(&format!("warning: {}", stall_reason(client, &v, needs)));
        }
        d.update(&v, rate);
        if v.is_done() || stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            d.finish();
            return Ok(v);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `--quorum` / `--replicas` of `lode job submit`.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerificationFlags {
    pub quorum: Option<u8>,
    pub replicas: Option<u8>,
}

/// Where a verification value came from.
fn pick(
    flag: Option<u8>,
    in_spec: Option<u8>,
    governed: Option<u64>,
    builtin: u8,
    name: &str,
) -> Result<(u8, &'static str)> {
    if let Some(v) = flag {
        return Ok((v, "command line"));
    }
    if let Some(v) = in_spec {
        return Ok((v, "job spec"));
    }
    match governed {
        Some(g) => {
            let v = u8::try_from(g).map_err(|_| {
                anyhow!(
                    "the gateway's governed default {name} {g} is out of range for a job; set verification.{name} in the spec or pass it on the command line"
                )
            })?;
            Ok((v, "governed default, GET /v1/limits"))
        }
        None => Ok((builtin, "built-in default")),
    }
}

/// Applies the quorum and replicas the command line, the spec, the gateway's
/// governed defaults (`GET /v1/limits` `defaults`) or the built-in defaults
/// give, in that order; returns a line saying which were used.
fn apply_verification(
    client: &Client,
    spec_path: &Path,
    prepared: &mut PreparedSpec,
    flags: VerificationFlags,
) -> Result<String> {
    let text = std::fs::read_to_string(spec_path)
        .with_context(|| format!("reading the job spec {}", spec_path.display()))?;
    let set = lode_proto::jobspec::JobSpec::verification_set(&text);
    let v = &mut prepared.spec.verification;
    let builtin = lode_proto::jobspec::VerificationSpec::default();
    let governed =
        if flags.quorum.is_none() && !set.quorum || flags.replicas.is_none() && !set.max_replicas {
            // A gateway without governance publishes nulls (or no `defaults`).
            client
                .get_json::<serde_json::Value>("/v1/limits")
                .map(|l| l["defaults"].clone())
                .unwrap_or_default()
        } else {
            serde_json::Value::Null
        };
    // (flag, set in the spec, the spec's value, built-in, name in spec and GET /v1/limits)
    let [q, r] = [
        (flags.quorum, set.quorum, v.quorum, builtin.quorum, "quorum"),
        (
            flags.replicas,
            set.max_replicas,
            v.max_replicas,
            builtin.max_replicas,
            "max_replicas",
        ),
    ]
    .map(|(flag, in_spec, value, b, name)| {
        pick(
            flag,
            in_spec.then_some(value),
            governed[name].as_u64(),
            b,
            name,
        )
    });
    let ((quorum, q_from), (replicas, r_from)) = (q?, r?);
    v.quorum = quorum;
    v.max_replicas = replicas;
    prepared.spec.validate().with_context(|| {
        format!(
            "quorum {quorum} ({q_from}) with max_replicas {replicas} ({r_from}); \
             set both with --quorum and --replicas"
        )
    })?;
    Ok(format!(
        "quorum {quorum} ({q_from}), max_replicas {replicas} ({r_from})"
    ))
}

fn submit(
    spec_path: &Path,
    key: Option<PathBuf>,
    (no_wait, force): (bool, bool),
    flags: VerificationFlags,
    common: &Common,
) -> Result<ExitCode> {
    let key_arg = key
        .as_ref()
        .map(|k| format!(" --key {}", k.display()))
        .unwrap_or_default();
    let kf = load_key(key)?;
    let client = Client::new(&common.gateway)?;
    let mut prepared = PreparedSpec::read(spec_path)
        .with_context(|| format!("reading the job spec {}", spec_path.display()))?;
    let used = apply_verification(&client, spec_path, &mut prepared, flags)?;
    eprintln!("verification: {used}");
    let needs = Needs {
        limits: prepared.spec.unit_limits(),
        verification: prepared.spec.verification(),
        price: prepared.spec.price.max_per_fuel,
    };
    let nodes = client.nodes()?;
    if let Err(why) = prepared.check(&nodes) {
        if why.is_fatal() && !force {
            bail!(
                "not submitting {}: {why} (or submit anyway with --force)",
                spec_path.display()
            );
        }
        eprintln!("warning: {why}");
    }
    let v = client
        .submit_prepared(&kf.keypair, &prepared.spec, &prepared.wasm, prepared.units)
        .with_context(|| format!("submitting {}", spec_path.display()))?;
    if !common.json {
        eprintln!(
            "submitted job {} ({} units, {} escrowed)",
            v.job,
            v.units,
            tokens(&v.escrowed)
        );
    }
    let v = if no_wait {
        v
    } else {
        follow(&client, &v.job, common.json, Some(&needs), None)?
    };
    if common.json {
        println!("{}", serde_json::to_string(&v)?);
    } else {
        print_view(&v);
        if v.status == "finished" {
            println!(
                "results    lode job results {}{key_arg} --gateway {}",
                v.job,
                client.base_url()
            );
        }
    }
    Ok(if v.failed > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn run(cmd: JobCmd) -> Result<ExitCode> {
    match cmd {
        JobCmd::Submit {
            spec,
            key,
            no_wait,
            force,
            quorum,
            replicas,
            common,
        } => submit(
            &spec,
            key,
            (no_wait, force),
            VerificationFlags { quorum, replicas },
            &common,
        ),
        JobCmd::Status { job, common } => {
            let client = Client::new(&common.gateway)?;
            match job {
                Some(id) => {
                    let v = client
                        .job(&id)
                        .map_err(|e| job_error(e, &id, &common.gateway))?;
                    if common.json {
                        println!("{}", serde_json::to_string(&v)?);
                    } else {
                        print_view(&v);
                    }
                }
                None => {
                    let jobs = client.jobs()?;
                    if common.json {
                        println!("{}", serde_json::to_string(&jobs)?);
                    } else if jobs.is_empty() {
                        println!("no jobs on {}", client.base_url());
                    } else {
                        for v in jobs {
                            println!(
                                "{}  {:<10} {:>6}/{:<6} {}",
                                v.job, v.status, v.completed, v.units, v.name
                            );
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCmd::Results {
            job,
            out_dir,
            key,
            common,
        } => {
            let key = load_key(key)?;
            let client = Client::new(&common.gateway)?;
            let results = client
                .results(&key.keypair, &job)
                .map_err(|e| job_error(e, &job, &common.gateway))?;
            if let Some(dir) = &out_dir {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                for r in &results {
                    if let Some(b) = r.stdout_bytes() {
                        std::fs::write(dir.join(format!("{}.out", r.unit)), b)?;
                    }
                }
            }
            if common.json {
                println!("{}", serde_json::to_string(&results)?);
            } else {
                for r in &results {
                    let out = r
                        .stdout_bytes()
                        .map(|b| {
                            String::from_utf8_lossy(&b)
                                .trim_end()
                                .chars()
                                .take(60)
                                .collect::<String>()
                        })
                        .unwrap_or_default();
                    let detail = r.error.clone().unwrap_or(out);
                    println!(
                        "{:>6}  {:<9} exit {:<4} fuel {:<12} {}",
                        r.unit,
                        r.status,
                        r.exit_code.map_or("-".into(), |c| c.to_string()),
                        r.fuel_used.map_or("-".into(), |f| f.to_string()),
                        detail
                    );
                }
            }
            if results.iter().any(|r| r.status == "pending") && !common.json {
                eprintln!("(some units are still pending)");
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCmd::Cancel { job, key, common } => {
            let kf = load_key(key)?;
            let client = Client::new(&common.gateway)?;
            let v = client
                .cancel(&kf.keypair, &job)
                .map_err(|e| job_error(e, &job, &common.gateway))?;
            if v.status != "cancelled" && v.status != "finished" {
                bail!("the gateway did not cancel job {job} (status {})", v.status);
            }
            if common.json {
                println!("{}", serde_json::to_string(&v)?);
            } else {
                print_view(&v);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
