//! `lode job`: submit and follow jobs.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use lode_client::{Client, JobView};
use lode_proto::KeyFile;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
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

fn load_key(key: Option<PathBuf>) -> Result<KeyFile> {
    let path = key.unwrap_or_else(super::keys::default_key_path);
    Ok(KeyFile::load(&path)?)
}

fn print_view(v: &JobView) {
    println!("job        {}", v.job);
    println!("name       {}", v.name);
    println!("status     {}", v.status);
    println!(
        "units      {} verified, {} failed, {} in flight, {} remaining of {}",
        v.completed, v.failed, v.in_flight, v.remaining, v.units
    );
    println!(
        "escrowed   {}",
        lode_ledger::format_tokens(v.escrowed.parse().unwrap_or(0))
    );
    println!(
        "cost       {}",
        lode_ledger::format_tokens(v.cost_so_far.parse().unwrap_or(0))
    );
    if v.refunded != "0" {
        println!(
            "refunded   {}",
            lode_ledger::format_tokens(v.refunded.parse().unwrap_or(0))
        );
    }
}

/// Follows a job, drawing a one-line progress display on stderr.
fn follow(client: &Client, id: &str, json: bool) -> Result<JobView> {
    let start = Instant::now();
    loop {
        let v = client.job(id)?;
        if !json {
            let done = v.completed + v.failed;
            let secs = start.elapsed().as_secs_f64().max(0.001);
            let rate = f64::from(done) / secs;
            let eta = if rate > 0.0 {
                format!("{:.0}s", f64::from(v.remaining) / rate)
            } else {
                "?".into()
            };
            let width = 30usize;
            let filled = if v.units == 0 {
                0
            } else {
                (done as usize * width) / v.units as usize
            };
            eprint!(
                "\r[{}{}] {done}/{} verified  {rate:.0} units/s  eta {eta}  cost {}   ",
                "#".repeat(filled),
                "-".repeat(width - filled),
                v.units,
                lode_ledger::format_tokens(v.cost_so_far.parse().unwrap_or(0)),
            );
            let _ = std::io::stderr().flush();
        }
        if v.is_done() {
            if !json {
                eprintln!();
            }
            return Ok(v);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn run(cmd: JobCmd) -> Result<ExitCode> {
    match cmd {
        JobCmd::Submit {
            spec,
            key,
            no_wait,
            common,
        } => {
            let kf = load_key(key)?;
            let client = Client::new(&common.gateway)?;
            let v = client
                .submit_spec_file(&kf.keypair, &spec)
                .with_context(|| format!("submitting {}", spec.display()))?;
            if !common.json {
                eprintln!("submitted job {} ({} units)", v.job, v.units);
            }
            let v = if no_wait {
                v
            } else {
                follow(&client, &v.job, common.json)?
            };
            if common.json {
                println!("{}", serde_json::to_string(&v)?);
            } else {
                print_view(&v);
            }
            Ok(if v.failed > 0 {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            })
        }
        JobCmd::Status { job, common } => {
            let client = Client::new(&common.gateway)?;
            match job {
                Some(id) => {
                    let v = client.job(&id)?;
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
            common,
        } => {
            let client = Client::new(&common.gateway)?;
            let results = client.results(&job)?;
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
            let v = client.cancel(&kf.keypair, &job)?;
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
